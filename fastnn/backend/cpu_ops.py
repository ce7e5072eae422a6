"""The default "cpu" backend: the reference Ops with compiled kernels where they exist.

Each override calls a Cython kernel that releases the GIL and takes its
thread count from ``_threads(size)``: one thread below the size where an
OpenMP hand-off pays for itself. Anything not overridden runs the reference
code from ``Ops``.
"""
import numpy

from .._kernels import _blas, _elementwise, _optim
from .ops import Ops
from .threads import get_num_threads

# Below this many elements an OpenMP region costs more than it saves
# (a hand-off between cores is ~60-75 us on the development VM).
PARALLEL_MIN_SIZE = 1 << 17


def _threads(size):
    return get_num_threads() if size >= PARALLEL_MIN_SIZE else 1


def _flat(a):
    return a.reshape(-1)


def _kernel_ok(*arrays):
    """True when every array is C-contiguous float32/float64 of one dtype."""
    dtype = arrays[0].dtype
    if dtype != numpy.float32 and dtype != numpy.float64:
        return False
    return all(a.dtype == dtype and a.flags.c_contiguous for a in arrays)


class CpuOps(Ops):
    """Cython/OpenMP kernels and BLAS sgemm via scipy.linalg.cython_blas."""

    name = "cpu"
    xp = numpy

    def gemm(self, a, b, out=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
        if a.ndim != 2 or b.ndim != 2 or not _kernel_ok(a, b) or 0 in a.shape or 0 in b.shape:
            return super().gemm(a, b, out, trans_a, trans_b, alpha, beta)
        if out is None:
            m = a.shape[1] if trans_a else a.shape[0]
            n = b.shape[0] if trans_b else b.shape[1]
            out = numpy.empty((m, n), dtype=a.dtype)
            beta = 0.0
        elif not _kernel_ok(a, out):
            return super().gemm(a, b, out, trans_a, trans_b, alpha, beta)
        _blas.gemm(a, b, out, trans_a, trans_b, alpha, beta)
        return out

    def add_bias(self, y, bias):
        if y.ndim != 2 or not _kernel_ok(y, bias):
            return super().add_bias(y, bias)
        _elementwise.add_bias(y, bias, _threads(y.size))
        return y

    def relu(self, x, out=None):
        if not _kernel_ok(x):
            return super().relu(x, out)
        if out is None:
            out = numpy.empty_like(x)
        _elementwise.relu(_flat(x), _flat(out), _threads(x.size))
        return out

    def backprop_relu(self, dy, x, y, out=None):
        if not _kernel_ok(dy, y):
            return super().backprop_relu(dy, x, y, out)
        if out is None:
            out = numpy.empty_like(dy)
        _elementwise.backprop_relu(_flat(dy), _flat(y), _flat(out), _threads(dy.size))
        return out

    def adam_step(self, param, grad, m, v, lr, beta_1, beta_2, epsilon, step,
                  weight_decay=0.0, vhat=None):
        if vhat is not None or not _kernel_ok(param, grad, m, v):
            return super().adam_step(param, grad, m, v, lr, beta_1, beta_2, epsilon, step,
                                     weight_decay, vhat)
        _optim.adam_step(param, grad, m, v, lr, beta_1, beta_2, epsilon, step, weight_decay,
                         _threads(param.size))
