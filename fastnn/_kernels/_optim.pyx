"""Optimizer steps, each one fused pass over a model's flat parameter buffer."""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt


def adam_step(floating[::1] param, const floating[::1] grad, floating[::1] m, floating[::1] v,
              double lr, double beta_1, double beta_2, double epsilon, long step,
              double weight_decay=0.0, int nthreads=1):
    """Keras Adam/AdamW in one pass (see Ops.adam_step for the formula)."""
    cdef Py_ssize_t i, n = param.shape[0]
    cdef double alpha = lr * sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    cdef floating a = <floating>alpha, eps = <floating>epsilon
    cdef floating b1c = <floating>(1 - beta_1), b2c = <floating>(1 - beta_2)
    cdef floating decay = <floating>(lr * weight_decay)
    cdef floating g, p
    with nogil:
        for i in prange(n, num_threads=nthreads, schedule="static"):
            g = grad[i]
            p = param[i]
            p = p - decay * p
            m[i] = m[i] + b1c * (g - m[i])
            v[i] = v[i] + b2c * (g * g - v[i])
            param[i] = p - a * m[i] / (sqrt(v[i]) + eps)
