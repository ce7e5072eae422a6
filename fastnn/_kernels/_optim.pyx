# (libm calls need not set errno, so sqrt loops vectorize; nothing here reads errno)
"""Optimizer steps, each one fused pass over a model's flat parameter buffer.

Every optimizer fills a ``Step`` (its slot arrays and its per-step constants,
computed once in double) and runs one chunked loop; the formulas are those of
the matching ``Ops.*_step``. A ``def`` returns False when the arrays do not
fit (dtype, contiguity, shape): CpuOps then runs the reference.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt

from ._common cimport F32, cut, data, fsqrt, kind, optional, ptr, same, size

cnp.import_array()

cdef extern from "adam.h":
    void fastnn_adam_f32(float* p, const float* g, float* m, float* v, Py_ssize_t lo,
                         Py_ssize_t hi, float decay, float alpha, float one_minus_b1,
                         float one_minus_b2, float eps) noexcept nogil

cdef enum Op:
    SGD
    SGD_MOMENTUM
    SGD_NESTEROV
    ADAM
    ADAGRAD
    ADADELTA
    RMSPROP
    NADAM

ctypedef struct Step:
    int op
    ptr s1      # first slot: velocity, m, accumulator, acc_grad or ms
    ptr s2      # second slot: v, acc_delta or the RMSprop momentum buffer (or NULL)
    ptr s3      # third slot: AMSGrad's vhat or centered RMSprop's mg (or NULL)
    double c[8]  # c[0] is always lr * weight_decay; the rest per optimizer below


cdef void _chunk(const Step* st, floating* p, const floating* g, Py_ssize_t lo,
                 Py_ssize_t hi) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating* s1 = <floating*>st.s1
    cdef floating* s2 = <floating*>st.s2
    cdef floating* s3 = <floating*>st.s3
    cdef floating decay = <floating>st.c[0], c1 = <floating>st.c[1], c2 = <floating>st.c[2]
    cdef floating c3 = <floating>st.c[3], c4 = <floating>st.c[4], c5 = <floating>st.c[5]
    cdef floating c6 = <floating>st.c[6], c7 = <floating>st.c[7]
    cdef floating gi, pi, a, d
    cdef int op = st.op
    if op == SGD:  # c1 = lr
        for i in range(lo, hi):
            pi = p[i] - decay * p[i]
            p[i] = pi - c1 * g[i]
    elif op == SGD_MOMENTUM or op == SGD_NESTEROV:  # c1 = lr, c2 = momentum
        for i in range(lo, hi):
            pi = p[i] - decay * p[i]
            s1[i] = s1[i] * c2 - c1 * g[i]
            if op == SGD_NESTEROV:
                p[i] = pi + (c2 * s1[i] - c1 * g[i])
            else:
                p[i] = pi + s1[i]
    elif op == ADAM and floating is float and s3 == NULL:  # the common case, in adam.h
        fastnn_adam_f32(<float*>p, <const float*>g, <float*>s1, <float*>s2, lo, hi, decay,
                        c1, c2, c3, c4)
    elif op == ADAM:  # c1 = alpha, c2 = 1 - b1, c3 = 1 - b2, c4 = eps
        for i in range(lo, hi):
            gi = g[i]
            pi = p[i] - decay * p[i]
            s1[i] = s1[i] + c2 * (gi - s1[i])
            s2[i] = s2[i] + c3 * (gi * gi - s2[i])
            d = s2[i]
            if s3 != NULL:
                if s3[i] > d:
                    d = s3[i]
                s3[i] = d
            p[i] = pi - c1 * s1[i] / (fsqrt(d) + c4)
    elif op == ADAGRAD:  # c1 = lr, c2 = eps
        for i in range(lo, hi):
            gi = g[i]
            pi = p[i] - decay * p[i]
            s1[i] = s1[i] + gi * gi
            p[i] = pi - c1 * gi / fsqrt(s1[i] + c2)
    elif op == ADADELTA:  # c1 = lr, c2 = rho, c3 = 1 - rho, c4 = eps
        for i in range(lo, hi):
            gi = g[i]
            pi = p[i] - decay * p[i]
            s1[i] = s1[i] * c2 + c3 * gi * gi
            d = fsqrt(s2[i] + c4) / fsqrt(s1[i] + c4) * gi
            s2[i] = s2[i] * c2 + c3 * d * d
            p[i] = pi - c1 * d
    elif op == RMSPROP:  # c1 = lr, c2 = rho, c3 = 1 - rho, c4 = eps, c5 = momentum
        for i in range(lo, hi):
            gi = g[i]
            pi = p[i] - decay * p[i]
            s1[i] = s1[i] * c2 + c3 * gi * gi
            d = s1[i]
            if s3 != NULL:
                s3[i] = s3[i] * c2 + c3 * gi
                d = d - s3[i] * s3[i]
            a = c1 * gi / fsqrt(d + c4)
            if s2 != NULL:
                s2[i] = s2[i] * c5 + a
                a = s2[i]
            p[i] = pi - a
    elif op == NADAM:
        # c1 = lr, c2 = 1 - b1, c3 = 1 - b2, c4 = eps, c5 = u_t1 / (1 - u_product * u_t1),
        # c6 = (1 - u_t) / (1 - u_product), c7 = 1 - b2^t
        for i in range(lo, hi):
            gi = g[i]
            pi = p[i] - decay * p[i]
            s1[i] = s1[i] + c2 * (gi - s1[i])
            s2[i] = s2[i] + c3 * (gi * gi - s2[i])
            a = c5 * s1[i] + c6 * gi
            p[i] = pi - c1 * a / (fsqrt(s2[i] / c7) + c4)


cdef void _run(const Step* st, floating* p, const floating* g, Py_ssize_t n,
               int nt) noexcept nogil:
    cdef Py_ssize_t c
    if nt <= 1:
        _chunk(st, p, g, 0, n)
        return
    for c in prange(nt, num_threads=nt, schedule="static"):
        _chunk(st, p, g, cut(n, c, nt), cut(n, c + 1, nt))


cdef bint _step(Step* st, param, grad, s1, s2, s3, int need, int nthreads):
    """Check that every array matches ``param`` and run the step.

    The first ``need`` slots are required by the formula; the others may be None.
    """
    cdef int k = kind(param)
    if k < 0 or not same(grad, k, param):
        return False
    if (not optional(s1, k, param) or not optional(s2, k, param)
            or not optional(s3, k, param) or (need >= 1 and s1 is None)
            or (need >= 2 and s2 is None)):
        return False
    st.s1 = data(s1)
    st.s2 = data(s2)
    st.s3 = data(s3)
    cdef ptr p = data(param)
    cdef ptr g = data(grad)
    cdef Py_ssize_t n = size(param)
    with nogil:
        if k == F32:
            _run(st, <float*>p, <float*>g, n, nthreads)
        else:
            _run(st, <double*>p, <double*>g, n, nthreads)
    return True


def sgd_step(param, grad, velocity, double lr, double momentum, bint nesterov,
             double weight_decay, int nthreads):
    """Keras SGD with optional (Nesterov) momentum; see Ops.sgd_step."""
    cdef Step st
    st.c[0] = lr * weight_decay
    st.c[1] = lr
    st.c[2] = momentum
    if momentum == 0.0:
        st.op = SGD
        return _step(&st, param, grad, None, None, None, 0, nthreads)
    st.op = SGD_NESTEROV if nesterov else SGD_MOMENTUM
    return _step(&st, param, grad, velocity, None, None, 1, nthreads)


def adam_step(param, grad, m, v, vhat, double lr, double beta_1, double beta_2,
              double epsilon, double step, double weight_decay, int nthreads):
    """Keras Adam/AdamW, AMSGrad when ``vhat`` is given; see Ops.adam_step."""
    cdef Step st
    st.op = ADAM
    st.c[0] = lr * weight_decay
    st.c[1] = lr * sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    st.c[2] = 1 - beta_1
    st.c[3] = 1 - beta_2
    st.c[4] = epsilon
    return _step(&st, param, grad, m, v, vhat, 2, nthreads)


def adagrad_step(param, grad, accumulator, double lr, double epsilon, double weight_decay,
                 int nthreads):
    """Keras 3 Adagrad; see Ops.adagrad_step."""
    cdef Step st
    st.op = ADAGRAD
    st.c[0] = lr * weight_decay
    st.c[1] = lr
    st.c[2] = epsilon
    return _step(&st, param, grad, accumulator, None, None, 1, nthreads)


def adadelta_step(param, grad, acc_grad, acc_delta, double lr, double rho, double epsilon,
                  double weight_decay, int nthreads):
    """Keras Adadelta; see Ops.adadelta_step."""
    cdef Step st
    st.op = ADADELTA
    st.c[0] = lr * weight_decay
    st.c[1] = lr
    st.c[2] = rho
    st.c[3] = 1 - rho
    st.c[4] = epsilon
    return _step(&st, param, grad, acc_grad, acc_delta, None, 2, nthreads)


def rmsprop_step(param, grad, ms, mom, mg, double lr, double rho, double epsilon,
                 double momentum, double weight_decay, int nthreads):
    """Keras RMSprop (``mg``: centered; ``mom`` used when momentum > 0); see Ops.rmsprop_step."""
    cdef Step st
    st.op = RMSPROP
    st.c[0] = lr * weight_decay
    st.c[1] = lr
    st.c[2] = rho
    st.c[3] = 1 - rho
    st.c[4] = epsilon
    st.c[5] = momentum
    return _step(&st, param, grad, ms, mom if momentum > 0 else None, mg, 1, nthreads)


def nadam_step(param, grad, m, v, double lr, double beta_1, double beta_2, double epsilon,
               double step, double u_t, double u_t1, double u_product, double weight_decay,
               int nthreads):
    """Keras Nadam with its momentum-cache schedule; see Ops.nadam_step."""
    cdef Step st
    st.op = NADAM
    st.c[0] = lr * weight_decay
    st.c[1] = lr
    st.c[2] = 1 - beta_1
    st.c[3] = 1 - beta_2
    st.c[4] = epsilon
    st.c[5] = u_t1 / (1 - u_product * u_t1)
    st.c[6] = (1 - u_t) / (1 - u_product)
    st.c[7] = 1 - beta_2 ** step
    return _step(&st, param, grad, m, v, None, 2, nthreads)
