"""Elementwise kernels: bias add, activations and their backward passes, dropout masks.

Arrays arrive flattened (C-contiguous 1-D views) except where rows matter.
``nthreads`` is decided by the caller (1 for small work: a hand-off between
cores costs more than the work itself).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, expf


def add_bias(floating[:, ::1] y, const floating[::1] bias, int nthreads=1):
    """y[i, j] += bias[j] in place."""
    cdef Py_ssize_t i, j, n = y.shape[0], d = y.shape[1]
    with nogil:
        for i in prange(n, num_threads=nthreads, schedule="static"):
            for j in range(d):
                y[i, j] += bias[j]


def relu(const floating[::1] x, floating[::1] out, int nthreads=1):
    """out = max(x, 0); out may be x."""
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, num_threads=nthreads, schedule="static"):
            out[i] = x[i] if x[i] > 0 else 0


def backprop_relu(const floating[::1] dy, const floating[::1] y, floating[::1] out,
                  int nthreads=1):
    """out = dy where y > 0 else 0; out may be dy."""
    cdef Py_ssize_t i, n = dy.shape[0]
    with nogil:
        for i in prange(n, num_threads=nthreads, schedule="static"):
            out[i] = dy[i] if y[i] > 0 else 0
