"""The "cupy" backend: the reference Ops on an NVIDIA GPU through CuPy.

``CupyOps`` is ``Ops`` with ``xp = cupy``: every method runs the reference
array code on device arrays, and matrix products go to cuBLAS through
``cupy.matmul``. Where the reference spends several kernels and temporaries
on one elementwise formula, a fused ``cupy.ElementwiseKernel`` does it in one
pass: the relu/sigmoid/tanh backward passes, the sigmoid, the softmax
cross-entropy tail (probabilities, gradient and per-entry loss), the dropout
mask (the reference's splitmix64 hash in uint64 arithmetic, so masks are
bit-identical on every backend), and every optimizer step over the flat
parameter buffer. Kernels are created once per process on first use (CuPy
compiles each once per dtype and caches the binary on disk); they are built
with ``--fmad=false`` so each formula rounds as the NumPy reference does.

CuPy is imported when a ``CupyOps`` is created, never at ``import fastnn``:
nothing CUDA loads unless the backend is asked for. Without CuPy the
constructor raises ImportError; with CuPy but no visible GPU, RuntimeError.
Each message says which of the two is missing.

A method whose arrays do not fit a kernel (dtypes other than float32/float64,
mixed dtypes, shapes that broadcast) runs the reference code instead.
"""
import math

import numpy

from .ops import _MASK64, Ops

INSTALL_HINT = 'pip install "fastnn-toolkit[gpu]"'


def _import_cupy():
    """The cupy module, after checking that it imports and sees a GPU."""
    try:
        import cupy
    except ImportError as exc:
        raise ImportError(
            f'The "cupy" backend needs CuPy, which is not installed or could not be imported '
            f'({exc}). Install it with `{INSTALL_HINT}` (CuPy for CUDA 12) on a machine with '
            'an NVIDIA GPU, or use set_backend("cpu").') from exc
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # CUDARuntimeError: no driver, no device, driver too old
        raise RuntimeError(
            f'CuPy is installed, but no CUDA GPU is visible ({type(exc).__name__}: {exc}). '
            'Check the NVIDIA driver (`nvidia-smi`) and CUDA_VISIBLE_DEVICES, or use '
            'set_backend("cpu").') from exc
    if count < 1:
        raise RuntimeError('CuPy is installed, but no CUDA GPU is visible (0 devices). Check '
                           'the NVIDIA driver (`nvidia-smi`) and CUDA_VISIBLE_DEVICES, or use '
                           'set_backend("cpu").')
    return cupy


# ---------------------------------------------------------------------- fused kernels
# name -> (in_params, out_params, operation). ``T`` is float or double, fixed by the
# arrays; scalars are passed as NumPy scalars of the arrays' dtype, so every formula
# runs in the dtype the reference uses, in the reference's order of operations.
_DECAY = "if (lr_wd != (T)0) param -= lr_wd * param;\n"  # decoupled weight decay first

_RMSPROP = ("ms = ms * rho;\nms += one_rho * grad * grad;\nT denom = ms;\n"
            "{centered}T inc = lr * grad / sqrt(denom + eps);\n{apply}")
_RMS_CENTERED = "mg = mg * rho;\nmg += one_rho * grad;\ndenom = ms - mg * mg;\n"
_RMS_MOMENTUM = "mom = mom * momentum;\nmom += inc;\nparam -= mom;"

ELEMENTWISE = {
    "backprop_relu": ("T dy, T y", "T dx", "dx = dy * (T)(y > (T)0);"),
    "backprop_sigmoid": ("T dy, T y", "T dx", "dx = dy * y * ((T)1 - y);"),
    "backprop_tanh": ("T dy, T y", "T dx", "dx = dy * ((T)1 - y * y);"),
    "sigmoid": ("T x", "T y",
                "T e = exp(-fabs(x));\ny = x >= (T)0 ? (T)1 / ((T)1 + e) : e / ((T)1 + e);"),
    "dropout_mask": (
        "uint64 base, float64 rate, T keep", "T mask",
        "unsigned long long z = base + (unsigned long long)i + 0x9E3779B97F4A7C15ULL;\n"
        "z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;\n"
        "z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;\n"
        "z = z ^ (z >> 31);\n"
        "double u = (double)(z >> 40) * (1.0 / 16777216.0);\n"
        "mask = u >= rate ? keep : (T)0;"),
    # Softmax + cross-entropy given the row max ``m`` and log-sum-exp ``lse`` of the
    # shifted row: probabilities, scaled gradient and t * log p (summed for the loss).
    "softmax_ce": ("T x, T m, T lse, T t, T tsum, T w, T scale", "T p, T g, T tl",
                   "T lp = (x - m) - lse;\np = exp(lp);\n"
                   "g = (p * tsum - t) * w * scale;\ntl = t * lp;"),
    "ema_update": ("T value, T mom, T one_mom", "T average",
                   "average = average * mom;\naverage += one_mom * value;"),
    "sgd": ("T grad, T lr, T lr_wd", "T param", _DECAY + "param -= lr * grad;"),
    "sgd_momentum": ("T grad, T lr, T lr_wd, T mom, bool nesterov", "T param, T velocity",
                     _DECAY + "velocity = velocity * mom;\nvelocity -= lr * grad;\n"
                     "if (nesterov) param += mom * velocity - lr * grad;\n"
                     "else param += velocity;"),
    "adam": ("T grad, T lr_wd, T alpha, T one_b1, T one_b2, T eps", "T param, T m, T v",
             _DECAY + "m += one_b1 * (grad - m);\nv += one_b2 * (grad * grad - v);\n"
             "param -= alpha * m / (sqrt(v) + eps);"),
    "adam_amsgrad": ("T grad, T lr_wd, T alpha, T one_b1, T one_b2, T eps",
                     "T param, T m, T v, T vhat",
                     _DECAY + "m += one_b1 * (grad - m);\nv += one_b2 * (grad * grad - v);\n"
                     "vhat = max(vhat, v);\nparam -= alpha * m / (sqrt(vhat) + eps);"),
    "adagrad": ("T grad, T lr, T lr_wd, T eps", "T param, T acc",
                _DECAY + "acc += grad * grad;\nparam -= lr * grad / sqrt(acc + eps);"),
    "adadelta": ("T grad, T lr, T lr_wd, T rho, T one_rho, T eps",
                 "T param, T acc_grad, T acc_delta",
                 _DECAY + "acc_grad = acc_grad * rho;\nacc_grad += one_rho * grad * grad;\n"
                 "T delta = sqrt(acc_delta + eps) / sqrt(acc_grad + eps) * grad;\n"
                 "acc_delta = acc_delta * rho;\nacc_delta += one_rho * delta * delta;\n"
                 "param -= lr * delta;"),
    "rmsprop": ("T grad, T lr, T lr_wd, T rho, T one_rho, T eps", "T param, T ms",
                _DECAY + _RMSPROP.format(centered="", apply="param -= inc;")),
    "rmsprop_centered": ("T grad, T lr, T lr_wd, T rho, T one_rho, T eps",
                         "T param, T ms, T mg",
                         _DECAY + _RMSPROP.format(centered=_RMS_CENTERED,
                                                  apply="param -= inc;")),
    "rmsprop_momentum": ("T grad, T lr, T lr_wd, T rho, T one_rho, T eps, T momentum",
                         "T param, T ms, T mom",
                         _DECAY + _RMSPROP.format(centered="", apply=_RMS_MOMENTUM)),
    "rmsprop_centered_momentum": (
        "T grad, T lr, T lr_wd, T rho, T one_rho, T eps, T momentum", "T param, T ms, T mg, T mom",
        _DECAY + _RMSPROP.format(centered=_RMS_CENTERED, apply=_RMS_MOMENTUM)),
    "nadam": ("T grad, T lr, T lr_wd, T one_b1, T one_b2, T c_m, T c_g, T v_corr, T eps",
              "T param, T m, T v",
              _DECAY + "m += one_b1 * (grad - m);\nv += one_b2 * (grad * grad - v);\n"
              "T m_hat = c_m * m + c_g * grad;\nT v_hat = v / v_corr;\n"
              "param -= lr * m_hat / (sqrt(v_hat) + eps);"),
}

# name -> (in_params, out_params, map_expr, reduce_expr, post_map_expr, identity)
REDUCTIONS = {
    # log(sum(exp(x - m))) over a row, m the row max (broadcast from shape (n, 1)).
    "logsumexp": ("T x, T m", "T y", "exp(x - m)", "a + b", "y = log(a)", "0"),
}

OPTIONS = ("--fmad=false",)  # no contracted multiply-adds: round as the NumPy reference
_KERNELS = {}


def _kernel(xp, name):
    """The kernel ``name``, created on first use and cached for the process."""
    kernel = _KERNELS.get(name)
    if kernel is None:
        if name in REDUCTIONS:
            kernel = xp.ReductionKernel(*REDUCTIONS[name], name="fastnn_" + name,
                                        options=OPTIONS)
        else:
            kernel = xp.ElementwiseKernel(*ELEMENTWISE[name], name="fastnn_" + name,
                                          options=OPTIONS)
        _KERNELS[name] = kernel
    return kernel


class CupyOps(Ops):
    """The reference Ops on CuPy arrays: cuBLAS for gemm, fused elementwise kernels."""

    name = "cupy"
    xp = None  # the cupy module, set when an instance is created
    is_native = False

    def __init__(self):
        self.xp = _import_cupy()

    def to_numpy(self, x):
        return self.xp.asnumpy(x)

    def take_rows(self, source, idx, out):
        return self.xp.take(source, idx, axis=0, out=out)  # CuPy's take has no ``mode``

    # ------------------------------------------------------------------ helpers
    def _fits(self, *arrays):
        """True when every array is a float32/float64 device array of one dtype and shape."""
        first = arrays[0]
        if not isinstance(first, self.xp.ndarray) or first.dtype not in (numpy.float32,
                                                                          numpy.float64):
            return False
        return all(isinstance(a, self.xp.ndarray) and a.dtype == first.dtype
                   and a.shape == first.shape for a in arrays[1:])

    def _run(self, name, arrays, out, *scalars):
        """Kernel ``name`` over ``arrays`` (and dtype-cast ``scalars``) into ``out``, or None
        when the arrays do not fit (the caller then runs the reference)."""
        if not self._fits(*arrays, *(() if out is None else (out,))):
            return None
        if out is None:
            out = self.xp.empty(arrays[0].shape, dtype=arrays[0].dtype)
        t = arrays[0].dtype.type
        _kernel(self.xp, name)(*arrays, *(t(s) for s in scalars), out)
        return out

    # ------------------------------------------------------------------ linear algebra
    def gemm(self, a, b, out=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
        xp = self.xp
        if (out is None or beta != 0.0 or a.ndim != 2 or b.ndim != 2 or out.ndim != 2
                or not self._fits(a) or b.dtype != a.dtype or out.dtype != a.dtype
                or 0 in a.shape or 0 in b.shape
                or xp.may_share_memory(out, a) or xp.may_share_memory(out, b)):
            return super().gemm(a, b, out, trans_a, trans_b, alpha, beta)
        xp.matmul(a.T if trans_a else a, b.T if trans_b else b, out=out)  # cuBLAS
        if alpha != 1.0:
            out *= out.dtype.type(alpha)
        return out

    # ------------------------------------------------------------------ activations
    def sigmoid(self, x, out=None):
        r = self._run("sigmoid", (x,), out)
        return super().sigmoid(x, out) if r is None else r

    def backprop_relu(self, dy, x, y, out=None):
        r = self._run("backprop_relu", (dy, y), out)
        return super().backprop_relu(dy, x, y, out) if r is None else r

    def backprop_sigmoid(self, dy, x, y, out=None):
        r = self._run("backprop_sigmoid", (dy, y), out)
        return super().backprop_sigmoid(dy, x, y, out) if r is None else r

    def backprop_tanh(self, dy, x, y, out=None):
        r = self._run("backprop_tanh", (dy, y), out)
        return super().backprop_tanh(dy, x, y, out) if r is None else r

    # ------------------------------------------------------------------ fused losses
    def softmax_cross_entropy(self, logits, targets, probs_out, grad_out=None,
                              sample_weight=None, grad_scale=1.0, label_smoothing=0.0):
        xp = self.xp
        outs = (probs_out,) if grad_out is None else (probs_out, grad_out)
        if logits.ndim != 2 or not self._fits(logits, *outs):
            return super().softmax_cross_entropy(logits, targets, probs_out, grad_out,
                                                 sample_weight, grad_scale, label_smoothing)
        n, k = logits.shape
        dtype = logits.dtype
        t = self._dense_targets(targets, n, k, dtype, label_smoothing)  # checks class ids
        m = logits.max(axis=1, keepdims=True)
        lse = _kernel(xp, "logsumexp")(logits, m, axis=1, keepdims=True)
        tsum = t.sum(axis=1, keepdims=True)
        w = None if sample_weight is None else sample_weight.astype(dtype)
        grad = xp.empty_like(probs_out) if grad_out is None else grad_out
        tl = xp.empty_like(probs_out)
        _kernel(xp, "softmax_ce")(logits, m, lse, t, tsum,
                                  dtype.type(1) if w is None else w[:, None],
                                  dtype.type(grad_scale), probs_out, grad, tl)
        per_sample = -tl.sum(axis=1)
        return float((per_sample if w is None else per_sample * w).sum())

    # ------------------------------------------------------------------ dropout
    def dropout_mask(self, shape, rate, seed, dtype="float32", out=None):
        keep = numpy.dtype(dtype).type(1.0 / (1.0 - rate))
        if out is None:
            out = self.xp.empty(shape, dtype=keep.dtype)
        elif not self._fits(out) or out.dtype != keep.dtype or out.shape != numpy.broadcast_to(0, shape).shape:
            return super().dropout_mask(shape, rate, seed, dtype, out)
        if out.dtype not in (numpy.float32, numpy.float64):
            return super().dropout_mask(shape, rate, seed, dtype, out)
        _kernel(self.xp, "dropout_mask")(numpy.uint64(int(seed) & _MASK64),
                                         numpy.float64(rate), keep, out)
        return out

    # ------------------------------------------------------------------ optimizer steps
    def ema_update(self, average, value, momentum):
        if self._run("ema_update", (value,), average, momentum, 1 - momentum) is None:
            super().ema_update(average, value, momentum)

    def sgd_step(self, param, grad, velocity, lr, momentum=0.0, nesterov=False,
                 weight_decay=0.0):
        if momentum == 0.0:
            done = self._fits(param, grad)
            if done:
                t = param.dtype.type
                _kernel(self.xp, "sgd")(grad, t(lr), t(lr * weight_decay), param)
        else:
            done = self._fits(param, grad, velocity)
            if done:
                t = param.dtype.type
                _kernel(self.xp, "sgd_momentum")(grad, t(lr), t(lr * weight_decay),
                                                 t(momentum), numpy.bool_(nesterov),
                                                 param, velocity)
        if not done:
            super().sgd_step(param, grad, velocity, lr, momentum, nesterov, weight_decay)

    def adam_step(self, param, grad, m, v, lr, beta_1, beta_2, epsilon, step,
                  weight_decay=0.0, vhat=None):
        slots = (m, v) if vhat is None else (m, v, vhat)
        if not self._fits(param, grad, *slots):
            return super().adam_step(param, grad, m, v, lr, beta_1, beta_2, epsilon, step,
                                     weight_decay, vhat)
        t = param.dtype.type
        alpha = lr * math.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
        _kernel(self.xp, "adam" if vhat is None else "adam_amsgrad")(
            grad, t(lr * weight_decay), t(alpha), t(1 - beta_1), t(1 - beta_2), t(epsilon),
            param, *slots)

    def adagrad_step(self, param, grad, accumulator, lr, epsilon, weight_decay=0.0):
        if not self._fits(param, grad, accumulator):
            return super().adagrad_step(param, grad, accumulator, lr, epsilon, weight_decay)
        t = param.dtype.type
        _kernel(self.xp, "adagrad")(grad, t(lr), t(lr * weight_decay), t(epsilon), param,
                                    accumulator)

    def adadelta_step(self, param, grad, acc_grad, acc_delta, lr, rho, epsilon,
                      weight_decay=0.0):
        if not self._fits(param, grad, acc_grad, acc_delta):
            return super().adadelta_step(param, grad, acc_grad, acc_delta, lr, rho, epsilon,
                                         weight_decay)
        t = param.dtype.type
        _kernel(self.xp, "adadelta")(grad, t(lr), t(lr * weight_decay), t(rho), t(1 - rho),
                                     t(epsilon), param, acc_grad, acc_delta)

    def rmsprop_step(self, param, grad, ms, lr, rho, epsilon, momentum=0.0, mom=None,
                     mg=None, weight_decay=0.0):
        use_mom = mom is not None and momentum > 0
        slots = (ms,) + ((mg,) if mg is not None else ()) + ((mom,) if use_mom else ())
        if not self._fits(param, grad, *slots):
            return super().rmsprop_step(param, grad, ms, lr, rho, epsilon, momentum, mom, mg,
                                        weight_decay)
        t = param.dtype.type
        name = "rmsprop" + ("_centered" if mg is not None else "") + (
            "_momentum" if use_mom else "")
        scalars = (t(lr), t(lr * weight_decay), t(rho), t(1 - rho), t(epsilon))
        scalars += (t(momentum),) if use_mom else ()
        _kernel(self.xp, name)(grad, *scalars, param, *slots)

    def nadam_step(self, param, grad, m, v, lr, beta_1, beta_2, epsilon, step,
                   u_t, u_t1, u_product, weight_decay=0.0):
        if not self._fits(param, grad, m, v):
            return super().nadam_step(param, grad, m, v, lr, beta_1, beta_2, epsilon, step,
                                      u_t, u_t1, u_product, weight_decay)
        t = param.dtype.type
        _kernel(self.xp, "nadam")(
            grad, t(lr), t(lr * weight_decay), t(1 - beta_1), t(1 - beta_2),
            t(u_t1 / (1 - u_product * u_t1)), t((1 - u_t) / (1 - u_product)),
            t(1 - beta_2 ** step), t(epsilon), param, m, v)

