"""Row-major sgemm/dgemm through scipy.linalg.cython_blas, or our own sgemm (sgemm.h).

BLAS is column-major; a row-major ``C = op(A) @ op(B)`` is the column-major
``C^T = op(B)^T @ op(A)^T``, so we call it with the operands swapped.

float32 products of the shapes where it was measured faster than OpenBLAS
(``own_sgemm_wins``: see docs/gemm.md) go to sgemm.h's AVX-512 or AVX2+FMA
kernel instead, when the CPU has one, ``alpha`` is 1, ``beta`` is 0 or 1 and
the BLAS pool runs one thread (a pool of several would split a large product
over the cores, which our single-threaded kernel does not; a BLAS whose pool
size cannot be read, not OpenBLAS, counts as one thread). float64 stays on
BLAS. ``FASTNN_ISA`` (read at import) or ``set_isa`` caps the path, as for the
int8 kernels: ``portable`` keeps every product on BLAS.

The kernels never change the BLAS thread count: a caller whose OpenMP threads
each call BLAS holds the pool to one thread around the whole call, through
threadpoolctl (``fastnn.backend.threads.blas_single_thread``).
"""
import os

from . import isa as _isa

from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm

cdef extern from "sgemm.h":
    int FSG_NONE, FSG_AVX2, FSG_AVX512, FSG_KC
    int fsg_cpu_level() nogil
    int fsg_sgemm(int level, int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n,
                  Py_ssize_t k, const float* a, Py_ssize_t lda, const float* b,
                  Py_ssize_t ldb, int beta1, float* c, Py_ssize_t ldc) nogil

ctypedef int (*threads_fn)() noexcept nogil

# The path in use (min of the CPU's and the cap), set at import and by set_isa.
cdef int own_level = FSG_NONE
# Test and benchmark hook: send every float32 product our path can take to it.
cdef bint route_all = False
# OpenBLAS's openblas_get_num_threads for scipy's library, or NULL when not found.
cdef threads_fn blas_threads = NULL


cdef inline bint own_wins(int level, bint trans_a, bint trans_b, int m, int n,
                          int k) noexcept nogil:
    """Whether sgemm.h was measured faster than OpenBLAS (1 thread) for this shape
    (bench/sgemm_shapes.py; figures in docs/gemm.md).

    AVX-512 path, against OpenBLAS's SkylakeX kernels:
    - n under 16 (a classifier's last layer): OpenBLAS's narrow kernels win.
    - A @ B and A^T @ B under 2^20 multiply-adds: OpenBLAS's small-matrix kernels
      (no packing) win; A @ B^T, whose B OpenBLAS transposes, is ours at any size.
    AVX2 path, against OpenBLAS's Haswell kernels (which have no small-matrix or
    narrow special case, so ours wins there): A^T @ B from 2^22 multiply-adds on
    stays on BLAS.
    Both: under 4 rows (OpenBLAS hands those to its GEMV), under 4 columns or a K
    under 4 (AVX2), C re-read once per K block (k > FSG_KC) from beyond L2 (m*n
    over 2^18 floats), or an A block over 2^18 floats (OpenBLAS's cache blocking
    wins) stay on BLAS."""
    cdef double macs = <double>m * n * k
    if level == FSG_NONE or m < 4 or (trans_a and trans_b):  # A^T @ B^T: not measured
        return False
    if k > FSG_KC and <double>m * n > 262144.0:
        return False
    if <double>m * (k if k < FSG_KC else FSG_KC) > 262144.0:
        return False
    if level == FSG_AVX2:
        return n >= 4 and k >= 4 and not (trans_a and macs >= 4194304.0)
    if n < 16:
        return False
    if not trans_b and macs < 1048576.0:
        return False
    return True


cdef void gemm_rm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                  const floating* a, int lda, const floating* b, int ldb, floating beta,
                  floating* c, int ldc) noexcept nogil:
    """C (m x n, row-major, leading dim ldc) = alpha * op(A) @ op(B) + beta * C."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        if (own_level != FSG_NONE and alpha == 1 and (beta == 0 or beta == 1)
                and (route_all or own_wins(own_level, trans_a, trans_b, m, n, k))
                and (blas_threads == NULL or blas_threads() == 1)):
            if fsg_sgemm(own_level, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta == 1,
                         c, ldc):
                return
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda, &beta, c, &ldc)


cdef product_shape(Py_ssize_t a0, Py_ssize_t a1, Py_ssize_t b0, Py_ssize_t b1,
                   Py_ssize_t c0, Py_ssize_t c1, bint trans_a, bint trans_b, str who):
    """(m, n, k) of ``C = op(A) @ op(B)`` from the stored shapes; ValueError when they
    do not agree or one is empty (``who`` names the caller)."""
    cdef Py_ssize_t m = a1 if trans_a else a0
    cdef Py_ssize_t k = a0 if trans_a else a1
    cdef Py_ssize_t kb = b1 if trans_b else b0
    cdef Py_ssize_t n = b0 if trans_b else b1
    if k != kb or c0 != m or c1 != n:
        raise ValueError(f"gemm shapes do not agree: op(a) is ({m}, {k}), op(b) is ({kb}, {n}), "
                         f"out is ({c0}, {c1})")
    if m == 0 or n == 0 or k == 0:
        raise ValueError(f"{who} needs non-empty operands")
    return m, n, k


def gemm(const floating[:, ::1] a, const floating[:, ::1] b, floating[:, ::1] out,
         bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0):
    """``out = alpha * op(a) @ op(b) + beta * out`` for C-contiguous 2-D arrays; releases the GIL."""
    cdef int m, n, k
    m, n, k = product_shape(a.shape[0], a.shape[1], b.shape[0], b.shape[1], out.shape[0],
                            out.shape[1], trans_a, trans_b,
                            "gemm kernel (Ops.gemm handles empty ones)")
    cdef int lda = a.shape[1]
    cdef int ldb = b.shape[1]
    cdef int ldc = out.shape[1]
    with nogil:
        gemm_rm(trans_a, trans_b, m, n, k, <floating>alpha, &a[0, 0], lda, &b[0, 0], ldb,
                <floating>beta, &out[0, 0], ldc)



# The shared cap ladder (isa.py) onto our paths: no VNNI rung here.
_LEVEL_OF_RUNG = {_isa.PORTABLE: FSG_NONE, _isa.AVX2: FSG_AVX2, _isa.AVXVNNI: FSG_AVX2,
                  _isa.AVX512: FSG_AVX512}
_NAMES = {FSG_NONE: "blas", FSG_AVX2: "avx2", FSG_AVX512: "avx512"}


def _level_of(name):
    return _LEVEL_OF_RUNG[_isa.rung(name)]


def set_isa(name=None):
    """Cap the float32 GEMM path (for tests and comparisons): ``portable``/``blas``
    keeps BLAS, ``avx2`` and ``avx512`` allow our kernels up to that level (the CPU's
    features still decide). ``None`` goes back to ``FASTNN_ISA`` (or no cap).
    Returns ``isa()``."""
    global own_level
    own_level = min(_level_of(name), fsg_cpu_level())
    return isa()


def isa():
    """The float32 GEMM path in use: ``"avx512"``, ``"avx2"`` or ``"blas"``."""
    return _NAMES[own_level]


def available():
    """The paths this CPU can run, lowest first (what ``set_isa`` can select)."""
    return [_NAMES[lvl] for lvl in (FSG_NONE, FSG_AVX2, FSG_AVX512) if lvl <= fsg_cpu_level()]


def _route_all(bint on):
    """Test and benchmark hook: with ``on``, ``gemm`` sends every float32 product
    (alpha 1, beta 0 or 1, one BLAS thread) to our kernel on the current path,
    whatever its shape. Returns the previous setting."""
    global route_all
    previous = route_all
    route_all = on
    return previous


def own_sgemm_wins(int m, int n, int k, bint trans_a=False, bint trans_b=False):
    """Whether ``gemm`` sends a float32 product of this shape to our kernel on the
    current path (when the BLAS pool runs one thread)."""
    return own_wins(own_level, trans_a, trans_b, m, n, k)


cdef _check_rows(str name, const float[:, :] arr):
    if arr.strides[1] != 4 or arr.strides[0] % 4 or arr.strides[0] < 4 * arr.shape[1]:
        raise ValueError(f"{name} needs contiguous rows (unit column stride), "
                         f"got strides ({arr.strides[0]}, {arr.strides[1]})")


def own_sgemm(const float[:, :] a, const float[:, :] b, float[:, :] out, bint trans_a=False,
              bint trans_b=False, double beta=0.0, isa=None):
    """``out = op(a) @ op(b) (+ out when beta is 1)`` with sgemm.h on path ``isa``
    (default: the current one), whatever the shape: for tests and benchmarks. Rows
    may be strided (a leading dimension larger than the row), columns must be
    contiguous."""
    cdef int level = own_level if isa is None else _level_of(isa)
    if isa is None and level == FSG_NONE:
        raise ValueError("no path of our own is in use (isa() is 'blas'): pass isa=")
    if level == FSG_NONE or level > fsg_cpu_level():
        raise ValueError(f"path {isa!r} is not available on this CPU (have {available()})")
    if beta != 0.0 and beta != 1.0:
        raise ValueError(f"beta must be 0 or 1, got {beta}")
    cdef Py_ssize_t m, n, k
    m, n, k = product_shape(a.shape[0], a.shape[1], b.shape[0], b.shape[1], out.shape[0],
                            out.shape[1], trans_a, trans_b, "own_sgemm")
    _check_rows("a", a)
    _check_rows("b", b)
    _check_rows("out", out)
    cdef Py_ssize_t lda = a.strides[0] // 4, ldb = b.strides[0] // 4, ldc = out.strides[0] // 4
    with nogil:
        fsg_sgemm(level, trans_a, trans_b, m, n, k, &a[0, 0], lda, &b[0, 0], ldb,
                  beta == 1.0, &out[0, 0], ldc)


def _bind_blas_threads():
    """Find OpenBLAS's thread-count query for the library behind scipy's cython_blas."""
    global blas_threads
    try:
        from threadpoolctl import ThreadpoolController
        import ctypes
        libs = ThreadpoolController().select(internal_api="openblas").lib_controllers
    except Exception:
        return
    # scipy's cython_blas uses the 32-bit-integer OpenBLAS (numpy may load an ILP64 one too).
    libs = sorted(libs, key=lambda lc: ("scipy" not in os.path.dirname(lc.filepath),
                                        "64" in os.path.basename(lc.filepath)))
    names = ("scipy_openblas_get_num_threads", "openblas_get_num_threads",
             "scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_")
    for lc in libs:
        try:  # the loaded library by its path (threadpoolctl < 3.2 has no ``dynlib``)
            lib = ctypes.CDLL(lc.filepath)
        except OSError:
            continue
        fn = next((f for f in (getattr(lib, nm, None) for nm in names) if f), None)
        if fn is not None:
            blas_threads = <threads_fn><size_t>ctypes.cast(fn, ctypes.c_void_p).value
            return


def _init():
    global own_level
    _bind_blas_threads()
    own_level = min(_LEVEL_OF_RUNG[_isa.rung_from_environment()], fsg_cpu_level())


_init()
