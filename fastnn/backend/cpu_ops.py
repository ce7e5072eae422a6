"""The default "cpu" backend: the reference Ops with compiled kernels where they exist.

Each override calls a Cython kernel that releases the GIL and takes its
thread count from ``_threads(size)``: one thread below the size where an
OpenMP hand-off pays for itself, else the threads the caller's scope grants
(``threads.scope_threads``: fewer on a loaded machine). The kernels check
dtype, contiguity and shapes themselves through the NumPy C API (cheaper than doing it here) and
answer None/False when the arrays do not fit; the override then runs the
reference code from ``Ops``, which also covers every method not overridden.
"""
import inspect

import numpy

from .._kernels import _blas, _elementwise, _losses, _norm, _optim, _quant
from .ops import _MASK64, Ops, activation_methods
from .threads import scope_threads

# Elements from which a kernel runs on ``scope_threads()`` threads (below: one).
# Measured on the 2-core development VM (AMD EPYC, AVX2/FMA) under its usual load
# of other processes (load average ~4.6), 1 vs 2 threads interleaved, best / median
# of 9 (method: docs/backends.md, "Threads"):
#   relu      2^17: 0.62 / 17.0   2^19: 0.61 / 10.6   2^21: 0.41 / 0.66   2^23: 5.0 / 3.0
#   adam      2^17: 0.62 / 2.5    2^19: 0.54 / 1.6    2^21: 3.2 / 5.5     2^23: 2.1 / 1.8
#   tanh      2^19: 2.1 / 2.2     2^21: 1.16 / 1.24   2^23: 1.01 / 1.09
#   softmax   2^19: 2.0 / 2.6     2^21: 2.0 / 2.1     2^23: 1.16 / 1.43
# (ratios 2 threads / 1 thread). In the median a second thread paid only for relu
# at 2^21 elements (and lost at 2^23 in the same run: the host's noise); tanh,
# softmax and Adam never paid up to 2^23. An OpenMP region next to a multi-threaded
# BLAS also made a training step slower (train_medium at 2 threads: 1644 ms/epoch
# with elementwise kernels threaded above 2^17, 579 without). On a loaded machine the
# caller's scope grants one thread anyway (``scope_threads``).
LIGHT_MIN_SIZE = 1 << 21   # relu, step, linear, leaky relu, bias, sums, dropout, clip
HEAVY_MIN_SIZE = 1 << 24   # everything else: beyond every size measured to pay

_unary = _elementwise.unary
_backward = _elementwise.backward
_loss = _losses.loss
_CLIP, _SCALE = int(_elementwise.Act.CLIP), int(_elementwise.Act.SCALE)
(_SOFTMAX_CE, _SIGMOID_CE, _CROSSENTROPY, _BINARY_CE, _MSE, _MAE, _HUBER, _HINGE,
 _CATEGORICAL_HINGE) = map(int, _losses.LossOp)


def _threads(size):
    return scope_threads() if size >= HEAVY_MIN_SIZE else 1


def _threads_light(size):
    return scope_threads() if size >= LIGHT_MIN_SIZE else 1


def _shape_tuple(shape):
    """``shape`` (an int or a sequence of ints) as a tuple, as NumPy reads it."""
    try:
        return tuple(int(s) for s in shape)
    except TypeError:
        return (int(shape),)


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
    compiles_programs = True

    # ------------------------------------------------------------------ linear algebra
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
        elif numpy.may_share_memory(out, a) or numpy.may_share_memory(out, b):
            # BLAS would overwrite an operand while still reading it: compute aside.
            tmp = out.copy() if beta != 0.0 else numpy.empty_like(out)
            _blas.gemm(a, b, tmp, trans_a, trans_b, alpha, beta)
            out[...] = tmp
            return out
        _blas.gemm(a, b, out, trans_a, trans_b, alpha, beta)
        return out

    def add_bias(self, y, bias):
        if not _elementwise.add_bias(y, bias, _threads_light(y.size)):
            return super().add_bias(y, bias)
        return y

    def sum_rows(self, x, out=None):
        r = _elementwise.sum_rows(x, out, _threads_light(x.size))
        return super().sum_rows(x, out) if r is None else r

    def multiply(self, a, b, out=None):
        r = _elementwise.binary(False, a, b, out, 0.0, _threads_light(a.size))
        return super().multiply(a, b, out) if r is None else r

    def sumsq(self, x):
        r = _elementwise.sumsq(x, _threads_light(x.size))
        return super().sumsq(x) if r is None else r

    # ------------------------------------------------------------------ activations
    # The elementwise ones are generated below the class (``_kernel_activations``).
    def softmax(self, x, out=None):
        r = _elementwise.softmax(None, x, out, _threads(x.size))
        return super().softmax(x, out) if r is None else r

    def backprop_softmax(self, dy, x, y, out=None):
        r = _elementwise.softmax(dy, y, out, _threads(dy.size))
        return super().backprop_softmax(dy, x, y, out) if r is None else r

    # ------------------------------------------------------------------ fused losses
    def softmax_cross_entropy(self, logits, targets, probs_out, grad_out=None,
                              sample_weight=None, grad_scale=1.0, label_smoothing=0.0):
        r = _loss(_SOFTMAX_CE, logits, targets, probs_out, grad_out, sample_weight, grad_scale,
                  label_smoothing, 0.0, _threads(logits.size))
        if r is None:
            return super().softmax_cross_entropy(logits, targets, probs_out, grad_out,
                                                 sample_weight, grad_scale, label_smoothing)
        return r

    def sigmoid_cross_entropy(self, logits, targets, probs_out, grad_out=None,
                              sample_weight=None, grad_scale=1.0, label_smoothing=0.0):
        r = _loss(_SIGMOID_CE, logits, targets, probs_out, grad_out, sample_weight, grad_scale,
                  label_smoothing, 0.0, _threads(logits.size))
        if r is None:
            return super().sigmoid_cross_entropy(logits, targets, probs_out, grad_out,
                                                 sample_weight, grad_scale, label_smoothing)
        return r

    def crossentropy_loss(self, pred, targets, grad_out=None, sample_weight=None,
                          grad_scale=1.0, epsilon=1e-7, label_smoothing=0.0):
        r = _loss(_CROSSENTROPY, pred, targets, None, grad_out, sample_weight, grad_scale,
                  label_smoothing, epsilon, _threads(pred.size))
        if r is None:
            return super().crossentropy_loss(pred, targets, grad_out, sample_weight,
                                             grad_scale, epsilon, label_smoothing)
        return r

    def binary_crossentropy_loss(self, pred, targets, grad_out=None, sample_weight=None,
                                 grad_scale=1.0, epsilon=1e-7, label_smoothing=0.0):
        r = _loss(_BINARY_CE, pred, targets, None, grad_out, sample_weight, grad_scale,
                  label_smoothing, epsilon, _threads(pred.size))
        if r is None:
            return super().binary_crossentropy_loss(pred, targets, grad_out, sample_weight,
                                                    grad_scale, epsilon, label_smoothing)
        return r

    def mean_squared_error_loss(self, pred, targets, grad_out=None, sample_weight=None,
                                grad_scale=1.0):
        r = _loss(_MSE, pred, targets, None, grad_out, sample_weight, grad_scale, 0.0, 0.0,
                  _threads(pred.size))
        if r is None:
            return super().mean_squared_error_loss(pred, targets, grad_out, sample_weight,
                                                   grad_scale)
        return r

    def mean_absolute_error_loss(self, pred, targets, grad_out=None, sample_weight=None,
                                 grad_scale=1.0):
        r = _loss(_MAE, pred, targets, None, grad_out, sample_weight, grad_scale, 0.0, 0.0,
                  _threads(pred.size))
        if r is None:
            return super().mean_absolute_error_loss(pred, targets, grad_out, sample_weight,
                                                    grad_scale)
        return r

    def huber_loss(self, pred, targets, grad_out=None, sample_weight=None, grad_scale=1.0,
                   delta=1.0):
        r = _loss(_HUBER, pred, targets, None, grad_out, sample_weight, grad_scale, 0.0, delta,
                  _threads(pred.size))
        if r is None:
            return super().huber_loss(pred, targets, grad_out, sample_weight, grad_scale, delta)
        return r

    def hinge_loss(self, pred, targets, grad_out=None, sample_weight=None, grad_scale=1.0):
        r = _loss(_HINGE, pred, targets, None, grad_out, sample_weight, grad_scale, 0.0, 0.0,
                  _threads(pred.size))
        if r is None:
            return super().hinge_loss(pred, targets, grad_out, sample_weight, grad_scale)
        return r

    def categorical_hinge_loss(self, pred, targets, grad_out=None, sample_weight=None,
                               grad_scale=1.0):
        r = _loss(_CATEGORICAL_HINGE, pred, targets, None, grad_out, sample_weight, grad_scale,
                  0.0, 0.0, _threads(pred.size))
        if r is None:
            return super().categorical_hinge_loss(pred, targets, grad_out, sample_weight,
                                                  grad_scale)
        return r

    # ------------------------------------------------------------------ dropout
    def dropout_mask(self, shape, rate, seed, dtype="float32", out=None):
        keep = numpy.dtype(dtype).type(1.0 / (1.0 - rate))
        if out is None:
            out = numpy.empty(shape, dtype=keep.dtype)
        elif out.dtype != keep.dtype or out.shape != _shape_tuple(shape):
            return super().dropout_mask(shape, rate, seed, dtype, out)
        if not _elementwise.dropout_mask(out, float(rate), int(seed) & _MASK64, float(keep),
                                         _threads_light(out.size)):
            return super().dropout_mask(shape, rate, seed, dtype, out)
        return out

    # ------------------------------------------------------------------ normalisation
    def batchnorm_forward(self, x, gamma, beta, eps, out=None, xhat_out=None):
        r = _norm.batchnorm_forward(x, gamma, beta, eps, out, xhat_out, _threads(x.size))
        return super().batchnorm_forward(x, gamma, beta, eps, out, xhat_out) if r is None else r

    def batchnorm_backward(self, dy, xhat, gamma, inv_std, dx_out=None, dgamma_out=None,
                           dbeta_out=None):
        r = _norm.batchnorm_backward(dy, xhat, gamma, inv_std, dx_out, dgamma_out, dbeta_out,
                                     _threads(dy.size))
        if r is None:
            return super().batchnorm_backward(dy, xhat, gamma, inv_std, dx_out, dgamma_out,
                                              dbeta_out)
        return r

    def batchnorm_inference(self, x, gamma, beta, mean, var, eps, out=None):
        r = _norm.batchnorm_inference(x, gamma, beta, mean, var, eps, out, _threads(x.size))
        return super().batchnorm_inference(x, gamma, beta, mean, var, eps, out) if r is None else r

    def layernorm_forward(self, x, gamma, beta, eps, out=None, xhat_out=None):
        r = _norm.layernorm_forward(x, gamma, beta, eps, out, xhat_out, _threads(x.size))
        return super().layernorm_forward(x, gamma, beta, eps, out, xhat_out) if r is None else r

    def layernorm_backward(self, dy, xhat, gamma, inv_std, dx_out=None, dgamma_out=None,
                           dbeta_out=None):
        r = _norm.layernorm_backward(dy, xhat, gamma, inv_std, dx_out, dgamma_out, dbeta_out,
                                     _threads(dy.size))
        if r is None:
            return super().layernorm_backward(dy, xhat, gamma, inv_std, dx_out, dgamma_out,
                                              dbeta_out)
        return r

    # ------------------------------------------------------------------ gradient clipping
    def clip_by_value(self, x, limit):
        if _unary(_CLIP, x, x, limit, _threads_light(x.size)) is None:
            return super().clip_by_value(x, limit)
        return x

    def scale(self, x, factor):
        if _unary(_SCALE, x, x, factor, _threads_light(x.size)) is None:
            return super().scale(x, factor)
        return x

    # ------------------------------------------------------------------ optimizer steps
    def sgd_step(self, param, grad, velocity, lr, momentum=0.0, nesterov=False,
                 weight_decay=0.0):
        if not _optim.sgd_step(param, grad, velocity, lr, momentum, nesterov, weight_decay,
                               _threads(param.size)):
            super().sgd_step(param, grad, velocity, lr, momentum, nesterov, weight_decay)

    def adam_step(self, param, grad, m, v, lr, beta_1, beta_2, epsilon, step,
                  weight_decay=0.0, vhat=None):
        if not _optim.adam_step(param, grad, m, v, vhat, lr, beta_1, beta_2, epsilon, step,
                                weight_decay, _threads(param.size)):
            super().adam_step(param, grad, m, v, lr, beta_1, beta_2, epsilon, step,
                              weight_decay, vhat)

    def adagrad_step(self, param, grad, accumulator, lr, epsilon, weight_decay=0.0):
        if not _optim.adagrad_step(param, grad, accumulator, lr, epsilon, weight_decay,
                                   _threads(param.size)):
            super().adagrad_step(param, grad, accumulator, lr, epsilon, weight_decay)

    def adadelta_step(self, param, grad, acc_grad, acc_delta, lr, rho, epsilon,
                      weight_decay=0.0):
        if not _optim.adadelta_step(param, grad, acc_grad, acc_delta, lr, rho, epsilon,
                                    weight_decay, _threads(param.size)):
            super().adadelta_step(param, grad, acc_grad, acc_delta, lr, rho, epsilon,
                                  weight_decay)

    def rmsprop_step(self, param, grad, ms, lr, rho, epsilon, momentum=0.0, mom=None,
                     mg=None, weight_decay=0.0):
        if not _optim.rmsprop_step(param, grad, ms, mom, mg, lr, rho, epsilon, momentum,
                                   weight_decay, _threads(param.size)):
            super().rmsprop_step(param, grad, ms, lr, rho, epsilon, momentum, mom, mg,
                                 weight_decay)

    def nadam_step(self, param, grad, m, v, lr, beta_1, beta_2, epsilon, step,
                   u_t, u_t1, u_product, weight_decay=0.0):
        if not _optim.nadam_step(param, grad, m, v, lr, beta_1, beta_2, epsilon, step, u_t,
                                 u_t1, u_product, weight_decay, _threads(param.size)):
            super().nadam_step(param, grad, m, v, lr, beta_1, beta_2, epsilon, step, u_t, u_t1,
                               u_product, weight_decay)

    def ema_update(self, average, value, momentum):
        if _elementwise.binary(True, average, value, average, momentum,
                               _threads_light(average.size)) is None:
            super().ema_update(average, value, momentum)

    # ------------------------------------------------------------------ low-precision weights
    # Packed weights go to the kernels in _quant (x made float32 C-contiguous first); a
    # plain matrix (packed by the reference) takes the reference code.
    def pack_int8(self, Wq):
        return _quant.pack_int8(numpy.asarray(Wq))

    def int8_dense(self, x, packed, scales, bias=None, out=None, relu=False):
        if not isinstance(packed, _quant.PackedInt8):
            return super().int8_dense(x, packed, scales, bias, out, relu)
        x = numpy.ascontiguousarray(x, dtype=numpy.float32)
        scales = numpy.ascontiguousarray(scales, dtype=numpy.float32)
        if bias is not None:
            bias = numpy.ascontiguousarray(bias, dtype=numpy.float32)
        size = x.shape[0] * packed.k * packed.n
        return _quant.int8_dense(x, packed, scales, bias, out, _threads(size), relu)

    def to_bf16(self, W):
        return _quant.to_bf16(numpy.asarray(W))

    def pack_bf16(self, Wb):
        return _quant.pack_bf16(numpy.asarray(Wb))

    def bf16_dense(self, x, packed, bias=None, out=None, relu=False):
        if not isinstance(packed, _quant.PackedBf16):
            return super().bf16_dense(x, packed, bias, out, relu)
        x = numpy.ascontiguousarray(x, dtype=numpy.float32)
        if bias is not None:
            bias = numpy.ascontiguousarray(bias, dtype=numpy.float32)
        size = x.shape[0] * packed.k * packed.n
        return _quant.bf16_dense(x, packed, bias, out, _threads(size), relu)


# ---------------------------------------------------------------------- activation kernels
# Each activation the Ops declare whose name in upper case is an ``_elementwise.Act``
# code gets a forward and a backward method here, generated with exactly the reference
# method's signature (its parameter names and defaults) so that a call costs what a
# hand-written override costs: one kernel call, the reference when the kernel declines.
# (The kernel, its code, the thread rule and the reference are the globals of each
# generated function: cheaper per call than closure variables.)
_FORWARD = """
def {name}(self, {params}):
    r = kernel(code, x, out, {param}, threads(x.size))
    return reference(self, {params}) if r is None else r
"""
_BACKWARD = """
def {name}(self, {params}):
    r = kernel(code, dy, x, y, out, {param}, threads(dy.size))
    return reference(self, {params}) if r is None else r
"""


def _kernel_method(template, name, code, fixed):
    """A CpuOps method running kernel ``code`` with ``Ops.<name>``'s signature; ``fixed``:
    its array parameters, besides which it may take one (the kernel's parameter)."""
    reference = getattr(Ops, name)
    signature = inspect.signature(reference).parameters.values()
    params = [p.name for p in signature][1:]
    extra = [p for p in params if p not in fixed]
    if len(extra) > 1 or any(p.kind is not p.POSITIONAL_OR_KEYWORD for p in signature):
        return None  # the reference runs it
    namespace = {"kernel": _unary if template is _FORWARD else _backward, "code": int(code),
                 "threads": _threads_light if code in _elementwise.CHEAP else _threads,
                 "reference": reference}
    exec(template.format(name=name, params=", ".join(params),
                         param=extra[0] if extra else "0.0"), namespace)
    method = namespace[name]
    method.__defaults__ = reference.__defaults__
    method.__kwdefaults__ = reference.__kwdefaults__
    method.__doc__ = reference.__doc__
    method.__module__ = __name__
    method.__qualname__ = f"CpuOps.{name}"
    method.kernel_code = int(code)
    return method


def _kernel_activations(cls):
    """Set ``name``/``backprop_name`` on ``cls`` for each activation with a kernel code."""
    for name in activation_methods(Ops):
        code = _elementwise.Act.__members__.get(name.upper())
        if code is None or code in _elementwise.FORWARD_ONLY:
            continue
        forward = _kernel_method(_FORWARD, name, code, ("x", "out"))
        backward = _kernel_method(_BACKWARD, "backprop_" + name, code, ("dy", "x", "y", "out"))
        if forward is not None and backward is not None:
            setattr(cls, name, forward)
            setattr(cls, "backprop_" + name, backward)


_kernel_activations(CpuOps)
