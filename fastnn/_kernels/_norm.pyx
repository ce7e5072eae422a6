# (libm calls need not set errno, so sqrt loops vectorize; nothing here reads errno)
"""Batch and layer normalisation, forward and backward, in fused passes.

Batch norm reduces over rows of a C-contiguous (n, d) array: threads split
the columns, and each walks whole row segments, so memory is read in order.
Layer norm works row by row (any leading shape); its dgamma/dbeta column sums
are kept per thread and added at the end. Statistics accumulate in double.
A ``def`` returns None when the arrays do not fit; CpuOps then runs the
reference. Return conventions are those of the matching Ops methods.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.stdlib cimport calloc, free

from ._common cimport F32, cut, data, empty_1d, empty_like, kind, optional, ptr, same, vector

cnp.import_array()


# ---------------------------------------------------------------- batch norm
cdef void _bn_forward_block(const floating* x, const floating* gamma, const floating* beta,
                            double eps, floating* y, floating* xhat, floating* mean,
                            floating* var, floating* inv, double* acc, Py_ssize_t n,
                            Py_ssize_t d, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """Columns [j0, j1): mean, biased variance (two passes), then y and xhat. (Loops run
    over row pointers so the compiler vectorizes them across columns.)"""
    cdef Py_ssize_t r
    for r in range(n):
        _add_row(x + r * d, acc, j0, j1)
    _bn_stats(acc, mean, var, inv, eps, n, d, j0, j1, x)
    for r in range(n):
        _bn_normalize_row(x + r * d, mean, inv, gamma, beta,
                          NULL if xhat == NULL else xhat + r * d, y + r * d, j0, j1)


cdef inline void _add_row(const floating* xr, double* acc, Py_ssize_t j0,
                          Py_ssize_t j1) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(j0, j1):
        acc[j] += xr[j]


cdef inline void _add_sq_row(const floating* xr, const double* mean, double* sq, Py_ssize_t j0,
                             Py_ssize_t j1) noexcept nogil:
    cdef Py_ssize_t j
    cdef double v
    for j in range(j0, j1):
        v = xr[j] - mean[j]
        sq[j] += v * v


cdef void _bn_stats(double* acc, floating* mean, floating* var, floating* inv, double eps,
                    Py_ssize_t n, Py_ssize_t d, Py_ssize_t j0, Py_ssize_t j1,
                    const floating* x) noexcept nogil:
    """From the column sums in acc[j0:j1]: the mean, then a second pass over x for the
    biased variance (into acc[d + j]) and the inverse deviation."""
    cdef Py_ssize_t r, j
    cdef double* sq = acc + d
    for j in range(j0, j1):
        acc[j] /= n
        mean[j] = <floating>acc[j]
    for r in range(n):
        _add_sq_row(x + r * d, acc, sq, j0, j1)
    for j in range(j0, j1):
        var[j] = <floating>(sq[j] / n)
        inv[j] = <floating>(1.0 / sqrt(sq[j] / n + eps))


cdef inline void _bn_normalize_row(const floating* xr, const floating* mean,
                                   const floating* inv, const floating* gamma,
                                   const floating* beta, floating* xhr, floating* yr,
                                   Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """Columns [j0, j1) of one row: xhat = (x - mean) * inv (when xhr), y = xhat * gamma + beta."""
    cdef Py_ssize_t j
    cdef floating* h = yr if xhr == NULL else xhr
    # two loops of one store each: few enough pointer pairs for the vectorizer's
    # run-time overlap checks (one loop with both stores stayed scalar)
    for j in range(j0, j1):
        h[j] = (xr[j] - mean[j]) * inv[j]
    for j in range(j0, j1):
        yr[j] = h[j] * gamma[j] + beta[j]


cdef void _bn_backward_block(const floating* dy, const floating* xhat, const floating* gamma,
                             const floating* inv, floating* dx, floating* dgamma,
                             floating* dbeta, double* acc, Py_ssize_t n, Py_ssize_t d,
                             Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """Columns [j0, j1): dbeta = sum dy, dgamma = sum dy * xhat, then dx."""
    cdef Py_ssize_t r, j
    cdef double* accg = acc + d
    for r in range(n):
        _bn_grad_sums_row(dy + r * d, xhat + r * d, acc, accg, j0, j1)
    for j in range(j0, j1):
        dbeta[j] = <floating>acc[j]
        dgamma[j] = <floating>accg[j]
    for r in range(n):
        _bn_dx_row(dy + r * d, xhat + r * d, gamma, inv, dgamma, dbeta, dx + r * d, n, j0, j1)


cdef inline void _bn_grad_sums_row(const floating* dyr, const floating* xhr, double* acc,
                                   double* accg, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(j0, j1):
        acc[j] += dyr[j]
        accg[j] += dyr[j] * xhr[j]


cdef inline void _bn_dx_row(const floating* dyr, const floating* xhr, const floating* gamma,
                            const floating* inv, const floating* dgamma, const floating* dbeta,
                            floating* dxr, Py_ssize_t n, Py_ssize_t j0,
                            Py_ssize_t j1) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating fn = <floating>n
    for j in range(j0, j1):
        dxr[j] = (gamma[j] * inv[j] / fn) * (fn * dyr[j] - dbeta[j] - xhr[j] * dgamma[j])


cdef void _bn_part(bint backward, const floating* a, const floating* b,
                   const floating* gamma, const floating* c, floating* o1, floating* o2,
                   floating* v1, floating* v2, floating* v3, double eps, double* acc,
                   Py_ssize_t n, Py_ssize_t d, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    if backward:
        _bn_backward_block(a, b, gamma, c, o1, v1, v2, acc, n, d, j0, j1)
    else:
        _bn_forward_block(a, gamma, c, eps, o1, o2, v1, v2, v3, acc, n, d, j0, j1)


cdef int _batchnorm(bint backward, const floating* a, const floating* b, const floating* gamma,
                    const floating* c, floating* o1, floating* o2, floating* v1, floating* v2,
                    floating* v3, double eps, Py_ssize_t n, Py_ssize_t d, int nt) noexcept nogil:
    """Forward: (x, -, gamma, beta) -> (y, xhat; mean, var, inv_std).
    Backward: (dy, xhat, gamma, inv_std) -> (dx, -; dgamma, dbeta)."""
    cdef Py_ssize_t t
    cdef double* acc = <double*>calloc(2 * d + 1, sizeof(double))
    if acc == NULL:
        return -1
    if nt <= 1 or d < 2 * nt:
        _bn_part(backward, a, b, gamma, c, o1, o2, v1, v2, v3, eps, acc, n, d, 0, d)
    else:
        for t in prange(nt, num_threads=nt, schedule="static"):
            _bn_part(backward, a, b, gamma, c, o1, o2, v1, v2, v3, eps, acc, n, d,
                     cut(d, t, nt), cut(d, t + 1, nt))
    free(acc)
    return 0


cdef bint _rows_of(object x, int k, Py_ssize_t* n, Py_ssize_t* d) noexcept:
    """True for a 2-D kernel-friendly array with at least one row; sets n and d."""
    if k < 0 or cnp.PyArray_NDIM(<cnp.ndarray>x) != 2:
        return False
    n[0] = cnp.PyArray_DIM(<cnp.ndarray>x, 0)
    d[0] = cnp.PyArray_DIM(<cnp.ndarray>x, 1)
    return n[0] > 0


def batchnorm_forward(x, gamma, beta, double eps, out, xhat_out, int nthreads):
    """Training-mode batch norm of a 2-D ``x``: (y, mean, var, inv_std), or None."""
    cdef int k = kind(x)
    cdef Py_ssize_t n, d
    if (not _rows_of(x, k, &n, &d) or not vector(gamma, k, d) or not vector(beta, k, d)
            or not optional(out, k, x) or not optional(xhat_out, k, x)):
        return None
    if out is None:
        out = empty_like(x)
    mean, var, inv = empty_1d(d, k), empty_1d(d, k), empty_1d(d, k)
    cdef ptr px = data(x), pg = data(gamma), pb = data(beta), po = data(out)
    cdef ptr ph = data(xhat_out), pm = data(mean), pv = data(var), pi = data(inv)
    cdef int err
    with nogil:
        if k == F32:
            err = _batchnorm(False, <float*>px, NULL, <float*>pg, <float*>pb, <float*>po,
                             <float*>ph, <float*>pm, <float*>pv, <float*>pi, eps, n, d, nthreads)
        else:
            err = _batchnorm(False, <double*>px, NULL, <double*>pg, <double*>pb, <double*>po,
                             <double*>ph, <double*>pm, <double*>pv, <double*>pi, eps, n, d,
                             nthreads)
    if err:
        raise MemoryError()
    return out, mean, var, inv


cdef void _affine_rows(const floating* x, const floating* scale, const floating* shift,
                       floating* y, Py_ssize_t n, Py_ssize_t d, int nt) noexcept nogil:
    """y[r, j] = x[r, j] * scale[j] + shift[j]."""
    cdef Py_ssize_t r, j
    if nt <= 1:
        for r in range(n):
            for j in range(d):
                y[r * d + j] = x[r * d + j] * scale[j] + shift[j]
        return
    for r in prange(n, num_threads=nt, schedule="static"):
        for j in range(d):
            y[r * d + j] = x[r * d + j] * scale[j] + shift[j]


def batchnorm_inference(x, gamma, beta, mean, var, double eps, out, int nthreads):
    """``(x - mean) / sqrt(var + eps) * gamma + beta`` for a 2-D ``x``, or None."""
    cdef int k = kind(x)
    cdef Py_ssize_t n, d
    if (not _rows_of(x, k, &n, &d) or not vector(gamma, k, d) or not vector(beta, k, d)
            or not vector(mean, k, d) or not vector(var, k, d) or not optional(out, k, x)):
        return None
    if out is None:
        out = empty_like(x)
    # Per-column scale and shift in the data's precision, as the reference computes them.
    scale, shift = empty_1d(d, k), empty_1d(d, k)
    if k == F32:
        _fold_stats(<float*>data(gamma), <float*>data(beta), <float*>data(mean),
                    <float*>data(var), eps, <float*>data(scale), <float*>data(shift), d)
    else:
        _fold_stats(<double*>data(gamma), <double*>data(beta), <double*>data(mean),
                    <double*>data(var), eps, <double*>data(scale), <double*>data(shift), d)
    cdef ptr px = data(x), ps = data(scale), pt = data(shift), po = data(out)
    if n < 2:
        nthreads = 1
    with nogil:
        if k == F32:
            _affine_rows(<float*>px, <float*>ps, <float*>pt, <float*>po, n, d, nthreads)
        else:
            _affine_rows(<double*>px, <double*>ps, <double*>pt, <double*>po, n, d, nthreads)
    return out


cdef void _fold_stats(const floating* gamma, const floating* beta, const floating* mean,
                      const floating* var, double eps, floating* scale, floating* shift,
                      Py_ssize_t d) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating feps = <floating>eps
    for j in range(d):
        scale[j] = gamma[j] / (<floating>sqrt(var[j] + feps))
        shift[j] = beta[j] - mean[j] * scale[j]


# ---------------------------------------------------------------- layer norm
cdef void _ln_forward_rows(const floating* x, const floating* gamma, const floating* beta,
                           double eps, floating* y, floating* xhat, floating* inv,
                           Py_ssize_t d, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef const floating* xr
    cdef double mean, sq, v
    cdef floating fmean, finv, h
    for r in range(lo, hi):
        xr = x + r * d
        mean = 0
        for j in range(d):
            mean += xr[j]
        mean /= d
        sq = 0
        for j in range(d):
            v = xr[j] - mean
            sq += v * v
        fmean = <floating>mean
        finv = <floating>(1.0 / sqrt(sq / d + eps))
        inv[r] = finv
        for j in range(d):
            h = (xr[j] - fmean) * finv
            if xhat != NULL:
                xhat[r * d + j] = h
            y[r * d + j] = h * gamma[j] + beta[j]


cdef void _ln_backward_rows(const floating* dy, const floating* xhat, const floating* gamma,
                            const floating* inv, floating* dx, double* acc, Py_ssize_t d,
                            Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """dx for rows [lo, hi); adds their dbeta, dgamma column sums into acc[0:d], acc[d:2d]."""
    cdef Py_ssize_t r, j, o
    cdef double s1, s2, g
    cdef floating fd = <floating>d, c, fs1, fs2, dyv, h
    for r in range(lo, hi):
        o = r * d
        s1 = s2 = 0
        for j in range(d):
            g = dy[o + j] * gamma[j]
            s1 += g
            s2 += g * xhat[o + j]
        c = inv[r] / fd
        fs1 = <floating>s1
        fs2 = <floating>s2
        for j in range(d):
            dyv = dy[o + j]
            h = xhat[o + j]
            acc[j] += dyv
            acc[d + j] += dyv * h
            dx[o + j] = c * (fd * (dyv * gamma[j]) - fs1 - h * fs2)


cdef void _ln_part(bint backward, const floating* a, const floating* b,
                   const floating* gamma, const floating* c, floating* o1, floating* o2,
                   floating* o3, double eps, double* acc, Py_ssize_t d, Py_ssize_t lo,
                   Py_ssize_t hi) noexcept nogil:
    if backward:
        _ln_backward_rows(a, b, gamma, c, o1, acc, d, lo, hi)
    else:
        _ln_forward_rows(a, gamma, c, eps, o1, o2, o3, d, lo, hi)


cdef int _layernorm(bint backward, const floating* a, const floating* b, const floating* gamma,
                    const floating* c, floating* o1, floating* o2, floating* o3, floating* o4,
                    double eps, Py_ssize_t rows, Py_ssize_t d, int nt) noexcept nogil:
    """Forward: (x, -, gamma, beta) -> (y, xhat, inv_std).
    Backward: (dy, xhat, gamma, inv_std) -> (dx, -, dgamma, dbeta), per-thread column sums."""
    cdef Py_ssize_t t, j
    cdef double* acc = NULL
    if rows < 2 * nt:
        nt = 1
    if backward:
        acc = <double*>calloc(2 * d * nt + 1, sizeof(double))
        if acc == NULL:
            return -1
    if nt <= 1:
        _ln_part(backward, a, b, gamma, c, o1, o2, o3, eps, acc, d, 0, rows)
    else:
        for t in prange(nt, num_threads=nt, schedule="static"):
            _ln_part(backward, a, b, gamma, c, o1, o2, o3, eps, acc + 2 * d * t, d,
                     cut(rows, t, nt), cut(rows, t + 1, nt))
    if backward:
        for t in range(1, nt):
            for j in range(2 * d):
                acc[j] += acc[2 * d * t + j]
        for j in range(d):
            o4[j] = <floating>acc[j]
            o3[j] = <floating>acc[d + j]
        free(acc)
    return 0


cdef bint _last_axis(object x, int k, Py_ssize_t* rows, Py_ssize_t* d) noexcept:
    """True for a kernel-friendly array of rank >= 1 with a non-empty last axis."""
    if k < 0 or cnp.PyArray_NDIM(<cnp.ndarray>x) == 0:
        return False
    d[0] = cnp.PyArray_DIM(<cnp.ndarray>x, cnp.PyArray_NDIM(<cnp.ndarray>x) - 1)
    if d[0] == 0:
        return False
    rows[0] = cnp.PyArray_SIZE(<cnp.ndarray>x) // d[0]
    return True


def layernorm_forward(x, gamma, beta, double eps, out, xhat_out, int nthreads):
    """Layer norm over the last axis: (y, inv_std of shape x.shape[:-1]), or None."""
    cdef int k = kind(x)
    cdef Py_ssize_t rows, d
    if (not _last_axis(x, k, &rows, &d) or not vector(gamma, k, d) or not vector(beta, k, d)
            or not optional(out, k, x) or not optional(xhat_out, k, x)):
        return None
    if out is None:
        out = empty_like(x)
    cdef cnp.ndarray xa = <cnp.ndarray>x
    inv = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(xa) - 1, cnp.PyArray_DIMS(xa),
                            cnp.PyArray_TYPE(xa), 0)
    cdef ptr px = data(x), pg = data(gamma), pb = data(beta), po = data(out)
    cdef ptr ph = data(xhat_out), pi = data(inv)
    with nogil:
        if k == F32:
            _layernorm(False, <float*>px, NULL, <float*>pg, <float*>pb, <float*>po, <float*>ph,
                       <float*>pi, NULL, eps, rows, d, nthreads)
        else:
            _layernorm(False, <double*>px, NULL, <double*>pg, <double*>pb, <double*>po,
                       <double*>ph, <double*>pi, NULL, eps, rows, d, nthreads)
    return out, inv


cdef int _grads(bint layer, const floating* dy, const floating* xhat, const floating* gamma,
                const floating* inv, floating* dx, floating* dgamma, floating* dbeta,
                Py_ssize_t n, Py_ssize_t d, int nt) noexcept nogil:
    if layer:
        return _layernorm(True, dy, xhat, gamma, inv, dx, NULL, dgamma, dbeta, 0.0, n, d, nt)
    return _batchnorm(True, dy, xhat, gamma, inv, dx, NULL, dgamma, dbeta, NULL, 0.0, n, d, nt)


cdef object _backward(bint layer, dy, xhat, gamma, inv_std, dx_out, dgamma_out, dbeta_out,
                      int nthreads):
    """Shared checks, allocation and dispatch of the two backward passes."""
    cdef int k = kind(dy)
    cdef Py_ssize_t n, d
    if layer:  # rows of the last axis, one inv_std per row
        if (not _last_axis(dy, k, &n, &d) or kind(inv_std) != k
                or cnp.PyArray_SIZE(<cnp.ndarray>inv_std) != n):
            return None
    elif not _rows_of(dy, k, &n, &d) or not vector(inv_std, k, d):
        return None
    if (not same(xhat, k, dy) or not vector(gamma, k, d) or not optional(dx_out, k, dy)
            or not (dgamma_out is None or vector(dgamma_out, k, d))
            or not (dbeta_out is None or vector(dbeta_out, k, d))):
        return None
    dx = empty_like(dy) if dx_out is None else dx_out
    dgamma = empty_1d(d, k) if dgamma_out is None else dgamma_out
    dbeta = empty_1d(d, k) if dbeta_out is None else dbeta_out
    cdef ptr pdy = data(dy), ph = data(xhat), pg = data(gamma), pi = data(inv_std)
    cdef ptr pdx = data(dx), pdg = data(dgamma), pdb = data(dbeta)
    cdef int err
    with nogil:
        if k == F32:
            err = _grads(layer, <float*>pdy, <float*>ph, <float*>pg, <float*>pi, <float*>pdx,
                         <float*>pdg, <float*>pdb, n, d, nthreads)
        else:
            err = _grads(layer, <double*>pdy, <double*>ph, <double*>pg, <double*>pi,
                         <double*>pdx, <double*>pdg, <double*>pdb, n, d, nthreads)
    if err:
        raise MemoryError()
    return dx, dgamma, dbeta


def batchnorm_backward(dy, xhat, gamma, inv_std, dx_out, dgamma_out, dbeta_out, int nthreads):
    """Gradients of training-mode batch norm of a 2-D ``dy``: (dx, dgamma, dbeta), or None."""
    return _backward(False, dy, xhat, gamma, inv_std, dx_out, dgamma_out, dbeta_out, nthreads)


def layernorm_backward(dy, xhat, gamma, inv_std, dx_out, dgamma_out, dbeta_out, int nthreads):
    """Gradients of layer norm: (dx, dgamma, dbeta), or None."""
    return _backward(True, dy, xhat, gamma, inv_std, dx_out, dgamma_out, dbeta_out, nthreads)


# ---------------------------------------------------------------- float32 entry points
# Declared in _norm.pxd for the compiled executor: the same loops as above. ``acc`` is
# scratch of 2 * d doubles (the column range used is zeroed here).
cdef void bn_forward_cols(const float* x, const float* gamma, const float* beta, double eps,
                          float* y, float* xhat, float* mean, float* var, float* inv,
                          double* acc, Py_ssize_t n, Py_ssize_t d, Py_ssize_t j0,
                          Py_ssize_t j1) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(j0, j1):
        acc[j] = 0
        acc[d + j] = 0
    _bn_forward_block(x, gamma, beta, eps, y, xhat, mean, var, inv, acc, n, d, j0, j1)


cdef void bn_backward_cols(const float* dy, const float* xhat, const float* gamma,
                           const float* inv, float* dx, float* dgamma, float* dbeta,
                           double* acc, Py_ssize_t n, Py_ssize_t d, Py_ssize_t j0,
                           Py_ssize_t j1) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(j0, j1):
        acc[j] = 0
        acc[d + j] = 0
    _bn_backward_block(dy, xhat, gamma, inv, dx, dgamma, dbeta, acc, n, d, j0, j1)


cdef void bn_fold(const float* gamma, const float* beta, const float* mean, const float* var,
                  double eps, float* scale, float* shift, Py_ssize_t d) noexcept nogil:
    """Inference batch norm as one affine map (as ``batchnorm_inference``)."""
    _fold_stats(gamma, beta, mean, var, eps, scale, shift, d)


cdef void bn_inverse_std(const float* var, double eps, float* inv, Py_ssize_t d) noexcept nogil:
    """inv = 1 / sqrt(var + eps) in float32 (as Ops.batchnorm_inference_backward)."""
    cdef Py_ssize_t j
    cdef float feps = <float>eps
    for j in range(d):
        inv[j] = 1 / (<float>sqrt(var[j] + feps))


cdef void bn_inference_backward_cols(const float* dy, const float* x, const float* gamma,
                                     const float* mean, const float* inv, float* dx,
                                     float* dgamma, float* dbeta, double* acc, Py_ssize_t n,
                                     Py_ssize_t d, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """Columns [j0, j1) of the gradients of batch norm with fixed statistics (as
    Ops.batchnorm_inference_backward): dx = dy * gamma * inv (``dx`` may be NULL), and
    dgamma = sum dy * (x - mean) * inv, dbeta = sum dy when those are not NULL."""
    cdef Py_ssize_t r, j
    cdef double* accg = acc + d
    cdef float g
    if dgamma != NULL or dbeta != NULL:
        for j in range(j0, j1):
            acc[j] = 0
            accg[j] = 0
        for r in range(n):
            for j in range(j0, j1):
                g = dy[r * d + j]
                acc[j] += g
                accg[j] += g * ((x[r * d + j] - mean[j]) * inv[j])
        for j in range(j0, j1):
            if dbeta != NULL:
                dbeta[j] = <float>acc[j]
            if dgamma != NULL:
                dgamma[j] = <float>accg[j]
    if dx != NULL:
        for r in range(n):
            for j in range(j0, j1):
                dx[r * d + j] = dy[r * d + j] * (gamma[j] * inv[j])


cdef void affine_rows(const float* x, const float* scale, const float* shift, float* y,
                      Py_ssize_t d, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Rows [lo, hi) of y = x * scale + shift (``_affine_rows``' loop)."""
    _affine_rows(x + lo * d, scale, shift, y + lo * d, hi - lo, d, 1)


cdef void ln_forward_rows(const float* x, const float* gamma, const float* beta, double eps,
                          float* y, float* xhat, float* inv, Py_ssize_t d, Py_ssize_t lo,
                          Py_ssize_t hi) noexcept nogil:
    _ln_forward_rows(x, gamma, beta, eps, y, xhat, inv, d, lo, hi)


cdef void ln_backward_rows(const float* dy, const float* xhat, const float* gamma,
                           const float* inv, float* dx, double* acc, Py_ssize_t d,
                           Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """dx for rows [lo, hi); adds dbeta, dgamma column sums into acc[0:d], acc[d:2d]."""
    _ln_backward_rows(dy, xhat, gamma, inv, dx, acc, d, lo, hi)


# Row-level pieces of the batch-norm forward and backward passes, for an executor that
# runs them interleaved with the stages around (the same loops as _bn_forward_block and
# _bn_backward_block, in the same order, so the results are the same).
cdef void bn_add_row(const float* xr, double* acc, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """acc[j0:j1] += one row of x (the column sums the mean comes from)."""
    _add_row(xr, acc, j0, j1)


cdef void bn_stats_cols(const float* x, double* acc, float* mean, float* var, float* inv,
                        double eps, Py_ssize_t n, Py_ssize_t d, Py_ssize_t j0,
                        Py_ssize_t j1) noexcept nogil:
    """From the column sums of x in acc[j0:j1]: mean, biased variance, inverse deviation."""
    cdef Py_ssize_t j
    for j in range(j0, j1):
        acc[d + j] = 0
    _bn_stats(acc, mean, var, inv, eps, n, d, j0, j1, x)


cdef void bn_normalize_rows(const float* x, const float* mean, const float* inv,
                            const float* gamma, const float* beta, float* xhat, float* y,
                            Py_ssize_t d, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    cdef Py_ssize_t r
    for r in range(r0, r1):
        _bn_normalize_row(x + r * d, mean, inv, gamma, beta,
                          NULL if xhat == NULL else xhat + r * d, y + r * d, 0, d)


cdef void bn_grad_sums_rows(const float* dy, const float* xhat, double* acc, Py_ssize_t d,
                            Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    """acc[0:d] += column sums of dy, acc[d:2d] += of dy * xhat, rows [r0, r1)."""
    cdef Py_ssize_t r
    for r in range(r0, r1):
        _bn_grad_sums_row(dy + r * d, xhat + r * d, acc, acc + d, 0, d)


cdef void bn_dx_rows(const float* dy, const float* xhat, const float* gamma, const float* inv,
                     const float* dgamma, const float* dbeta, float* dx, Py_ssize_t n,
                     Py_ssize_t d, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    cdef Py_ssize_t r
    for r in range(r0, r1):
        _bn_dx_row(dy + r * d, xhat + r * d, gamma, inv, dgamma, dbeta, dx + r * d, n, 0, d)
