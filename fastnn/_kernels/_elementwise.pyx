# (libm calls need not set errno, so sqrt loops vectorize; nothing here reads errno)
"""Elementwise kernels: activations and their backward passes, bias, dropout, reductions.

Each ``def`` takes ndarrays, checks them through the NumPy C API and returns
``None`` (or ``False``) when it cannot handle them (wrong dtype, not
C-contiguous, shapes that need broadcasting): CpuOps then falls back to the
reference code. ``out=None`` allocates the result. ``nthreads`` comes from the
caller; with 1 no OpenMP region is entered at all (entering one costs ~1 us).
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport M_SQRT2, ceil, fabs, log
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc

from ._common cimport (F32, ptr, cut, data, empty_1d, empty_like, fexp, fexpm1, ferf, flog1p,
                       fsigmoid, ftanh, kind, optional, same, size, vector)

cnp.import_array()

cdef double SELU_ALPHA = 1.6732632423543772
cdef double SELU_SCALE = 1.0507009873554805
cdef double SQRT_2PI = 2.5066282746310002  # math.sqrt(2 * math.pi)
cdef double GELU_C = 0.7978845608028654  # math.sqrt(2 / math.pi)

# Activation codes, shared by ``unary`` (forward), ``backward`` and the compiled executor.
# A member named like an Ops activation method in upper case (RELU6 for ``Ops.relu6``)
# is that activation's kernel: the "cpu" backend and the executor find it by name.
cpdef enum Act:
    LINEAR
    STEP
    RELU
    LEAKY_RELU   # its one parameter: alpha
    ELU          # alpha
    SELU
    SIGMOID
    TANH
    SOFTPLUS
    GELU
    SILU
    CLIP    # forward only: clip to [-param, param]
    SCALE   # forward only: multiply by param
    RELU6
    SOFTSIGN
    HARD_SIGMOID
    HARD_SILU
    EXPONENTIAL
    MISH
    GELU_TANH

# Codes cheap enough per element that a second thread pays from a smaller size
# (CpuOps' LIGHT_MIN_SIZE instead of HEAVY_MIN_SIZE).
CHEAP = (Act.LINEAR, Act.STEP, Act.RELU, Act.LEAKY_RELU, Act.CLIP, Act.SCALE)
# Codes with a forward pass only (no ``backward``): not activations.
FORWARD_ONLY = (Act.CLIP, Act.SCALE)


# ---------------------------------------------------------------- forward activations
cdef void _unary_chunk(int op, const floating* x, floating* y, Py_ssize_t lo, Py_ssize_t hi,
                       floating a) noexcept nogil:
    """y[i] = f(x[i]) for i in [lo, hi); the switch is outside the loops so they vectorize."""
    cdef Py_ssize_t i
    cdef floating v, s
    cdef floating s_scale = <floating>SELU_SCALE, s_neg = <floating>(SELU_SCALE * SELU_ALPHA)
    cdef floating sqrt2 = <floating>M_SQRT2
    if op == LINEAR:
        for i in range(lo, hi):
            y[i] = x[i]
    elif op == STEP:
        for i in range(lo, hi):
            y[i] = 1 if x[i] >= 0 else 0
    elif op == RELU:
        for i in range(lo, hi):
            v = x[i]
            y[i] = 0 if v < 0 else v
    elif op == LEAKY_RELU:
        for i in range(lo, hi):
            v = x[i]
            y[i] = v if v > 0 else v * a
    elif op == ELU:
        for i in range(lo, hi):
            v = x[i]
            y[i] = v if v > 0 else a * fexpm1(v)
    elif op == SELU:
        for i in range(lo, hi):
            v = x[i]
            y[i] = s_scale * v if v > 0 else s_neg * fexpm1(v)
    elif op == SIGMOID:
        for i in range(lo, hi):
            y[i] = fsigmoid(x[i])
    elif op == TANH:
        for i in range(lo, hi):
            y[i] = ftanh(x[i])
    elif op == SOFTPLUS:
        for i in range(lo, hi):
            v = x[i]
            y[i] = (v if v > 0 else 0) + flog1p(fexp(-fabs(v)))
    elif op == GELU:
        for i in range(lo, hi):
            v = x[i]
            y[i] = v * (<floating>0.5 * (1 + ferf(v / sqrt2)))
    elif op == SILU:
        for i in range(lo, hi):
            v = x[i]
            y[i] = v * fsigmoid(v)
    elif op == CLIP:
        for i in range(lo, hi):
            v = x[i]
            y[i] = a if v > a else (-a if v < -a else v)
    elif op == SCALE:
        for i in range(lo, hi):
            y[i] = x[i] * a
    elif op == RELU6:
        for i in range(lo, hi):
            v = x[i]
            y[i] = 0 if v < 0 else (6 if v > 6 else v)
    elif op == SOFTSIGN:
        for i in range(lo, hi):
            v = x[i]
            y[i] = v / (1 + fabs(v))
    elif op == HARD_SIGMOID:
        for i in range(lo, hi):
            v = x[i] / 6 + <floating>0.5
            y[i] = 0 if v < 0 else (1 if v > 1 else v)
    elif op == HARD_SILU:
        for i in range(lo, hi):
            v = x[i] / 6 + <floating>0.5
            y[i] = x[i] * (0 if v < 0 else (1 if v > 1 else v))
    elif op == EXPONENTIAL:
        for i in range(lo, hi):
            y[i] = fexp(x[i])
    elif op == MISH:
        for i in range(lo, hi):
            v = x[i]
            y[i] = v * ftanh((v if v > 0 else 0) + flog1p(fexp(-fabs(v))))
    elif op == GELU_TANH:
        for i in range(lo, hi):
            v = x[i]
            s = ftanh(<floating>GELU_C * (v + <floating>0.044715 * v * v * v))
            y[i] = <floating>0.5 * v * (1 + s)


cdef void _unary(int op, const floating* x, floating* y, Py_ssize_t n, floating a,
                 int nt) noexcept nogil:
    cdef Py_ssize_t c
    if nt <= 1:
        _unary_chunk(op, x, y, 0, n, a)
        return
    for c in prange(nt, num_threads=nt, schedule="static"):
        _unary_chunk(op, x, y, cut(n, c, nt), cut(n, c + 1, nt), a)


def unary(int op, x, out, double param, int nthreads):
    """out = f(x) for activation ``op`` (out may be x; None allocates, except LINEAR,
    which then returns x itself as Ops.linear does). None: unsupported."""
    cdef int k = kind(x)
    if k < 0 or not optional(out, k, x):
        return None
    if out is None and op == LINEAR:
        return x
    if out is None:
        out = empty_like(x)
    cdef Py_ssize_t n = size(x)
    cdef ptr p_x = data(x), p_out = data(out)
    with nogil:
        if k == F32:
            _unary(op, <float*>p_x, <float*>p_out, n, <float>param, nthreads)
        else:
            _unary(op, <double*>p_x, <double*>p_out, n, param, nthreads)
    return out


# ---------------------------------------------------------------- backward activations
cdef void _backward_chunk(int op, const floating* dy, const floating* x, const floating* y,
                          floating* dx, Py_ssize_t lo, Py_ssize_t hi, floating a) noexcept nogil:
    """dx[i] = dy[i] * f'(x[i]) written with whichever of x and y each op needs."""
    cdef Py_ssize_t i
    cdef floating v, s, cdf
    cdef floating s_scale = <floating>SELU_SCALE, s_neg = <floating>(SELU_SCALE * SELU_ALPHA)
    cdef floating sqrt2 = <floating>M_SQRT2
    cdef floating sqrt2pi = <floating>SQRT_2PI
    cdef floating sixth = <floating>(1.0 / 6.0)
    if op == LINEAR:
        for i in range(lo, hi):
            dx[i] = dy[i]
    elif op == STEP:
        for i in range(lo, hi):
            dx[i] = 0
    elif op == RELU:
        for i in range(lo, hi):
            dx[i] = dy[i] * (1 if y[i] > 0 else 0)
    elif op == LEAKY_RELU:
        for i in range(lo, hi):
            dx[i] = dy[i] if x[i] > 0 else dy[i] * a
    elif op == ELU:
        for i in range(lo, hi):
            dx[i] = dy[i] if x[i] > 0 else dy[i] * (y[i] + a)
    elif op == SELU:
        for i in range(lo, hi):
            dx[i] = dy[i] * (s_scale if x[i] > 0 else y[i] + s_neg)
    elif op == SIGMOID:
        for i in range(lo, hi):
            dx[i] = dy[i] * y[i] * (1 - y[i])
    elif op == TANH:
        for i in range(lo, hi):
            dx[i] = dy[i] * (1 - y[i] * y[i])
    elif op == SOFTPLUS:
        for i in range(lo, hi):
            dx[i] = dy[i] * fsigmoid(x[i])
    elif op == GELU:
        for i in range(lo, hi):
            v = x[i]
            cdf = <floating>0.5 * (1 + ferf(v / sqrt2))
            dx[i] = dy[i] * (cdf + v * (fexp(<floating>-0.5 * v * v) / sqrt2pi))
    elif op == SILU:
        for i in range(lo, hi):
            s = fsigmoid(x[i])
            dx[i] = dy[i] * (s + y[i] * (1 - s))
    elif op == RELU6:
        for i in range(lo, hi):
            v = x[i]
            dx[i] = dy[i] * (1 if (v > 0 and v < 6) else 0)
    elif op == SOFTSIGN:
        for i in range(lo, hi):
            v = 1 + fabs(x[i])
            dx[i] = dy[i] / (v * v)
    elif op == HARD_SIGMOID:
        for i in range(lo, hi):
            v = x[i]
            dx[i] = dy[i] * (1 if (v > -3 and v < 3) else 0) * sixth
    elif op == HARD_SILU:
        for i in range(lo, hi):
            v = x[i]
            s = v / 6 + <floating>0.5
            s = 0 if s < 0 else (1 if s > 1 else s)
            dx[i] = dy[i] * (s + v * (1 if (v > -3 and v < 3) else 0) * sixth)
    elif op == EXPONENTIAL:
        for i in range(lo, hi):
            dx[i] = dy[i] * fexp(x[i])
    elif op == MISH:
        for i in range(lo, hi):
            v = x[i]
            s = ftanh((v if v > 0 else 0) + flog1p(fexp(-fabs(v))))
            dx[i] = dy[i] * (s + v * (1 - s * s) * fsigmoid(v))
    elif op == GELU_TANH:
        for i in range(lo, hi):
            v = x[i]
            s = ftanh(<floating>GELU_C * (v + <floating>0.044715 * v * v * v))
            dx[i] = dy[i] * (<floating>0.5 * (1 + s) + <floating>0.5 * v * (1 - s * s)
                             * <floating>GELU_C * (1 + <floating>(3 * 0.044715) * v * v))


cdef void _backward(int op, const floating* dy, const floating* x, const floating* y,
                    floating* dx, Py_ssize_t n, floating a, int nt) noexcept nogil:
    cdef Py_ssize_t c
    if nt <= 1:
        _backward_chunk(op, dy, x, y, dx, 0, n, a)
        return
    for c in prange(nt, num_threads=nt, schedule="static"):
        _backward_chunk(op, dy, x, y, dx, cut(n, c, nt), cut(n, c + 1, nt), a)


cdef bint act_needs_x(int op) noexcept nogil:
    """Whether the backward pass of ``op`` reads its input (else its output is enough)."""
    return (op == LEAKY_RELU or op == ELU or op == SELU or op == SOFTPLUS or op == GELU
            or op == SILU or op >= RELU6)


cdef inline bint _needs_y(int op) noexcept:
    return op == RELU or op == ELU or op == SELU or op == SIGMOID or op == TANH or op == SILU


def backward(int op, dy, x, y, out, double param, int nthreads):
    """out = backprop of activation ``op`` from (dy, x, y); out may be dy (None allocates,
    except LINEAR, which then returns dy itself). None: unsupported."""
    cdef int k = kind(dy)
    if (k < 0 or not optional(out, k, dy) or (act_needs_x(op) and not same(x, k, dy))
            or (_needs_y(op) and not same(y, k, dy))):
        return None
    if out is None and op == LINEAR:
        return dy
    if out is None:
        out = empty_like(dy)
    cdef Py_ssize_t n = size(dy)
    cdef ptr px = data(x) if act_needs_x(op) else NULL
    cdef ptr py = data(y) if _needs_y(op) else NULL
    cdef ptr p_dy = data(dy), p_out = data(out)
    with nogil:
        if k == F32:
            _backward(op, <float*>p_dy, <float*>px, <float*>py, <float*>p_out, n,
                      <float>param, nthreads)
        else:
            _backward(op, <double*>p_dy, <double*>px, <double*>py, <double*>p_out, n,
                      param, nthreads)
    return out


# ---------------------------------------------------------------- softmax (row-wise)
cdef inline floating _row_max(const floating* xr, Py_ssize_t d) noexcept nogil:
    """The largest of a row's d values (softmax subtracts it so exp never overflows)."""
    cdef Py_ssize_t j
    cdef floating m = xr[0]
    for j in range(1, d):
        if xr[j] > m:
            m = xr[j]
    return m


cdef void _softmax_rows(const floating* x, floating* y, Py_ssize_t d, Py_ssize_t lo,
                        Py_ssize_t hi) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef const floating* xr
    cdef floating* yr
    cdef floating m, e, inv
    cdef double total
    for r in range(lo, hi):
        xr = x + r * d
        yr = y + r * d
        m = _row_max(xr, d)
        total = 0
        for j in range(d):
            e = fexp(xr[j] - m)
            yr[j] = e
            total += e
        inv = <floating>(1.0 / total)
        for j in range(d):
            yr[j] = yr[j] * inv


cdef void _backprop_softmax_rows(const floating* dy, const floating* y, floating* dx,
                                 Py_ssize_t d, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef double dot
    cdef floating fdot
    for r in range(lo, hi):
        dot = 0
        for j in range(r * d, (r + 1) * d):
            dot += dy[j] * y[j]
        fdot = <floating>dot
        for j in range(r * d, (r + 1) * d):
            dx[j] = y[j] * (dy[j] - fdot)


cdef void _softmax(const floating* dy, const floating* y, floating* out, Py_ssize_t rows,
                   Py_ssize_t d, int nt) noexcept nogil:
    """Forward softmax of ``y`` into ``out`` when ``dy`` is NULL, else its backward pass."""
    cdef Py_ssize_t c
    if nt <= 1:
        if dy == NULL:
            _softmax_rows(y, out, d, 0, rows)
        else:
            _backprop_softmax_rows(dy, y, out, d, 0, rows)
        return
    for c in prange(nt, num_threads=nt, schedule="static"):
        if dy == NULL:
            _softmax_rows(y, out, d, cut(rows, c, nt), cut(rows, c + 1, nt))
        else:
            _backprop_softmax_rows(dy, y, out, d, cut(rows, c, nt), cut(rows, c + 1, nt))


def softmax(dy, y, out, int nthreads):
    """Softmax over the last axis of ``y`` (``dy`` None), or its backward pass from (dy, y)."""
    cdef int k = kind(y)
    if k < 0 or cnp.PyArray_NDIM(<cnp.ndarray>y) == 0 or not optional(out, k, y):
        return None
    if dy is not None and not same(dy, k, y):
        return None
    if out is None:
        out = empty_like(y)
    cdef Py_ssize_t n = size(y)
    cdef Py_ssize_t d = cnp.PyArray_DIM(<cnp.ndarray>y, cnp.PyArray_NDIM(<cnp.ndarray>y) - 1)
    if n == 0:
        return out
    cdef ptr p_dy = data(dy), p_y = data(y), p_out = data(out)
    with nogil:
        if k == F32:
            _softmax(<float*>p_dy, <float*>p_y, <float*>p_out, n // d, d, nthreads)
        else:
            _softmax(<double*>p_dy, <double*>p_y, <double*>p_out, n // d, d, nthreads)
    return out


# ---------------------------------------------------------------- binary and in-place updates
cdef void _binary_chunk(bint ema, const floating* a, const floating* b, floating* out,
                        floating p, floating q, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """out = a * b, or (ema) out = p * a + q * b."""
    cdef Py_ssize_t i
    if ema:
        for i in range(lo, hi):
            out[i] = p * a[i] + q * b[i]
    else:
        for i in range(lo, hi):
            out[i] = a[i] * b[i]


cdef void _binary(bint ema, const floating* a, const floating* b, floating* out, floating p,
                  floating q, Py_ssize_t n, int nt) noexcept nogil:
    cdef Py_ssize_t c
    if nt <= 1:
        _binary_chunk(ema, a, b, out, p, q, 0, n)
        return
    for c in prange(nt, num_threads=nt, schedule="static"):
        _binary_chunk(ema, a, b, out, p, q, cut(n, c, nt), cut(n, c + 1, nt))


def binary(bint ema, a, b, out, double momentum, int nthreads):
    """out = a * b, or (ema) out = momentum * a + (1 - momentum) * b; equal shapes only."""
    cdef int k = kind(a)
    if k < 0 or not same(b, k, a) or not optional(out, k, a):
        return None
    if out is None:
        out = empty_like(a)
    cdef Py_ssize_t n = size(a)
    cdef ptr p_a = data(a), p_b = data(b), p_out = data(out)
    with nogil:
        if k == F32:
            _binary(ema, <float*>p_a, <float*>p_b, <float*>p_out, <float>momentum,
                    <float>(1 - momentum), n, nthreads)
        else:
            _binary(ema, <double*>p_a, <double*>p_b, <double*>p_out, momentum,
                    1 - momentum, n, nthreads)
    return out


cdef void _add_bias(floating* y, const floating* bias, Py_ssize_t rows, Py_ssize_t d,
                    int nt) noexcept nogil:
    cdef Py_ssize_t r, j
    if nt <= 1:
        for r in range(rows):
            for j in range(d):
                y[r * d + j] += bias[j]
        return
    for r in prange(rows, num_threads=nt, schedule="static"):
        for j in range(d):
            y[r * d + j] += bias[j]


def add_bias(y, bias, int nthreads):
    """y[i, :] += bias in place for a 2-D ``y``. False: unsupported."""
    cdef int k = kind(y)
    if k < 0 or cnp.PyArray_NDIM(<cnp.ndarray>y) != 2:
        return False
    cdef Py_ssize_t d = cnp.PyArray_DIM(<cnp.ndarray>y, 1)
    if not vector(bias, k, d):
        return False
    cdef Py_ssize_t rows = cnp.PyArray_DIM(<cnp.ndarray>y, 0)
    cdef ptr p_y = data(y), p_bias = data(bias)
    with nogil:
        if k == F32:
            _add_bias(<float*>p_y, <float*>p_bias, rows, d, nthreads)
        else:
            _add_bias(<double*>p_y, <double*>p_bias, rows, d, nthreads)
    return True


# ---------------------------------------------------------------- reductions
cdef void _colsum_block(const floating* x, double* acc, floating* out, Py_ssize_t rows,
                        Py_ssize_t d, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """out[j] = sum_r x[r, j] for j in [j0, j1), accumulated row by row in double."""
    cdef Py_ssize_t r, j
    for j in range(j0, j1):
        acc[j] = 0
    for r in range(rows):
        for j in range(j0, j1):
            acc[j] += x[r * d + j]
    for j in range(j0, j1):
        out[j] = <floating>acc[j]


cdef int _sum_rows(const floating* x, floating* out, Py_ssize_t rows, Py_ssize_t d,
                   int nt) noexcept nogil:
    """Column sums; threads split the columns so each reads whole row segments."""
    cdef Py_ssize_t c
    cdef double* acc = <double*>malloc(max(d, 1) * sizeof(double))
    if acc == NULL:
        return -1
    if nt <= 1 or d < 2 * nt:
        _colsum_block(x, acc, out, rows, d, 0, d)
    else:
        for c in prange(nt, num_threads=nt, schedule="static"):
            _colsum_block(x, acc, out, rows, d, cut(d, c, nt), cut(d, c + 1, nt))
    free(acc)
    return 0


def sum_rows(x, out, int nthreads):
    """Column sums of a 2-D ``x`` into ``out`` (d,) or a new array. None: unsupported."""
    cdef int k = kind(x)
    if k < 0 or cnp.PyArray_NDIM(<cnp.ndarray>x) != 2:
        return None
    cdef Py_ssize_t rows = cnp.PyArray_DIM(<cnp.ndarray>x, 0)
    cdef Py_ssize_t d = cnp.PyArray_DIM(<cnp.ndarray>x, 1)
    if out is None:
        out = empty_1d(d, k)
    elif not vector(out, k, d):
        return None
    cdef int err
    cdef ptr p_x = data(x), p_out = data(out)
    with nogil:
        if k == F32:
            err = _sum_rows(<float*>p_x, <float*>p_out, rows, d, nthreads)
        else:
            err = _sum_rows(<double*>p_x, <double*>p_out, rows, d, nthreads)
    if err:
        raise MemoryError()
    return out


cdef double _sumsq_chunk(const floating* x, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Py_ssize_t i
    cdef double total = 0, v
    for i in range(lo, hi):
        v = x[i]
        total += v * v
    return total


cdef double _sumsq(const floating* x, Py_ssize_t n, int nt) noexcept nogil:
    cdef Py_ssize_t c
    cdef double total = 0
    if nt <= 1:
        return _sumsq_chunk(x, 0, n)
    for c in prange(nt, num_threads=nt, schedule="static"):
        total += _sumsq_chunk(x, cut(n, c, nt), cut(n, c + 1, nt))
    return total


def sumsq(x, int nthreads):
    """Sum of squares of all entries in double precision. None: unsupported."""
    cdef int k = kind(x)
    if k < 0:
        return None
    cdef Py_ssize_t n = size(x)
    cdef double total
    cdef ptr p_x = data(x)
    with nogil:
        if k == F32:
            total = _sumsq(<float*>p_x, n, nthreads)
        else:
            total = _sumsq(<double*>p_x, n, nthreads)
    return total


# ---------------------------------------------------------------- dropout
cdef extern from "dropout.h":
    void fastnn_dropout_f32(const float* x, float* mask, float* y, uint64_t seed,
                            uint64_t thresh, float keep, Py_ssize_t lo,
                            Py_ssize_t hi) noexcept nogil
    void fastnn_dropout_f64(const double* x, double* mask, double* y, uint64_t seed,
                            uint64_t thresh, double keep, Py_ssize_t lo,
                            Py_ssize_t hi) noexcept nogil


cdef inline uint64_t _keep_threshold(double rate) noexcept nogil:
    """Entry i is kept when splitmix64(seed + i) >> 40 (k, 24 bits) is at least this:
    k / 2^24 >= rate exactly when k >= ceil(rate * 2^24) (as ops._uniform24 compares)."""
    if not rate > 0:
        return 0
    return <uint64_t>ceil(rate * 16777216.0)


cdef void _dropout_chunk(floating* out, uint64_t seed, double rate, floating keep,
                         Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    if floating is float:
        fastnn_dropout_f32(NULL, out, NULL, seed, _keep_threshold(rate), keep, lo, hi)
    else:
        fastnn_dropout_f64(NULL, out, NULL, seed, _keep_threshold(rate), keep, lo, hi)


cdef void _dropout(floating* out, uint64_t seed, double rate, floating keep, Py_ssize_t n,
                   int nt) noexcept nogil:
    cdef Py_ssize_t c
    if nt <= 1:
        _dropout_chunk(out, seed, rate, keep, 0, n)
        return
    for c in prange(nt, num_threads=nt, schedule="static"):
        _dropout_chunk(out, seed, rate, keep, cut(n, c, nt), cut(n, c + 1, nt))


def dropout_mask(out, double rate, uint64_t seed, double keep_value, int nthreads):
    """Fill ``out`` with the counter-based dropout mask; entry i depends only on seed + i."""
    cdef int k = kind(out)
    if k < 0:
        return False
    cdef Py_ssize_t n = size(out)
    cdef ptr p_out = data(out)
    with nogil:
        if k == F32:
            _dropout(<float*>p_out, seed, rate, <float>keep_value, n, nthreads)
        else:
            _dropout(<double*>p_out, seed, rate, keep_value, n, nthreads)
    return True


# ---------------------------------------------------------------- float32 entry points
# Declared in _elementwise.pxd for the compiled executor: the same loops as above.
cdef void act_forward(int op, const float* x, float* y, Py_ssize_t lo, Py_ssize_t hi,
                      float a) noexcept nogil:
    _unary_chunk(op, x, y, lo, hi, a)


cdef void act_backward(int op, const float* dy, const float* x, const float* y, float* dx,
                       Py_ssize_t lo, Py_ssize_t hi, float a) noexcept nogil:
    _backward_chunk(op, dy, x, y, dx, lo, hi, a)


cdef void softmax_rows(const float* x, float* y, Py_ssize_t d, Py_ssize_t lo,
                       Py_ssize_t hi) noexcept nogil:
    _softmax_rows(x, y, d, lo, hi)


cdef void softmax_backward_rows(const float* dy, const float* y, float* dx, Py_ssize_t d,
                                Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    _backprop_softmax_rows(dy, y, dx, d, lo, hi)


cdef void log_softmax_rows(const float* x, float* y, Py_ssize_t d, Py_ssize_t lo,
                           Py_ssize_t hi) noexcept nogil:
    """y = x - max - log(sum(exp(x - max))) per row (as Ops.log_softmax)."""
    cdef Py_ssize_t r, j
    cdef const float* xr
    cdef float* yr
    cdef float m, lse
    cdef double total
    for r in range(lo, hi):
        xr = x + r * d
        yr = y + r * d
        m = _row_max(xr, d)
        total = 0
        for j in range(d):
            total += fexp(xr[j] - m)
        lse = <float>log(total)
        for j in range(d):
            yr[j] = (xr[j] - m) - lse


cdef void log_softmax_backward_rows(const float* dy, const float* y, float* dx, Py_ssize_t d,
                                    Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """dx = dy - exp(y) * sum(dy) per row (as Ops.backprop_log_softmax)."""
    cdef Py_ssize_t r, j
    cdef double total
    cdef float s
    for r in range(lo, hi):
        total = 0
        for j in range(r * d, (r + 1) * d):
            total += dy[j]
        s = <float>total
        for j in range(r * d, (r + 1) * d):
            dx[j] = dy[j] - fexp(y[j]) * s


cdef void multiply(const float* a, const float* b, float* out, Py_ssize_t lo,
                   Py_ssize_t hi) noexcept nogil:
    _binary_chunk(False, a, b, out, <float>0, <float>0, lo, hi)


cdef void ema_update(float* average, const float* value, double momentum, Py_ssize_t lo,
                     Py_ssize_t hi) noexcept nogil:
    """average = momentum * average + (1 - momentum) * value (as ``binary(True, ...)``)."""
    _binary_chunk(True, average, value, average, <float>momentum, <float>(1 - momentum), lo, hi)


cdef void dropout_fill(float* out, uint64_t seed, double rate, float keep, Py_ssize_t lo,
                       Py_ssize_t hi) noexcept nogil:
    _dropout_chunk(out, seed, rate, keep, lo, hi)


cdef void dropout_apply(const float* x, float* mask, float* y, uint64_t seed, double rate,
                        float keep, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """mask[lo:hi] as ``dropout_fill``, and y = x * mask in the same pass."""
    fastnn_dropout_f32(x, mask, y, seed, _keep_threshold(rate), keep, lo, hi)


cdef void column_sums(const float* x, double* acc, float* out, Py_ssize_t rows, Py_ssize_t d,
                      Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """out[j0:j1] = x[:, j0:j1].sum(axis=0) (``acc``: d doubles of scratch)."""
    _colsum_block(x, acc, out, rows, d, j0, j1)


# ---------------------------------------------------------------- PReLU and maxout (float32)
cdef void prelu_rows(const float* x, const float* alpha, float* y, Py_ssize_t d,
                     Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """y = x where x > 0 else alpha * x, alpha per column (as Ops.prelu)."""
    cdef Py_ssize_t r, j
    cdef float v
    for r in range(lo, hi):
        for j in range(d):
            v = x[r * d + j]
            y[r * d + j] = v if v > 0 else alpha[j] * v


cdef void prelu_backward_rows(const float* dy, const float* x, const float* alpha, float* dx,
                              double* dalpha_acc, Py_ssize_t d, Py_ssize_t lo,
                              Py_ssize_t hi) noexcept nogil:
    """dx = dy where x > 0 else alpha * dy (``dx`` may be NULL); adds the column sums of
    dy * x where x <= 0 into ``dalpha_acc`` (may be NULL) (as Ops.backprop_prelu)."""
    cdef Py_ssize_t r, j
    cdef float v, g
    for r in range(lo, hi):
        for j in range(d):
            v = x[r * d + j]
            g = dy[r * d + j]
            if dx != NULL:
                dx[r * d + j] = alpha[j] * g if v <= 0 else g
            if dalpha_acc != NULL and v <= 0:
                dalpha_acc[j] += g * v


cdef void maxout_rows(const float* z, float* y, int* argmax, Py_ssize_t units, int pieces,
                      Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """y[r, u] = max of z[r, u * pieces: (u + 1) * pieces], the first on ties; the winning
    piece goes to ``argmax`` (may be NULL) (as Ops.maxout)."""
    cdef Py_ssize_t r, u, base
    cdef int k, best
    cdef float top
    for r in range(lo, hi):
        for u in range(units):
            base = (r * units + u) * pieces
            best = 0
            top = z[base]
            for k in range(1, pieces):
                if z[base + k] > top:
                    top = z[base + k]
                    best = k
            y[r * units + u] = top
            if argmax != NULL:
                argmax[r * units + u] = best


cdef void maxout_backward_rows(const float* dy, const int* argmax, float* dz, Py_ssize_t units,
                               int pieces, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """dz: dy routed to each unit's winning piece, 0 elsewhere (as Ops.backprop_maxout)."""
    cdef Py_ssize_t r, u, base
    cdef int k
    for r in range(lo, hi):
        for u in range(units):
            base = (r * units + u) * pieces
            for k in range(pieces):
                dz[base + k] = 0
            dz[base + argmax[r * units + u]] = dy[r * units + u]


# ---------------------------------------------------------------- general ReLU (float32)
cdef void general_relu_forward(const float* x, float* y, Py_ssize_t lo, Py_ssize_t hi,
                               const GeneralRelu* p) noexcept nogil:
    """Keras' ReLU with its three arguments (as Ops.general_relu): x from ``threshold``
    up, ``negative_slope * (x - threshold)`` below, capped at ``max_value`` if any."""
    cdef Py_ssize_t i
    cdef float v, r
    for i in range(lo, hi):
        v = x[i]
        r = v if v >= p.threshold else p.negative_slope * (v - p.threshold)
        if p.has_max and r > p.max_value:
            r = p.max_value
        y[i] = r


cdef void general_relu_backward(const float* dy, const float* x, float* dx, Py_ssize_t lo,
                                Py_ssize_t hi, const GeneralRelu* p) noexcept nogil:
    """dx = dy * (1 from ``threshold`` up, ``negative_slope`` below, 0 from ``max_value``)."""
    cdef Py_ssize_t i
    cdef float v, slope
    for i in range(lo, hi):
        v = x[i]
        slope = 1 if v >= p.threshold else p.negative_slope
        if p.has_max and v >= p.max_value:
            slope = 0
        dx[i] = dy[i] * slope
