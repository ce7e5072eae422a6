"""Dense-layer products with low-precision weights, for inference (qgemm.h).

int8: ``Ops.quantize_int8(W)`` (the backend's one definition) gives per-column
symmetric int8 weights and their float32 scales; ``pack_int8(Wq)`` lays them out for the kernels once;
``int8_dense(x, packed, scales, bias, out)`` quantizes each row of x at run time
(symmetric, per row) and computes ``y = acc * (s_x * s_w) + b`` from exact int32
accumulators. bf16: ``to_bf16(W)`` rounds to bfloat16 bits (nearest even),
``pack_bf16`` lays them out, ``bf16_dense`` computes in float32.

The instruction set is chosen at the first call from the CPU's features
(``isa()`` says which); ``FASTNN_ISA`` (portable, avx2, avxvnni, avx512vnni)
or ``set_isa`` can only lower the choice. Every product releases the GIL and
uses no shared mutable state: one packed weight may serve many threads.
"""
from . import isa as _isa

import numpy

cimport numpy as cnp
from libc.stdint cimport int8_t, int32_t, uint8_t, uint16_t
from libc.stdlib cimport free, malloc

cnp.import_array()

cdef extern from "qgemm.h":
    int FQ_PORTABLE, FQ_AVX2, FQ_AVXVNNI, FQ_AVX512
    int fq_cap
    int fq_ymm_evex
    int fq_cpu_has(int level) nogil
    int fq_int8_level() nogil
    int fq_bf16_level() nogil
    void fq_pack_int8(const int8_t* wq, Py_ssize_t k, Py_ssize_t n, int8_t* packed,
                      int32_t* colsum) nogil
    Py_ssize_t FQ_U8_MAX_K
    size_t fq_int8_scratch(Py_ssize_t m, Py_ssize_t k) nogil
    Py_ssize_t fq_int8_dense(const float* x, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n,
                       const int8_t* packed, const int32_t* colsum, const float* sw,
                       const float* bias, float* y, int relu, int nthreads,
                       void* scratch) nogil
    void fq_int8_acc(const void* xqin, int is_u8, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n,
                     const int8_t* packed, const int32_t* colsum, int32_t* out,
                     void* scratch) nogil
    void fq_to_bf16_array(const float* w, Py_ssize_t size, uint16_t* out) nogil
    void fq_pack_bf16(const uint16_t* wb, Py_ssize_t k, Py_ssize_t n, uint16_t* packed) nogil
    void fq_bf16_dense(const float* x, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n,
                       const uint16_t* packed, const float* bias, float* y, int relu,
                       int nthreads) nogil

# The shared cap ladder (isa.py): its rungs are this family's levels (the bf16 path on
# the AVX-512 rung is float32 FMA on zmm, no AVX512-BF16 instruction).
_INT8_NAMES = ("portable", "avx2", "avxvnni", "avx512vnni")
_BF16_NAMES = ("portable", "avx2", "avx2", "avx512")


def set_isa(name=None):
    """Cap the instruction set the kernels use (for tests and comparisons): a cap
    above what the CPU has is harmless, the CPU's features still decide. ``None``
    goes back to ``FASTNN_ISA`` (or no cap). Returns ``isa()``."""
    global fq_cap
    fq_cap = _isa.rung(name)
    return isa()


def isa():
    """The paths in use: ``{"int8": "avx512vnni"|"avxvnni"|"avx2"|"portable",
    "bf16": "avx512"|"avx2"|"portable"}``."""
    cdef int level = fq_int8_level()
    name = _INT8_NAMES[level]
    if level == FQ_AVX512 and fq_ymm_evex:
        name = "avxvnni-evex"
    return {"int8": name, "bf16": _BF16_NAMES[fq_bf16_level()]}


def _use_ymm_vnni_tiles(bint on):
    """Test hook: on the AVX-512 path, run the AVX-VNNI (ymm) tiling with the EVEX form of
    vpdpbusd, so CPUs with AVX-512 VNNI but no AVX-VNNI exercise that code too.
    Returns ``isa()``."""
    global fq_ymm_evex
    fq_ymm_evex = on
    return isa()


def available():
    """The int8 path names this CPU can run, lowest first (what ``set_isa`` can select)."""
    return [n for lvl, n in enumerate(_INT8_NAMES) if fq_cpu_has(lvl)]


fq_cap = _isa.rung_from_environment()


# ------------------------------------------------------------------ checks
cdef inline int _check(object a, str name, int dtype, int ndim, str dtname) except -1:
    if not isinstance(a, cnp.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if cnp.PyArray_TYPE(<cnp.ndarray>a) != dtype:
        raise TypeError(f"{name} must be {dtname}, got {a.dtype}")
    if cnp.PyArray_NDIM(<cnp.ndarray>a) != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a):
        raise ValueError(f"{name} must be C-contiguous")
    return 0


cdef inline int _check_vec(object a, str name, Py_ssize_t n) except -1:
    _check(a, name, cnp.NPY_FLOAT32, 1, "float32")
    if cnp.PyArray_DIM(<cnp.ndarray>a, 0) != n:
        raise ValueError(f"{name} must have shape ({n},), got {a.shape}")
    return 0


cdef object _check_out(object out, Py_ssize_t m, Py_ssize_t n, object x):
    if out is None:
        return cnp.PyArray_EMPTY(2, [m, n], cnp.NPY_FLOAT32, 0)
    _check(out, "out", cnp.NPY_FLOAT32, 2, "float32")
    if cnp.PyArray_DIM(<cnp.ndarray>out, 0) != m or cnp.PyArray_DIM(<cnp.ndarray>out, 1) != n:
        raise ValueError(f"out must have shape ({m}, {n}), got {out.shape}")
    if numpy.may_share_memory(out, x):
        raise ValueError("out must not overlap x")
    if not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out):
        raise ValueError("out is read-only")
    return out


cdef Py_ssize_t _rows(object x, Py_ssize_t k) except -1:
    _check(x, "x", cnp.NPY_FLOAT32, 2, "float32")
    if cnp.PyArray_DIM(<cnp.ndarray>x, 1) != k:
        raise ValueError(f"x has {cnp.PyArray_DIM(<cnp.ndarray>x, 1)} columns, the weights "
                         f"{k} rows")
    return cnp.PyArray_DIM(<cnp.ndarray>x, 0)


def _weights(W, str name):
    if not isinstance(W, numpy.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(W).__name__}")
    if W.ndim != 2:
        raise ValueError(f"{name} must be 2-D (k, n), got shape {W.shape}")
    if W.shape[0] == 0 or W.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {W.shape}")


# ------------------------------------------------------------------- int8
# The deepest int8 product whose int32 sums cannot overflow: k * 127 * 127 < 2^31.
MAX_K = (2**31 - 1) // (127 * 127)
# The deepest product whose rows may be quantized to uint8 (k * 255 * 127 < 2^31);
# deeper ones quantize every row to int8.
U8_MAX_K = FQ_U8_MAX_K


cdef Py_ssize_t int8_rows(const float* x, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n,
                          const int8_t* packed, const int32_t* colsum, const float* scales,
                          const float* bias, float* y, bint relu, int nthreads,
                          void* scratch) noexcept nogil:
    """``int8_dense`` on raw pointers (declared in _quant.pxd for the executor); returns
    the number of rows of x holding NaN or an infinity (found while quantizing)."""
    return fq_int8_dense(x, m, k, n, packed, colsum, scales, bias, y, relu,
                  nthreads if nthreads > 0 else 1, scratch)


cdef size_t int8_scratch_bytes(Py_ssize_t m, Py_ssize_t k) noexcept nogil:
    """Scratch bytes ``int8_rows`` needs for m rows of depth k."""
    return fq_int8_scratch(m, k)


cdef void bf16_rows(const float* x, Py_ssize_t m, Py_ssize_t k, Py_ssize_t n,
                    const uint16_t* packed, const float* bias, float* y, bint relu,
                    int nthreads) noexcept nogil:
    """``bf16_dense`` on raw pointers (declared in _quant.pxd for the executor)."""
    fq_bf16_dense(x, m, k, n, packed, bias, y, relu, nthreads if nthreads > 0 else 1)


cdef class PackedInt8:
    """int8 weights laid out for the kernels (16-column blocks, k in groups of 4)
    with their int32 column sums; immutable once made."""
    cdef readonly Py_ssize_t k, n
    cdef readonly object data, colsum

    def __reduce__(self):
        raise TypeError("PackedInt8 is not picklable: save Wq and the scales, and pack again")

    def __repr__(self):
        return f"PackedInt8(k={self.k}, n={self.n})"


def pack_int8(Wq):
    """Lay out ``Wq`` (int8 (k, n), values in [-127, 127]) for ``int8_dense``."""
    _weights(Wq, "Wq")
    if Wq.dtype != numpy.int8:
        raise TypeError(f"Wq must be int8, got {Wq.dtype}")
    if (Wq == -128).any():
        raise ValueError("Wq must lie in [-127, 127] (symmetric quantization), found -128")
    if Wq.shape[0] > MAX_K:
        raise ValueError(f"Wq has {Wq.shape[0]} rows: more than {MAX_K} can overflow the int32 "
                         f"sums (127 * 127 per row)")
    cdef cnp.ndarray w = numpy.ascontiguousarray(Wq)
    cdef Py_ssize_t k = w.shape[0], n = w.shape[1]
    cdef Py_ssize_t kp = (k + 3) // 4 * 4, np_ = (n + 15) // 16 * 16
    cdef cnp.ndarray data = numpy.empty(kp * np_, dtype=numpy.int8)
    cdef cnp.ndarray colsum = numpy.empty(np_, dtype=numpy.int32)
    fq_pack_int8(<const int8_t*>w.data, k, n, <int8_t*>data.data, <int32_t*>colsum.data)
    data.flags.writeable = False
    colsum.flags.writeable = False
    cdef PackedInt8 p = PackedInt8.__new__(PackedInt8)
    p.k, p.n, p.data, p.colsum = k, n, data, colsum
    return p


def int8_dense(x, PackedInt8 packed not None, scales, bias, out=None, int nthreads=1,
               bint relu=False):
    """``out = relu?(dequant(quant(x) @ Wq) + bias)``: x float32 (m, k), scales float32
    (n,), bias float32 (n,) or None, out float32 (m, n) or None (then allocated).
    Returns out."""
    cdef Py_ssize_t k = packed.k, n = packed.n
    cdef Py_ssize_t m = _rows(x, k)
    _check_vec(scales, "scales", n)
    if bias is not None:
        _check_vec(bias, "bias", n)
    out = _check_out(out, m, n, x)
    if m == 0:
        return out
    cdef const float* xp = <const float*>cnp.PyArray_DATA(<cnp.ndarray>x)
    cdef const float* sp = <const float*>cnp.PyArray_DATA(<cnp.ndarray>scales)
    cdef const float* bp = NULL
    if bias is not None:
        bp = <const float*>cnp.PyArray_DATA(<cnp.ndarray>bias)
    cdef float* yp = <float*>cnp.PyArray_DATA(<cnp.ndarray>out)
    cdef const int8_t* wp = <const int8_t*>cnp.PyArray_DATA(<cnp.ndarray>packed.data)
    cdef const int32_t* cs = <const int32_t*>cnp.PyArray_DATA(<cnp.ndarray>packed.colsum)
    cdef void* scratch
    with nogil:
        scratch = malloc(fq_int8_scratch(m, k))
        if scratch != NULL:
            fq_int8_dense(xp, m, k, n, wp, cs, sp, bp, yp, relu, nthreads if nthreads > 0 else 1,
                          scratch)
            free(scratch)
    if scratch == NULL:
        raise MemoryError()
    return out


def int8_matmul_acc(xq, PackedInt8 packed not None):
    """The exact int32 accumulators ``xq @ Wq`` for rows xq (m, k): int8 in [-127, 127]
    (stored as xq + 128, as signed rows are) or uint8 (k at most ``U8_MAX_K``), computed
    by the path in use (for tests of the integer products)."""
    if isinstance(xq, numpy.ndarray) and xq.dtype == numpy.uint8:
        _check(xq, "xq", cnp.NPY_UINT8, 2, "uint8")
    else:
        _check(xq, "xq", cnp.NPY_INT8, 2, "int8")
    cdef bint is_u8 = xq.dtype == numpy.uint8
    cdef Py_ssize_t k = packed.k, n = packed.n
    if xq.shape[1] != k:
        raise ValueError(f"xq has {xq.shape[1]} columns, the weights {k} rows")
    if not is_u8 and (xq == -128).any():
        raise ValueError("xq must lie in [-127, 127]")
    if is_u8 and k > U8_MAX_K:
        raise ValueError(f"uint8 rows of depth {k} can overflow int32 (at most {U8_MAX_K})")
    cdef Py_ssize_t m = xq.shape[0]
    cdef cnp.ndarray out = numpy.empty((m, n), dtype=numpy.int32)
    cdef cnp.ndarray scratch = numpy.empty(max(<Py_ssize_t>fq_int8_scratch(m, k), 4),
                                           dtype=numpy.uint8)
    if m:
        fq_int8_acc(cnp.PyArray_DATA(<cnp.ndarray>xq), is_u8, m, k, n,
                    <const int8_t*>cnp.PyArray_DATA(<cnp.ndarray>packed.data),
                    <const int32_t*>cnp.PyArray_DATA(<cnp.ndarray>packed.colsum),
                    <int32_t*>out.data, <void*>scratch.data)
    return out


# ------------------------------------------------------------------- bf16
def to_bf16(W):
    """float32 W -> bfloat16 bits as uint16 (same shape), rounded to nearest even."""
    if not isinstance(W, numpy.ndarray):
        raise TypeError(f"W must be a numpy.ndarray, got {type(W).__name__}")
    if W.dtype.kind != "f":
        raise TypeError(f"W must be a float array, got {W.dtype}")
    cdef cnp.ndarray w = numpy.ascontiguousarray(W, dtype=numpy.float32)
    cdef cnp.ndarray out = numpy.empty((<object>w).shape, dtype=numpy.uint16)
    fq_to_bf16_array(<const float*>w.data, w.size, <uint16_t*>out.data)
    return out


cdef class PackedBf16:
    """bfloat16 weights laid out for the kernels (32-column blocks); immutable."""
    cdef readonly Py_ssize_t k, n
    cdef readonly object data

    def __reduce__(self):
        raise TypeError("PackedBf16 is not picklable: save the bf16 weights, and pack again")

    def __repr__(self):
        return f"PackedBf16(k={self.k}, n={self.n})"


def pack_bf16(Wb):
    """Lay out ``Wb`` (uint16 bfloat16 bits (k, n), from ``to_bf16``) for ``bf16_dense``."""
    _weights(Wb, "Wb")
    if Wb.dtype != numpy.uint16:
        raise TypeError(f"Wb must be uint16 (bfloat16 bits), got {Wb.dtype}")
    cdef cnp.ndarray w = numpy.ascontiguousarray(Wb)
    cdef Py_ssize_t k = w.shape[0], n = w.shape[1]
    cdef cnp.ndarray data = numpy.empty(k * ((n + 31) // 32 * 32), dtype=numpy.uint16)
    fq_pack_bf16(<const uint16_t*>w.data, k, n, <uint16_t*>data.data)
    data.flags.writeable = False
    cdef PackedBf16 p = PackedBf16.__new__(PackedBf16)
    p.k, p.n, p.data = k, n, data
    return p


def bf16_dense(x, PackedBf16 packed not None, bias, out=None, int nthreads=1, bint relu=False):
    """``out = relu?(x @ float32(Wb) + bias)`` in float32: x float32 (m, k), bias float32
    (n,) or None, out float32 (m, n) or None (then allocated). Returns out."""
    cdef Py_ssize_t k = packed.k, n = packed.n
    cdef Py_ssize_t m = _rows(x, k)
    if bias is not None:
        _check_vec(bias, "bias", n)
    out = _check_out(out, m, n, x)
    if m == 0:
        return out
    cdef const float* xp = <const float*>cnp.PyArray_DATA(<cnp.ndarray>x)
    cdef const float* bp = NULL
    if bias is not None:
        bp = <const float*>cnp.PyArray_DATA(<cnp.ndarray>bias)
    cdef float* yp = <float*>cnp.PyArray_DATA(<cnp.ndarray>out)
    cdef const uint16_t* wp = <const uint16_t*>cnp.PyArray_DATA(<cnp.ndarray>packed.data)
    with nogil:
        fq_bf16_dense(xp, m, k, n, wp, bp, yp, relu, nthreads if nthreads > 0 else 1)
    return out
