"""The Ops contract and its reference implementation in array-namespace code.

``Ops`` is both the "numpy" backend and the specification every other backend
follows: ``CpuOps`` overrides a method only where a compiled kernel exists, and
``CupyOps`` is this same code with ``xp = cupy``. Layers, losses and optimizers
call only these methods; they never do heavy math themselves.

Conventions:
- Arrays are C-contiguous float32 (float64 is allowed, for gradient checks).
- ``out=`` names a preallocated result; ``out`` may be the input itself
  (in place), for ``gemm`` too (every backend computes an aliased product
  into a temporary first). When ``out`` is None a new array is returned.
- Activation backward passes take ``(dy, x, y)``: the upstream gradient, the
  activation's input and its output. Most use only ``y``.
- Loss methods return the *sum* over samples of the (weighted) per-sample loss
  and write ``grad_scale * d(sum)/d(pred)`` into ``grad_out`` when given.
- Optimizer steps update ``param`` and their slot arrays in place; all of them
  are flat 1-D buffers holding a whole model.
"""
import inspect
import math

import numpy

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805

_MASK64 = (1 << 64) - 1
# The deepest int8 product whose rows may be quantized to uint8: 255 * 127 * k < 2^31.
_INT8_U8_MAX_K = (2**31 - 1) // (255 * 127)


def _result(xp, out, value):
    if out is None:
        return value
    out[...] = value
    return out


class Activation:
    """How an Ops method is declared an activation (see ``activation``)."""

    __slots__ = ("in_place", "param", "default", "public")

    def __init__(self, in_place, param, default, public):
        self.in_place, self.param, self.default, self.public = in_place, param, default, public

    def __repr__(self):
        return (f"Activation(in_place={self.in_place}, param={self.param!r}, "
                f"default={self.default!r}, public={self.public})")


def activation(in_place=False, param=None, public=True):
    """Declares the decorated Ops method an activation; its backward pass is the method
    ``backprop_<name>``. Everything else derives from this declaration:
    ``fastnn.activations`` registers a public one by its name, the "cpu" backend runs it
    on the ``_elementwise.Act`` kernel named like it in upper case (when there is one)
    and so does the compiled executor.

    in_place: its backward pass needs only the output ``y``, so the forward pass may
    overwrite its input. param: the name of its one Keras-style parameter (its default
    is the method's). public=False: a variant reached only through another
    activation's Keras arguments (``gelu(approximate=True)`` runs ``gelu_tanh``).
    """
    def declare(method):
        default = None
        if param is not None:
            default = inspect.signature(method).parameters[param].default
        method.activation = Activation(in_place, param, default, public)
        return method
    return declare


def activation_methods(cls):
    """{name: Activation} of the activation methods ``cls`` (and its bases) declare."""
    found = {}
    for klass in reversed(cls.__mro__):
        for name, member in vars(klass).items():
            spec = getattr(member, "activation", None)
            if isinstance(spec, Activation):
                found[name] = spec
    return found


def is_device_array(x):
    """True for an array in device memory: a CuPy array (known by its type's module, so
    CuPy is never imported here) or another exporting ``__cuda_array_interface__``."""
    if isinstance(x, numpy.ndarray):
        return False
    cls = type(x)
    return cls.__module__.startswith("cupy") or hasattr(cls, "__cuda_array_interface__")


class Ops:
    """Reference backend written against the array namespace ``xp``."""

    name = "numpy"
    xp = numpy
    # True when this backend computes on host NumPy arrays (what callers hand in),
    # so results need no copy back and NumPy-only fast paths apply.
    is_native = True
    # True when programs run on the compiled executor (fastnn.engine): consecutive
    # stages the kernels know run as one nogil call. The reference runs every stage
    # through these Ops.
    compiles_programs = False

    # ------------------------------------------------------------------ arrays
    def owns(self, x):
        """True when ``x`` is an array this backend computes on without a copy."""
        return isinstance(x, self.xp.ndarray)

    def to_host(self, x):
        """``x`` as a NumPy array: host arrays as they are, device arrays copied to host
        (whichever backend made them)."""
        if not is_device_array(x):
            return numpy.asarray(x)
        if not hasattr(x, "get"):  # device memory, but not CuPy's (a torch CUDA tensor, ...)
            raise TypeError(f"cannot copy a {type(x).__module__}.{type(x).__name__} to the "
                            f"host: pass a NumPy or CuPy array")
        return x.get()

    def take_rows(self, source, idx, out):
        """``source[idx]`` (rows, along axis 0) written into ``out``; returns ``out``.

        ``idx`` holds valid row numbers (a slice of a permutation), so ``mode="clip"``
        never clips; it keeps NumPy from buffering the result (``"raise"`` doubled the
        gather of a 128 x 784 batch).
        """
        return self.xp.take(source, idx, axis=0, out=out, mode="clip")

    def asarray(self, x, dtype=None):
        """Return ``x`` as a C-contiguous array of this backend (no copy if already one)."""
        return self.xp.ascontiguousarray(self.xp.asarray(x, dtype=dtype))

    def alloc(self, shape, dtype="float32"):
        """A zero-filled C-contiguous array."""
        return self.xp.zeros(shape, dtype=dtype)

    def to_numpy(self, x):
        """A NumPy array holding ``x`` (a no-op on CPU backends); see also ``to_host``."""
        return numpy.asarray(x)

    # ------------------------------------------------------------------ linear algebra
    def gemm(self, a, b, out=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
        """``out = alpha * op(a) @ op(b) + beta * out`` with op = transpose when asked."""
        xp = self.xp
        a2 = a.T if trans_a else a
        b2 = b.T if trans_b else b
        prod = xp.matmul(a2, b2)
        if alpha != 1.0:
            prod *= alpha
        if out is None:
            return prod
        if beta == 0.0:
            out[...] = prod
        else:
            out *= beta
            out += prod
        return out

    def add_bias(self, y, bias):
        """Add ``bias`` (n_out,) to every row of ``y`` in place."""
        y += bias
        return y

    def sum_rows(self, x, out=None):
        """Column sums of a 2-D ``x`` (the bias gradient)."""
        return _result(self.xp, out, x.sum(axis=0))

    def multiply(self, a, b, out=None):
        """Elementwise ``a * b``."""
        return self.xp.multiply(a, b, out=out)

    def sumsq(self, x):
        """Sum of squares of all entries, as a Python float."""
        return float((x.astype("float64") ** 2).sum())

    # ------------------------------------------------------------------ activations
    @activation(in_place=True)
    def linear(self, x, out=None):
        return _result(self.xp, out, x)

    def backprop_linear(self, dy, x, y, out=None):
        return _result(self.xp, out, dy)

    @activation(in_place=True)
    def step(self, x, out=None):
        """Heaviside step: 1 where x >= 0, else 0. Its gradient is zero everywhere."""
        return _result(self.xp, out, (x >= 0).astype(x.dtype))

    def backprop_step(self, dy, x, y, out=None):
        return _result(self.xp, out, self.xp.zeros_like(dy))

    @activation(in_place=True)
    def relu(self, x, out=None):
        return self.xp.maximum(x, 0, out=out)

    def backprop_relu(self, dy, x, y, out=None):
        return _result(self.xp, out, dy * (y > 0))

    @activation(param="alpha")
    def leaky_relu(self, x, alpha=0.2, out=None):
        return _result(self.xp, out, self.xp.where(x > 0, x, x * x.dtype.type(alpha)))

    def backprop_leaky_relu(self, dy, x, y, alpha=0.2, out=None):
        return _result(self.xp, out, self.xp.where(x > 0, dy, dy * dy.dtype.type(alpha)))

    @activation(param="alpha")
    def elu(self, x, alpha=1.0, out=None):
        xp = self.xp
        neg = x.dtype.type(alpha) * xp.expm1(xp.minimum(x, 0))
        return _result(xp, out, xp.where(x > 0, x, neg))

    def backprop_elu(self, dy, x, y, alpha=1.0, out=None):
        return _result(self.xp, out, self.xp.where(x > 0, dy, dy * (y + y.dtype.type(alpha))))

    @activation()
    def selu(self, x, out=None):
        xp = self.xp
        t = x.dtype.type
        neg = t(SELU_SCALE * SELU_ALPHA) * xp.expm1(xp.minimum(x, 0))
        return _result(xp, out, xp.where(x > 0, t(SELU_SCALE) * x, neg))

    def backprop_selu(self, dy, x, y, out=None):
        t = dy.dtype.type
        grad = self.xp.where(x > 0, t(SELU_SCALE), y + t(SELU_SCALE * SELU_ALPHA))
        return _result(self.xp, out, dy * grad)

    @activation(in_place=True)
    def sigmoid(self, x, out=None):
        xp = self.xp
        # Split by sign so exp never overflows.
        e = xp.exp(-xp.abs(x))
        return _result(xp, out, xp.where(x >= 0, 1 / (1 + e), e / (1 + e)))

    def backprop_sigmoid(self, dy, x, y, out=None):
        return _result(self.xp, out, dy * y * (1 - y))

    @activation(in_place=True)
    def tanh(self, x, out=None):
        return self.xp.tanh(x, out=out)

    def backprop_tanh(self, dy, x, y, out=None):
        return _result(self.xp, out, dy * (1 - y * y))

    @activation()
    def softplus(self, x, out=None):
        xp = self.xp
        return _result(xp, out, xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x))))

    def backprop_softplus(self, dy, x, y, out=None):
        return _result(self.xp, out, dy * self.sigmoid(x))

    @activation()
    def gelu(self, x, out=None):
        """Exact GELU, ``x * Phi(x)`` (Keras' default ``approximate=False``)."""
        xp = self.xp
        cdf = 0.5 * (1.0 + _erf(xp, x / math.sqrt(2.0)))
        return _result(xp, out, (x * cdf).astype(x.dtype, copy=False))

    def backprop_gelu(self, dy, x, y, out=None):
        xp = self.xp
        cdf = 0.5 * (1.0 + _erf(xp, x / math.sqrt(2.0)))
        pdf = xp.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        return _result(xp, out, (dy * (cdf + x * pdf)).astype(dy.dtype, copy=False))

    @activation()
    def silu(self, x, out=None):
        return _result(self.xp, out, x * self.sigmoid(x))

    def backprop_silu(self, dy, x, y, out=None):
        s = self.sigmoid(x)
        return _result(self.xp, out, dy * (s + y * (1 - s)))

    @activation(in_place=True)
    def softmax(self, x, out=None):
        """Row-wise softmax over the last axis, shifted by the row max for stability."""
        xp = self.xp
        e = xp.exp(x - x.max(axis=-1, keepdims=True))
        return _result(xp, out, e / e.sum(axis=-1, keepdims=True))

    def backprop_softmax(self, dy, x, y, out=None):
        dot = (dy * y).sum(axis=-1, keepdims=True)
        return _result(self.xp, out, y * (dy - dot))

    @activation(public=False)
    def general_relu(self, x, max_value=None, negative_slope=0.0, threshold=0.0, out=None):
        """Keras' ReLU layer: ``max_value`` above it, ``x`` from ``threshold`` up,
        ``negative_slope * (x - threshold)`` below ``threshold``."""
        xp = self.xp
        t = x.dtype.type
        y = xp.where(x >= threshold, x, t(negative_slope) * (x - t(threshold)))
        if max_value is not None:
            y = xp.minimum(y, t(max_value))
        return _result(xp, out, y.astype(x.dtype, copy=False))

    def backprop_general_relu(self, dy, x, y, max_value=None, negative_slope=0.0, threshold=0.0,
                              out=None):
        """Gradient of ``general_relu``: 0 at or above ``max_value``, 1 in the linear
        part, ``negative_slope`` below ``threshold``."""
        xp = self.xp
        t = dy.dtype.type
        slope = xp.where(x >= threshold, t(1), t(negative_slope))
        if max_value is not None:
            slope = xp.where(x >= max_value, t(0), slope)
        return _result(xp, out, dy * slope)

    @activation()
    def relu6(self, x, out=None):
        """``min(max(x, 0), 6)``."""
        t = x.dtype.type
        return _result(self.xp, out, self.xp.clip(x, t(0), t(6)))

    def backprop_relu6(self, dy, x, y, out=None):
        return _result(self.xp, out, dy * ((x > 0) & (x < 6)).astype(dy.dtype))

    @activation()
    def softsign(self, x, out=None):
        """``x / (1 + |x|)``."""
        return _result(self.xp, out, x / (x.dtype.type(1) + self.xp.abs(x)))

    def backprop_softsign(self, dy, x, y, out=None):
        d = x.dtype.type(1) + self.xp.abs(x)
        return _result(self.xp, out, dy / (d * d))

    @activation()
    def hard_sigmoid(self, x, out=None):
        """Keras 3: ``relu6(x + 3) / 6``, i.e. ``clip(x / 6 + 1/2, 0, 1)``."""
        t = x.dtype.type
        return _result(self.xp, out, self.xp.clip(x / t(6) + t(0.5), t(0), t(1)))

    def backprop_hard_sigmoid(self, dy, x, y, out=None):
        t = dy.dtype.type
        inside = ((x > -3) & (x < 3)).astype(dy.dtype)
        return _result(self.xp, out, dy * inside * t(1 / 6))

    @activation()
    def hard_silu(self, x, out=None):
        """``x * hard_sigmoid(x)`` (also called hard swish)."""
        return _result(self.xp, out, x * self.hard_sigmoid(x))

    def backprop_hard_silu(self, dy, x, y, out=None):
        t = dy.dtype.type
        inside = ((x > -3) & (x < 3)).astype(dy.dtype)
        return _result(self.xp, out, dy * (self.hard_sigmoid(x) + x * inside * t(1 / 6)))

    @activation()
    def exponential(self, x, out=None):
        return _result(self.xp, out, self.xp.exp(x))

    def backprop_exponential(self, dy, x, y, out=None):
        return _result(self.xp, out, dy * self.xp.exp(x))

    @activation()
    def mish(self, x, out=None):
        """``x * tanh(softplus(x))`` (Misra 2019)."""
        return _result(self.xp, out, x * self.xp.tanh(self.softplus(x)))

    def backprop_mish(self, dy, x, y, out=None):
        th = self.xp.tanh(self.softplus(x))
        return _result(self.xp, out, dy * (th + x * (1 - th * th) * self.sigmoid(x)))

    @activation()
    def log_softmax(self, x, out=None):
        """Row-wise ``x - logsumexp(x)`` over the last axis."""
        xp = self.xp
        shifted = x - x.max(axis=-1, keepdims=True)
        return _result(xp, out, shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True)))

    def backprop_log_softmax(self, dy, x, y, out=None):
        xp = self.xp
        return _result(xp, out, dy - xp.exp(y) * dy.sum(axis=-1, keepdims=True))

    @activation(public=False)
    def gelu_tanh(self, x, out=None):
        """GELU's tanh approximation (Keras' ``gelu(x, approximate=True)``)."""
        xp = self.xp
        t = x.dtype.type
        inner = t(math.sqrt(2 / math.pi)) * (x + t(0.044715) * x ** 3)
        return _result(xp, out, t(0.5) * x * (t(1) + xp.tanh(inner)))

    def backprop_gelu_tanh(self, dy, x, y, out=None):
        xp = self.xp
        t = x.dtype.type
        c = t(math.sqrt(2 / math.pi))
        th = xp.tanh(c * (x + t(0.044715) * x ** 3))
        d = t(0.5) * (t(1) + th) + t(0.5) * x * (t(1) - th * th) * c * (
            t(1) + t(3 * 0.044715) * x * x)
        return _result(xp, out, dy * d)

    def prelu(self, x, alpha, out=None):
        """Parametric ReLU: ``x`` where x > 0, else ``alpha * x`` (alpha broadcasts over rows)."""
        return _result(self.xp, out, self.xp.where(x > 0, x, alpha * x))

    def backprop_prelu(self, dy, x, y, alpha, dx_out=None, dalpha_out=None):
        """Gradients of ``prelu``. Returns ``(dx, dalpha)``.

        ``dalpha`` has alpha's shape: summed over the batch axis and over every
        axis where alpha has size 1 (a slope shared along it).
        """
        xp = self.xp
        negative = x <= 0
        dx = xp.where(negative, alpha * dy, dy)
        shared = tuple(i + 1 for i, d in enumerate(alpha.shape) if d == 1 and x.shape[i + 1] != 1)
        dalpha = (dy * x * negative).sum(axis=(0,) + shared, keepdims=True).reshape(alpha.shape)
        return _result(xp, dx_out, dx), _result(xp, dalpha_out, dalpha)

    def maxout(self, z, pieces, out=None, argmax_out=None):
        """Max over groups of ``pieces`` adjacent columns of ``z`` (n, units * pieces).

        Unit ``j`` takes the max of columns ``j * pieces ... j * pieces + pieces - 1``.
        Returns ``(y, argmax)``: y is (n, units), argmax the winning piece per entry.
        """
        xp = self.xp
        grouped = z.reshape(z.shape[0], -1, pieces)
        argmax = grouped.argmax(axis=-1)
        y = xp.take_along_axis(grouped, argmax[..., None], axis=-1)[..., 0]
        return _result(xp, out, y), _result(xp, argmax_out, argmax)

    def backprop_maxout(self, dy, argmax, pieces, out=None):
        """Gradient of ``maxout``: ``dy`` routed to the winning piece, 0 elsewhere."""
        xp = self.xp
        n, units = dy.shape
        dz = xp.zeros((n, units, pieces), dtype=dy.dtype)
        xp.put_along_axis(dz, argmax[..., None], dy[..., None], axis=-1)
        return _result(xp, out, dz.reshape(n, units * pieces))

    # ------------------------------------------------------------------ fused losses
    def softmax_cross_entropy(self, logits, targets, probs_out, grad_out=None,
                              sample_weight=None, grad_scale=1.0, label_smoothing=0.0):
        """Softmax + cross-entropy on logits, fused and stable.

        ``targets`` is either integer class ids (n,) or a (n, classes) float
        distribution. Writes the softmax into ``probs_out`` and, when asked,
        ``grad_scale * w * (p - t)`` into ``grad_out``. Returns sum_i w_i * CE_i.
        """
        xp = self.xp
        n, k = logits.shape
        shifted = logits - logits.max(axis=1, keepdims=True)
        logsum = xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        logp = shifted - logsum
        probs_out[...] = xp.exp(logp)
        t = self._dense_targets(targets, n, k, logits.dtype, label_smoothing)
        per_sample = -(t * logp).sum(axis=1)
        w = None if sample_weight is None else sample_weight.astype(logits.dtype)
        if grad_out is not None:
            g = probs_out * t.sum(axis=1, keepdims=True) - t
            if w is not None:
                g = g * w[:, None]
            grad_out[...] = g * grad_scale
        return float((per_sample if w is None else per_sample * w).sum())

    def sigmoid_cross_entropy(self, logits, targets, probs_out, grad_out=None,
                              sample_weight=None, grad_scale=1.0, label_smoothing=0.0):
        """Sigmoid + binary cross-entropy on logits, fused and stable.

        The per-sample loss is the mean over the output columns (Keras).
        """
        xp = self.xp
        t = targets.astype(logits.dtype)
        if label_smoothing:
            t = t * (1 - label_smoothing) + 0.5 * label_smoothing
        self.sigmoid(logits, out=probs_out)
        elementwise = xp.maximum(logits, 0) - logits * t + xp.log1p(xp.exp(-xp.abs(logits)))
        ncols = logits.shape[1]
        per_sample = elementwise.sum(axis=1) / ncols
        w = None if sample_weight is None else sample_weight.astype(logits.dtype)
        if grad_out is not None:
            g = (probs_out - t) / ncols
            if w is not None:
                g = g * w[:, None]
            grad_out[...] = g * grad_scale
        return float((per_sample if w is None else per_sample * w).sum())

    def _dense_targets(self, targets, n, k, dtype, label_smoothing=0.0):
        xp = self.xp
        if targets.ndim == 1:
            ids = targets.astype("int64")
            # A negative id would silently index from the end; refuse it like one >= k.
            if n and (int(ids.min()) < 0 or int(ids.max()) >= k):
                raise ValueError(f"class ids must lie in [0, {k}): the predictions have {k} "
                                 "columns")
            t = xp.zeros((n, k), dtype=dtype)
            t[xp.arange(n), ids] = 1
        else:
            t = targets.astype(dtype)
        if label_smoothing:
            t = t * (1 - label_smoothing) + label_smoothing / k
        return t

    def crossentropy_loss(self, pred, targets, grad_out=None, sample_weight=None,
                          grad_scale=1.0, epsilon=1e-7, label_smoothing=0.0):
        """Categorical cross-entropy on probabilities, clipped to [eps, 1 - eps] as Keras does.

        ``targets``: integer ids (n,) or a (n, classes) distribution.
        """
        xp = self.xp
        n, k = pred.shape
        t = self._dense_targets(targets, n, k, pred.dtype, label_smoothing)
        # Keras rescales so rows sum to one, then clips.
        total = pred.sum(axis=1, keepdims=True)
        p = pred / total
        clipped = xp.clip(p, epsilon, 1 - epsilon)
        per_sample = -(t * xp.log(clipped)).sum(axis=1)
        w = None if sample_weight is None else sample_weight.astype(pred.dtype)
        if grad_out is not None:
            inside = (p > epsilon) & (p < 1 - epsilon)
            dp = -t / clipped * inside
            # chain rule through p = pred / total
            g = (dp - (dp * p).sum(axis=1, keepdims=True)) / total
            if w is not None:
                g = g * w[:, None]
            grad_out[...] = g * grad_scale
        return float((per_sample if w is None else per_sample * w).sum())

    def binary_crossentropy_loss(self, pred, targets, grad_out=None, sample_weight=None,
                                 grad_scale=1.0, epsilon=1e-7, label_smoothing=0.0):
        """Binary cross-entropy on probabilities, clipped to [eps, 1 - eps]; mean over columns."""
        xp = self.xp
        t = targets.astype(pred.dtype)
        if label_smoothing:
            t = t * (1 - label_smoothing) + 0.5 * label_smoothing
        p = xp.clip(pred, epsilon, 1 - epsilon)
        ncols = pred.shape[1]
        per_sample = -(t * xp.log(p) + (1 - t) * xp.log(1 - p)).sum(axis=1) / ncols
        w = None if sample_weight is None else sample_weight.astype(pred.dtype)
        if grad_out is not None:
            inside = (pred > epsilon) & (pred < 1 - epsilon)
            g = (-t / p + (1 - t) / (1 - p)) * inside / ncols
            if w is not None:
                g = g * w[:, None]
            grad_out[...] = g * grad_scale
        return float((per_sample if w is None else per_sample * w).sum())

    def _pointwise_loss(self, elementwise, d_elementwise, pred, grad_out, sample_weight,
                        grad_scale):
        ncols = pred.shape[1]
        per_sample = elementwise.sum(axis=1) / ncols
        w = None if sample_weight is None else sample_weight.astype(pred.dtype)
        if grad_out is not None:
            g = d_elementwise / ncols
            if w is not None:
                g = g * w[:, None]
            grad_out[...] = g * grad_scale
        return float((per_sample if w is None else per_sample * w).sum())

    def mean_squared_error_loss(self, pred, targets, grad_out=None, sample_weight=None,
                                grad_scale=1.0):
        diff = pred - targets.astype(pred.dtype)
        return self._pointwise_loss(diff * diff, 2 * diff, pred, grad_out, sample_weight,
                                    grad_scale)

    def mean_absolute_error_loss(self, pred, targets, grad_out=None, sample_weight=None,
                                 grad_scale=1.0):
        diff = pred - targets.astype(pred.dtype)
        return self._pointwise_loss(self.xp.abs(diff), self.xp.sign(diff), pred, grad_out,
                                    sample_weight, grad_scale)

    def huber_loss(self, pred, targets, grad_out=None, sample_weight=None, grad_scale=1.0,
                   delta=1.0):
        xp = self.xp
        diff = pred - targets.astype(pred.dtype)
        a = xp.abs(diff)
        quad = a <= delta
        elementwise = xp.where(quad, 0.5 * diff * diff, delta * a - 0.5 * delta * delta)
        d = xp.where(quad, diff, delta * xp.sign(diff))
        return self._pointwise_loss(elementwise, d, pred, grad_out, sample_weight, grad_scale)

    def hinge_loss(self, pred, targets, grad_out=None, sample_weight=None, grad_scale=1.0):
        """Hinge on labels in {-1, 1} (0/1 labels are mapped to -1/1 as Keras does)."""
        xp = self.xp
        t = targets.astype(pred.dtype)
        t = xp.where(t == 0, -1, t).astype(pred.dtype)
        margin = 1 - t * pred
        active = margin > 0
        return self._pointwise_loss(margin * active, -t * active, pred, grad_out,
                                    sample_weight, grad_scale)

    def categorical_hinge_loss(self, pred, targets, grad_out=None, sample_weight=None,
                               grad_scale=1.0):
        """Multi-class SVM loss: max(0, 1 + max_{j != y} s_j - s_y) (Keras' CategoricalHinge)."""
        xp = self.xp
        n, k = pred.shape
        t = self._dense_targets(targets, n, k, pred.dtype)
        pos = (t * pred).sum(axis=1)
        masked = (1 - t) * pred
        neg_idx = masked.argmax(axis=1)
        neg = masked[xp.arange(n), neg_idx]
        margin = 1 + neg - pos
        active = (margin > 0).astype(pred.dtype)
        per_sample = margin * active
        w = None if sample_weight is None else sample_weight.astype(pred.dtype)
        if grad_out is not None:
            g = -t * active[:, None]
            g[xp.arange(n), neg_idx] += (1 - t[xp.arange(n), neg_idx]) * active
            if w is not None:
                g = g * w[:, None]
            grad_out[...] = g * grad_scale
        return float((per_sample if w is None else per_sample * w).sum())

    # ------------------------------------------------------------------ dropout
    def dropout_mask(self, shape, rate, seed, dtype="float32", out=None):
        """Inverted-dropout mask: 0 with probability ``rate``, else ``1 / (1 - rate)``.

        Entry ``i`` is decided by a counter-based hash of ``(seed, i)``, so every
        backend and every thread count draws the same mask for the same seed.
        """
        xp = self.xp
        size = int(numpy.prod(shape))
        u = _uniform24(xp, seed, size)
        keep = u >= numpy.float64(rate)
        mask = keep.astype(dtype) * numpy.dtype(dtype).type(1.0 / (1.0 - rate))
        return _result(xp, out, mask.reshape(shape))

    # ------------------------------------------------------------------ normalisation
    def batchnorm_forward(self, x, gamma, beta, eps, out=None, xhat_out=None):
        """Training-mode batch norm over axis 0 with the biased variance.

        Returns ``(y, mean, var, inv_std)``; ``xhat_out`` (if given) receives the
        normalised input for the backward pass.
        """
        xp = self.xp
        mean = x.mean(axis=0)
        var = ((x - mean) ** 2).mean(axis=0)
        inv_std = 1.0 / xp.sqrt(var + eps)
        xhat = (x - mean) * inv_std
        if xhat_out is not None:
            xhat_out[...] = xhat
        y = _result(xp, out, xhat * gamma + beta)
        return y, mean, var, inv_std.astype(x.dtype, copy=False)

    def batchnorm_backward(self, dy, xhat, gamma, inv_std, dx_out=None, dgamma_out=None,
                           dbeta_out=None):
        """Gradients of training-mode batch norm. Returns ``(dx, dgamma, dbeta)``."""
        xp = self.xp
        n = dy.shape[0]
        dbeta = dy.sum(axis=0)
        dgamma = (dy * xhat).sum(axis=0)
        dx = (gamma * inv_std / n) * (n * dy - dbeta - xhat * dgamma)
        return (_result(xp, dx_out, dx), _result(xp, dgamma_out, dgamma),
                _result(xp, dbeta_out, dbeta))

    def batchnorm_inference(self, x, gamma, beta, mean, var, eps, out=None):
        """``(x - mean) / sqrt(var + eps) * gamma + beta`` with fixed statistics."""
        scale = gamma / self.xp.sqrt(var + eps)
        return _result(self.xp, out, x * scale + (beta - mean * scale))

    def batchnorm_inference_backward(self, dy, x, gamma, mean, var, eps, dx_out=None,
                                     dgamma_out=None, dbeta_out=None):
        """Gradients of ``batchnorm_inference`` (fixed statistics). Returns ``(dx, dgamma, dbeta)``."""
        xp = self.xp
        inv_std = 1.0 / xp.sqrt(var + eps)
        dx = dy * (gamma * inv_std)
        dgamma = (dy * ((x - mean) * inv_std)).sum(axis=0)
        dbeta = dy.sum(axis=0)  # before dx is written: dx_out may be dy itself
        return (_result(xp, dx_out, dx), _result(xp, dgamma_out, dgamma),
                _result(xp, dbeta_out, dbeta))

    def layernorm_forward(self, x, gamma, beta, eps, out=None, xhat_out=None):
        """Layer norm over the last axis. Returns ``(y, inv_std)``, inv_std of shape x.shape[:-1]."""
        xp = self.xp
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        inv_std = 1.0 / xp.sqrt(var + eps)
        xhat = (x - mean) * inv_std
        if xhat_out is not None:
            xhat_out[...] = xhat
        return _result(xp, out, xhat * gamma + beta), inv_std[..., 0].astype(x.dtype, copy=False)

    def layernorm_backward(self, dy, xhat, gamma, inv_std, dx_out=None, dgamma_out=None,
                           dbeta_out=None):
        """Gradients of layer norm. Returns ``(dx, dgamma, dbeta)``."""
        xp = self.xp
        d = dy.shape[-1]
        lead = tuple(range(dy.ndim - 1))  # every axis but the last (rank > 2 too)
        dxhat = dy * gamma
        dx = (inv_std[..., None] / d) * (d * dxhat - dxhat.sum(axis=-1, keepdims=True)
                                          - xhat * (dxhat * xhat).sum(axis=-1, keepdims=True))
        dgamma = (dy * xhat).sum(axis=lead)  # before dx is written: dx_out may be dy itself
        dbeta = dy.sum(axis=lead)
        return (_result(xp, dx_out, dx), _result(xp, dgamma_out, dgamma),
                _result(xp, dbeta_out, dbeta))

    # ------------------------------------------------------------------ gradient clipping
    def clip_by_value(self, x, limit):
        """Clip every entry of ``x`` to [-limit, limit] in place."""
        return self.xp.clip(x, -limit, limit, out=x)

    def scale(self, x, factor):
        """``x *= factor`` in place."""
        x *= x.dtype.type(factor)
        return x

    # ------------------------------------------------------------------ optimizer steps
    def sgd_step(self, param, grad, velocity, lr, momentum=0.0, nesterov=False,
                 weight_decay=0.0):
        """Keras SGD. v = m*v - lr*g; p += v (nesterov: p += m*v - lr*g).

        Decoupled weight decay first: p -= lr * wd * p. ``velocity`` may be None
        when momentum is 0.
        """
        t = param.dtype.type
        if weight_decay:
            param -= t(lr * weight_decay) * param
        if momentum == 0.0:
            param -= t(lr) * grad
            return
        velocity *= t(momentum)
        velocity -= t(lr) * grad
        if nesterov:
            param += t(momentum) * velocity - t(lr) * grad
        else:
            param += velocity

    def adam_step(self, param, grad, m, v, lr, beta_1, beta_2, epsilon, step,
                  weight_decay=0.0, vhat=None):
        """Keras Adam (AdamW when weight_decay > 0; AMSGrad when ``vhat`` is given).

        m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  (amsgrad: vhat = max(vhat, v))
        a = lr * sqrt(1 - b2^t) / (1 - b1^t);  p -= a * m / (sqrt(v or vhat) + eps)
        """
        xp = self.xp
        t = param.dtype.type
        if weight_decay:
            param -= t(lr * weight_decay) * param
        alpha = lr * math.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
        m += t(1 - beta_1) * (grad - m)
        v += t(1 - beta_2) * (grad * grad - v)
        denom_src = v
        if vhat is not None:
            xp.maximum(vhat, v, out=vhat)
            denom_src = vhat
        param -= t(alpha) * m / (xp.sqrt(denom_src) + t(epsilon))

    def adagrad_step(self, param, grad, accumulator, lr, epsilon, weight_decay=0.0):
        """acc += g^2;  p -= lr * g / sqrt(acc + eps)  (Keras 3 Adagrad)."""
        t = param.dtype.type
        if weight_decay:
            param -= t(lr * weight_decay) * param
        accumulator += grad * grad
        param -= t(lr) * grad / self.xp.sqrt(accumulator + t(epsilon))

    def adamax_step(self, param, grad, m, u, lr, beta_1, epsilon, step, beta_2,
                    weight_decay=0.0):
        """m += (1 - b1) (g - m);  u = max(b2 u, |g|);  p -= lr m / ((1 - b1^t)(u + eps))
        (Keras 3 Adamax; ``step`` is t, counted from 1)."""
        t = param.dtype.type
        if weight_decay:
            param -= t(lr * weight_decay) * param
        m += t(1 - beta_1) * (grad - m)
        self.xp.maximum(t(beta_2) * u, self.xp.abs(grad), out=u)
        param -= t(lr) * m / (t(1 - beta_1 ** step) * (u + t(epsilon)))

    def lion_step(self, param, grad, m, lr, beta_1, beta_2, weight_decay=0.0):
        """p -= lr * sign(b1 m + (1 - b1) g);  m = b2 m + (1 - b2) g  (Chen et al. 2023)."""
        t = param.dtype.type
        if weight_decay:
            param -= t(lr * weight_decay) * param
        param -= t(lr) * self.xp.sign(t(beta_1) * m + t(1 - beta_1) * grad)
        m *= t(beta_2)
        m += t(1 - beta_2) * grad

    def ftrl_step(self, param, grad, accumulator, linear, lr, lr_power, l1, l2, l2_shrinkage,
                  beta, weight_decay=0.0):
        """FTRL-proximal (McMahan et al. 2013) as Keras 3 computes it::

            n' = n + g^2;  z += g + 2 l2s p - (n'^-c - n^-c) / lr * p   (c = lr_power)
            p = (clip(z, -l1, l1) - z) / (n'^-c / lr + 2 (l2 + beta / (2 lr)));  n = n'
        """
        xp = self.xp
        t = param.dtype.type
        if weight_decay:
            param -= t(lr * weight_decay) * param
        new_acc = accumulator + grad * grad
        power_new, power_old = new_acc ** t(-lr_power), accumulator ** t(-lr_power)
        linear += grad + t(2 * l2_shrinkage) * param - (power_new - power_old) / t(lr) * param
        quadratic = power_new / t(lr) + t(2 * (l2 + beta / (2.0 * lr)))
        param[...] = (xp.clip(linear, t(-l1), t(l1)) - linear) / quadratic
        accumulator[...] = new_acc

    def adadelta_step(self, param, grad, acc_grad, acc_delta, lr, rho, epsilon,
                      weight_decay=0.0):
        """Eg = rho*Eg + (1-rho)*g^2;  d = sqrt(Ed + eps)/sqrt(Eg + eps) * g;
        Ed = rho*Ed + (1-rho)*d^2;  p -= lr * d."""
        xp = self.xp
        t = param.dtype.type
        if weight_decay:
            param -= t(lr * weight_decay) * param
        acc_grad *= t(rho)
        acc_grad += t(1 - rho) * grad * grad
        delta = xp.sqrt(acc_delta + t(epsilon)) / xp.sqrt(acc_grad + t(epsilon)) * grad
        acc_delta *= t(rho)
        acc_delta += t(1 - rho) * delta * delta
        param -= t(lr) * delta

    def rmsprop_step(self, param, grad, ms, lr, rho, epsilon, momentum=0.0, mom=None,
                     mg=None, weight_decay=0.0):
        """ms = rho*ms + (1-rho)*g^2;  (centered: mg = rho*mg + (1-rho)*g, denom = ms - mg^2)
        inc = lr * g / sqrt(denom + eps);  momentum: mom = m*mom + inc, p -= mom; else p -= inc."""
        xp = self.xp
        t = param.dtype.type
        if weight_decay:
            param -= t(lr * weight_decay) * param
        ms *= t(rho)
        ms += t(1 - rho) * grad * grad
        denom = ms
        if mg is not None:
            mg *= t(rho)
            mg += t(1 - rho) * grad
            denom = ms - mg * mg
        inc = t(lr) * grad / xp.sqrt(denom + t(epsilon))
        if mom is not None and momentum > 0:
            mom *= t(momentum)
            mom += inc
            param -= mom
        else:
            param -= inc

    def nadam_step(self, param, grad, m, v, lr, beta_1, beta_2, epsilon, step,
                   u_t, u_t1, u_product, weight_decay=0.0):
        """Keras Nadam with its momentum-cache schedule.

        ``u_t``, ``u_t1`` are the momentum coefficients of this and the next step,
        ``u_product`` is prod(u_1..u_t). m and v update as in Adam, then
        p -= lr * ((u_t1 * m / (1 - u_product*u_t1)) + ((1-u_t) * g / (1 - u_product)))
             / (sqrt(v / (1 - b2^t)) + eps).
        """
        xp = self.xp
        t = param.dtype.type
        if weight_decay:
            param -= t(lr * weight_decay) * param
        m += t(1 - beta_1) * (grad - m)
        v += t(1 - beta_2) * (grad * grad - v)
        m_hat = t(u_t1 / (1 - u_product * u_t1)) * m + t((1 - u_t) / (1 - u_product)) * grad
        v_hat = v / t(1 - beta_2 ** step)
        param -= t(lr) * m_hat / (xp.sqrt(v_hat) + t(epsilon))

    def ema_update(self, average, value, momentum):
        """average = momentum * average + (1 - momentum) * value, in place."""
        t = average.dtype.type
        average *= t(momentum)
        average += t(1 - momentum) * value

    # ------------------------------------------------------------------ low-precision weights
    # Inference products with int8 or bfloat16 weights. The reference "packed" form is
    # the plain (k, n) matrix; CpuOps packs for its kernels (fastnn/_kernels/qgemm.h,
    # where the formulas are spelled out) and gives the same int8 results bit for bit.
    def quantize_int8(self, W):
        """Per-output-column symmetric int8 weights: ``(Wq int8 (k, n), scales float32 (n,))``
        with ``scales = max_k |W| / 127`` (1 where that is 0) and ``Wq =
        clip(rint(W / scales), -127, 127)`` (ties to even). The one definition every
        backend and the model file use (the kernels take its output)."""
        xp = self.xp
        if xp.asarray(W).dtype.kind != "f":
            raise TypeError(f"W must be a float array, got {xp.asarray(W).dtype}")
        W = xp.asarray(W, dtype=xp.float32)
        if not bool(xp.isfinite(W).all()):
            raise ValueError("W holds NaN or infinite values")
        scales = (xp.abs(W).max(axis=0) / xp.float32(127)).astype(xp.float32)
        scales[scales == 0] = 1  # an all-zero column (or one whose scale underflows)
        return xp.clip(xp.rint(W / scales), -127, 127).astype(xp.int8), scales

    def pack_int8(self, Wq):
        """``Wq`` in the form ``int8_dense`` takes (here: as it is)."""
        return self.xp.asarray(Wq, dtype=self.xp.int8)

    def int8_dense(self, x, packed, scales, bias=None, out=None, relu=False):
        """``y = acc * (s_x * scales) + bias`` (then ReLU if ``relu``), where each row of x
        is quantized per row: to uint8 where no value of the row has its sign bit set
        (``qmax = 255``, levels 0..255; only for depths up to 66311, where the int32
        sums cannot overflow), else symmetrically to int8 (``qmax = 127``, levels
        -127..127); ``s_x = max |x_row| / qmax`` (1 where that is 0), ``xq =
        clip(rint(x * (1 / s_x)), lowest, qmax)`` (float32 products; ``x / s_x`` where
        ``s_x`` is subnormal or not finite), and ``acc = xq @ Wq`` is exact int32."""
        xp = self.xp
        x = xp.asarray(x, dtype=xp.float32)
        k = x.shape[1]
        u8 = ~xp.signbit(x).any(axis=1) & (k <= _INT8_U8_MAX_K)
        qmax = xp.where(u8, xp.float32(255), xp.float32(127)).astype(xp.float32)
        sx = (xp.abs(x).max(axis=1) / qmax).astype(xp.float32)
        sx[sx == 0] = 1  # a zero row (or one whose scale underflows)
        lowest = xp.where(u8, xp.float32(0), xp.float32(-127))
        normal = (sx >= xp.finfo(xp.float32).tiny) & xp.isfinite(sx)
        with numpy.errstate(divide="ignore", over="ignore", invalid="ignore"):
            inv = (xp.float32(1) / sx).astype(xp.float32)
            v = xp.where(normal[:, None], x * inv[:, None], x / sx[:, None])
        v = xp.where(xp.isnan(v), lowest[:, None], v)  # inf/inf in a row with an inf
        xq = xp.clip(xp.rint(v), lowest[:, None], qmax[:, None]).astype(xp.int32)
        acc = xp.matmul(xq, packed.astype(xp.int32))
        y = acc.astype(xp.float32) * (sx[:, None] * scales[None, :])
        if bias is not None:
            y = y + bias
        if relu:
            y = xp.maximum(y, xp.float32(0))
        return _result(xp, out, y)

    def to_bf16(self, W):
        """float32 ``W`` as bfloat16 bits (uint16), rounded to nearest even; NaN stays NaN."""
        xp = self.xp
        b = xp.asarray(W, dtype=xp.float32).view(xp.uint32)
        rounded = (b + xp.uint32(0x7FFF) + ((b >> xp.uint32(16)) & xp.uint32(1))) >> xp.uint32(16)
        nan = (b & xp.uint32(0x7FFFFFFF)) > xp.uint32(0x7F800000)
        return xp.where(nan, (b >> xp.uint32(16)) | xp.uint32(0x40), rounded).astype(xp.uint16)

    def pack_bf16(self, Wb):
        """``Wb`` (bfloat16 bits) in the form ``bf16_dense`` takes (here: as it is)."""
        return self.xp.asarray(Wb, dtype=self.xp.uint16)

    def bf16_dense(self, x, packed, bias=None, out=None, relu=False):
        """``y = x @ float32(Wb) + bias`` (then ReLU if ``relu``) in float32."""
        xp = self.xp
        w = (packed.astype(xp.uint32) << xp.uint32(16)).view(xp.float32)
        y = xp.matmul(xp.asarray(x, dtype=xp.float32), w)
        if bias is not None:
            y = y + bias
        if relu:
            y = xp.maximum(y, xp.float32(0))
        return _result(xp, out, y)


def _erf(xp, x):
    """erf over an array: scipy's for numpy, the namespace's own elsewhere."""
    if xp is numpy:
        from scipy.special import erf
        return erf(x)
    from importlib import import_module
    return import_module(xp.__name__ + "x.scipy.special").erf(x)  # cupyx.scipy.special


def _uniform24(xp, seed, size):
    """Uniform floats in [0, 1) with 24-bit resolution from splitmix64(seed + i)."""
    base = numpy.uint64(int(seed) & _MASK64)
    z = xp.arange(size, dtype=xp.uint64) + base
    z = z + numpy.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> numpy.uint64(30))) * numpy.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> numpy.uint64(27))) * numpy.uint64(0x94D049BB133111EB)
    z = z ^ (z >> numpy.uint64(31))
    return (z >> numpy.uint64(40)).astype(xp.float64) * (1.0 / 16777216.0)
