# (libm calls need not set errno, so sqrt loops vectorize; nothing here reads errno)
"""Fused loss kernels: the loss sum and its gradient in one pass over each row.

``loss(op, ...)`` checks the arrays, converts targets and sample weights the
way the reference does (``astype`` to the prediction dtype, int64 class ids),
and runs one row-chunked loop; the formulas are those of the matching Ops
method. Loss sums accumulate in double. It returns None when the arrays do not
fit (CpuOps then runs the reference) and raises ValueError for class ids
outside ``[0, classes)``.
"""
import numpy

cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport fabs, log, log1p
from libc.stdint cimport int32_t, int64_t

from ._common cimport F32, cut, data, fexp, flog1p, fsigmoid, kind, optional, ptr, same

cnp.import_array()

# ``LossOp`` and the ``Loss`` descriptor are declared in _losses.pxd.


cdef inline floating _t(const Loss* L, const floating* tr, Py_ssize_t label,
                        Py_ssize_t j) noexcept nogil:
    """Target (j) of a row: dense or one-hot, label smoothing applied."""
    if tr != NULL:
        return tr[j] * <floating>L.on + <floating>L.off
    return <floating>(L.on + L.off) if j == label else <floating>L.off


cdef inline Py_ssize_t _label(const Loss* L, Py_ssize_t r) noexcept nogil:
    if L.ids32 != NULL:
        return L.ids32[r]
    if L.ids64 != NULL:
        return L.ids64[r]
    return -1


cdef inline const floating* _row(ptr a, Py_ssize_t r, Py_ssize_t k, const floating* like) noexcept nogil:
    """Row r of an optional (n, k) array of the same dtype as ``like``."""
    if a == NULL:
        return NULL
    return (<const floating*>a) + r * k


cdef double _softmax_ce(const Loss* L, const floating* x, Py_ssize_t lo,
                        Py_ssize_t hi) noexcept nogil:
    cdef Py_ssize_t r, j, k = L.k, label
    cdef const floating* xr
    cdef const floating* tr
    cdef floating* pr
    cdef floating* gr
    cdef floating m, d, e, p, t, inv, ftsum, gs
    cdef double s, tsum, tdot, w, total = 0
    for r in range(lo, hi):
        xr = x + r * k
        tr = _row(L.dense, r, k, x)
        pr = <floating*>_row(L.probs, r, k, x)
        label = _label(L, r)
        m = xr[0]
        for j in range(1, k):
            if xr[j] > m:
                m = xr[j]
        s = tsum = tdot = 0
        for j in range(k):
            d = xr[j] - m
            t = _t(L, tr, label, j)
            tsum += t
            tdot += t * d
            e = fexp(d)
            pr[j] = e
            s += e
        w = 1.0 if L.weight == NULL else (<const floating*>L.weight)[r]
        total += w * (tsum * log(s) - tdot)
        inv = <floating>(1.0 / s)
        if L.grad == NULL:
            for j in range(k):
                pr[j] = pr[j] * inv
        else:
            gr = <floating*>_row(L.grad, r, k, x)
            gs = <floating>(L.scale * w)
            ftsum = <floating>tsum
            for j in range(k):
                p = pr[j] * inv
                pr[j] = p
                gr[j] = gs * (p * ftsum - _t(L, tr, label, j))
    return total


cdef double _crossentropy(const Loss* L, const floating* x, Py_ssize_t lo,
                          Py_ssize_t hi) noexcept nogil:
    """Cross-entropy on probabilities renormalised per row and clipped (Keras)."""
    cdef Py_ssize_t r, j, k = L.k, label
    cdef const floating* xr
    cdef const floating* tr
    cdef floating* gr
    cdef floating lo_p = <floating>L.eps, hi_p = <floating>(1 - L.eps)
    cdef floating p, c, t, dp, ftotal, gs
    cdef double rowsum, loss, dot, w, total = 0
    for r in range(lo, hi):
        xr = x + r * k
        tr = _row(L.dense, r, k, x)
        gr = <floating*>_row(L.grad, r, k, x)
        label = _label(L, r)
        rowsum = 0
        for j in range(k):
            rowsum += xr[j]
        ftotal = <floating>rowsum
        loss = dot = 0
        for j in range(k):
            p = xr[j] / ftotal
            c = lo_p if p < lo_p else (hi_p if p > hi_p else p)
            t = _t(L, tr, label, j)
            loss -= t * log(c)
            if gr != NULL:
                dp = -t / c if (p > lo_p and p < hi_p) else 0
                gr[j] = dp
                dot += dp * p
        w = 1.0 if L.weight == NULL else (<const floating*>L.weight)[r]
        total += w * loss
        if gr != NULL:
            gs = <floating>(L.scale * w)
            for j in range(k):
                gr[j] = gs * ((gr[j] - <floating>dot) / ftotal)
    return total


cdef double _categorical_hinge(const Loss* L, const floating* x, Py_ssize_t lo,
                               Py_ssize_t hi) noexcept nogil:
    """max(0, 1 + max_{j != y} s_j - s_y) with the first maximum on ties (argmax)."""
    cdef Py_ssize_t r, j, k = L.k, label, best
    cdef const floating* xr
    cdef const floating* tr
    cdef floating* gr
    cdef floating t, masked, top, gs
    cdef double pos, margin, w, total = 0
    for r in range(lo, hi):
        xr = x + r * k
        tr = _row(L.dense, r, k, x)
        label = _label(L, r)
        pos = 0
        best = 0
        top = (1 - _t(L, tr, label, 0)) * xr[0]
        for j in range(k):
            t = _t(L, tr, label, j)
            pos += t * xr[j]
            masked = (1 - t) * xr[j]
            if masked > top:
                top = masked
                best = j
        margin = 1 + top - pos
        w = 1.0 if L.weight == NULL else (<const floating*>L.weight)[r]
        if margin > 0:
            total += w * margin
        if L.grad != NULL:
            gr = <floating*>_row(L.grad, r, k, x)
            gs = <floating>(L.scale * w) if margin > 0 else 0
            for j in range(k):
                gr[j] = -_t(L, tr, label, j) * gs
            gr[best] += (1 - _t(L, tr, label, best)) * gs
    return total


cdef double _elementwise(const Loss* L, const floating* x, Py_ssize_t lo,
                         Py_ssize_t hi) noexcept nogil:
    """Losses that are a mean over columns of a per-entry term (dense targets only)."""
    cdef Py_ssize_t r, j, k = L.k
    cdef const floating* xr
    cdef const floating* tr
    cdef floating* gr
    cdef floating* pr
    cdef floating v, t, p, diff, a, l, dv, gs
    cdef floating lo_p = <floating>L.eps, hi_p = <floating>(1 - L.eps)
    cdef floating delta = <floating>L.eps, fk = <floating>k
    cdef double rowsum, w, total = 0
    cdef int op = L.op
    for r in range(lo, hi):
        xr = x + r * k
        tr = _row(L.dense, r, k, x)
        pr = <floating*>_row(L.probs, r, k, x)
        gr = <floating*>_row(L.grad, r, k, x)
        w = 1.0 if L.weight == NULL else (<const floating*>L.weight)[r]
        gs = <floating>(L.scale * w)
        rowsum = 0
        for j in range(k):
            v = xr[j]
            t = tr[j] * <floating>L.on + <floating>L.off
            if op == SIGMOID_CE:
                p = fsigmoid(v)
                pr[j] = p
                l = (v if v > 0 else 0) - v * t + flog1p(fexp(-fabs(v)))
                dv = p - t
            elif op == BINARY_CE:
                p = lo_p if v < lo_p else (hi_p if v > hi_p else v)
                l = -(t * <floating>log(p) + (1 - t) * <floating>log(1 - p))
                dv = (-t / p + (1 - t) / (1 - p)) if (v > lo_p and v < hi_p) else 0
            else:
                diff = v - t
                a = fabs(diff)
                if op == MSE:
                    l = diff * diff
                    dv = 2 * diff
                elif op == MAE:
                    l = a
                    dv = (diff > 0) - (diff < 0)
                elif op == HUBER:
                    if a <= delta:
                        l = <floating>0.5 * diff * diff
                        dv = diff
                    else:
                        l = delta * a - <floating>0.5 * delta * delta
                        dv = delta * ((diff > 0) - (diff < 0))
                else:  # HINGE, labels 0 mapped to -1
                    if t == 0:
                        t = -1
                    l = 1 - t * v
                    if l > 0:
                        dv = -t
                    else:
                        l = dv = 0
            rowsum += l
            if gr != NULL:
                gr[j] = (dv / fk) * gs
        total += w * (rowsum / k)
    return total


cdef double _rows(const Loss* L, const floating* x, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    if L.op == SOFTMAX_CE:
        return _softmax_ce(L, x, lo, hi)
    if L.op == CROSSENTROPY:
        return _crossentropy(L, x, lo, hi)
    if L.op == CATEGORICAL_HINGE:
        return _categorical_hinge(L, x, lo, hi)
    return _elementwise(L, x, lo, hi)


cdef double _run(const Loss* L, const floating* x, Py_ssize_t n, int nt) noexcept nogil:
    cdef Py_ssize_t c
    cdef double total = 0
    if nt <= 1:
        return _rows(L, x, 0, n)
    for c in prange(nt, num_threads=nt, schedule="static"):
        total += _rows(L, x, cut(n, c, nt), cut(n, c + 1, nt))
    return total


cdef bint check_ids(const Loss* L, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t r, label
    for r in range(n):
        label = _label(L, r)
        if label < 0 or label >= L.k:
            return False
    return True


cdef inline bint _ready(object a, int typenum) noexcept:
    """``a`` is already a C-contiguous array of type ``typenum`` (no conversion needed)."""
    return (cnp.PyArray_TYPE(<cnp.ndarray>a) == typenum
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a))


cdef object prepare_loss(Loss* L, int op, Py_ssize_t n, Py_ssize_t k, int typenum, targets,
                         sample_weight, double grad_scale, double label_smoothing, double eps):
    """Fill ``L`` (all but probs and grad) for predictions of shape (n, k) and NumPy type
    ``typenum``:
    targets as int32/int64 class ids or dense ``dtype`` values, sample weights as
    ``dtype``, converted as the reference does. Returns the (possibly converted) arrays
    to keep alive while ``L`` is used, or None when they do not fit."""
    L.op = op
    L.k = k
    if not isinstance(targets, cnp.ndarray):
        return None
    sparse = (op == SOFTMAX_CE or op == CROSSENTROPY or op == CATEGORICAL_HINGE) \
        and cnp.PyArray_NDIM(<cnp.ndarray>targets) == 1
    if sparse:
        if cnp.PyArray_DIM(<cnp.ndarray>targets, 0) != n:
            return None
        if not _ready(targets, cnp.NPY_INT32) and not _ready(targets, cnp.NPY_INT64):
            if cnp.PyArray_TYPE(<cnp.ndarray>targets) != cnp.NPY_INT32:
                targets = numpy.ascontiguousarray(targets, dtype=numpy.int64)
            else:
                targets = numpy.ascontiguousarray(targets)
    else:
        if (cnp.PyArray_NDIM(<cnp.ndarray>targets) != 2
                or cnp.PyArray_DIM(<cnp.ndarray>targets, 0) != n
                or cnp.PyArray_DIM(<cnp.ndarray>targets, 1) != k):
            return None
        if not _ready(targets, typenum):
            targets = numpy.ascontiguousarray(targets, dtype=cnp.PyArray_DescrFromType(typenum))
    if sample_weight is not None:
        if not isinstance(sample_weight, cnp.ndarray):
            return None
        if not _ready(sample_weight, typenum):
            sample_weight = numpy.ascontiguousarray(sample_weight,
                                                    dtype=cnp.PyArray_DescrFromType(typenum))
        if (cnp.PyArray_NDIM(<cnp.ndarray>sample_weight) != 1
                or cnp.PyArray_DIM(<cnp.ndarray>sample_weight, 0) != n):
            return None
    L.dense = NULL if sparse else data(targets)
    L.ids32 = NULL
    L.ids64 = NULL
    if sparse and cnp.PyArray_TYPE(<cnp.ndarray>targets) == cnp.NPY_INT32:
        L.ids32 = <const int32_t*>data(targets)
    elif sparse:
        L.ids64 = <const int64_t*>data(targets)
    L.weight = data(sample_weight)
    L.scale = grad_scale
    L.eps = eps
    # Smoothing towards uniform over the classes (categorical) or towards 0.5 (binary).
    L.on = 1 - label_smoothing
    L.off = (label_smoothing / L.k if op == SOFTMAX_CE or op == CROSSENTROPY
             else 0.5 * label_smoothing)
    return targets, sample_weight


cdef double loss_rows(const Loss* L, const float* x, Py_ssize_t lo,
                      Py_ssize_t hi) noexcept nogil:
    """The loss sum of rows [lo, hi) of float32 predictions (gradient/probabilities too)."""
    return _rows(L, x, lo, hi)


def loss(int op, pred, targets, probs_out, grad_out, sample_weight, double grad_scale,
         double label_smoothing, double eps, int nthreads):
    """The loss sum of ``op`` (see LossOp); None when the arrays need the reference path."""
    cdef int k = kind(pred)
    if k < 0 or cnp.PyArray_NDIM(<cnp.ndarray>pred) != 2:
        return None
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>pred, 0)
    cdef Loss L
    cdef Py_ssize_t width = cnp.PyArray_DIM(<cnp.ndarray>pred, 1)
    if width == 0 or not optional(grad_out, k, pred):
        return None
    if op == SOFTMAX_CE or op == SIGMOID_CE:
        if not same(probs_out, k, pred):
            return None
    else:
        probs_out = None
    kept = prepare_loss(&L, op, n, width, cnp.PyArray_TYPE(<cnp.ndarray>pred), targets,
                        sample_weight, grad_scale, label_smoothing, eps)
    if kept is None:
        return None
    cdef bint sparse = L.dense == NULL
    L.probs = data(probs_out)
    L.grad = data(grad_out)
    cdef ptr x = data(pred)
    cdef double total
    cdef bint ok = True
    with nogil:
        if sparse:
            ok = check_ids(&L, n)
        if ok:
            if k == F32:
                total = _run(&L, <float*>x, n, nthreads)
            else:
                total = _run(&L, <double*>x, n, nthreads)
    if not ok:
        raise ValueError(f"class ids must lie in [0, {L.k}): the predictions have {L.k} columns")
    return total
