"""``keras.ops`` neural-network functions: activations, one-hot, cross-entropies.

Activations run through the backend's Ops methods (compiled kernels on the
"cpu" backend) and record the matching ``backprop_*`` method as their
vector-Jacobian product. The cross-entropies are written with the other ops,
so the tape differentiates them without a hand-written rule.
"""

import numpy

from ..backend import get_ops
from . import numpy_ops as np_ops
from .numpy_ops import _named
from .tape import raw, unpack


def _float_array(xp, a):
    a = xp.asarray(a)
    return a if a.dtype.kind == "f" else a.astype(np_ops.FLOATX)


def _activation(name, doc, **params):
    """An activation computed by ``Ops.<name>`` with vjp ``Ops.backprop_<name>``."""
    @_named(name, doc)
    def op(x):
        return apply_activation(name, x, params)
    return op


def apply_activation(name, x, params):
    """``Ops.<name>(x, **params)`` on a tape's Tensor, recording ``Ops.backprop_<name>``
    (how ``fastnn.activations`` objects differentiate inside custom code)."""
    ops = get_ops()
    (a,), parents, tape = unpack(ops.xp, (x,))
    a = _float_array(ops.xp, a)
    y = getattr(ops, name)(a, **params)
    backprop = getattr(ops, "backprop_" + name)
    return np_ops._record(tape, y, parents, lambda g: (backprop(g, a, y, **params),))


relu = _activation("relu", "``max(x, 0)``.")
sigmoid = _activation("sigmoid", "``1 / (1 + exp(-x))``.")
tanh = _activation("tanh", "Hyperbolic tangent.")
softplus = _activation("softplus", "``log(1 + exp(x))``, computed stably.")
silu = _activation("silu", "``x * sigmoid(x)`` (swish).")
selu = _activation("selu", "Scaled exponential linear unit.")


def swish(x):
    """``x * sigmoid(x)`` (silu)."""
    return silu(x)


def leaky_relu(x, negative_slope=0.2):
    """``x`` where positive, else ``negative_slope * x``."""
    return apply_activation("leaky_relu", x, {"alpha": negative_slope})


def elu(x, alpha=1.0):
    """``x`` where positive, else ``alpha * (exp(x) - 1)``."""
    return apply_activation("elu", x, {"alpha": alpha})


relu6 = _activation("relu6", "``min(max(x, 0), 6)``.")
softsign = _activation("softsign", "``x / (1 + |x|)``.")
hard_sigmoid = _activation("hard_sigmoid", "``clip(x / 6 + 0.5, 0, 1)`` (Keras 3's definition).")
hard_silu = _activation("hard_silu", "``x * hard_sigmoid(x)``.")


def log_sigmoid(x):
    """``log(sigmoid(x))`` = ``-softplus(-x)``, computed stably."""
    return np_ops.negative(softplus(np_ops.negative(x)))


def gelu(x, approximate=True):
    """Gaussian error linear unit: the tanh approximation by default (as ``keras.ops``),
    ``x * Phi(x)`` with ``approximate=False``."""
    return apply_activation("gelu_tanh" if approximate else "gelu", x, {})


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis``."""
    ops = get_ops()
    xp = ops.xp
    (a,), parents, tape = unpack(xp, (x,))
    a = _float_array(xp, a)
    last = axis in (-1, a.ndim - 1)
    if last:
        y = ops.softmax(a)
    else:
        e = xp.exp(a - xp.max(a, axis=axis, keepdims=True))
        y = e / xp.sum(e, axis=axis, keepdims=True)
    if tape is None:
        return y

    def vjp(g):
        if last:
            return (ops.backprop_softmax(g, a, y),)
        return (y * (g - xp.sum(g * y, axis=axis, keepdims=True)),)
    return tape.record(y, parents, vjp)


def log_softmax(x, axis=-1):
    """``x - logsumexp(x)`` along ``axis``."""
    ops = get_ops()
    xp = ops.xp
    (a,), parents, tape = unpack(xp, (x,))
    a = _float_array(xp, a)
    if axis in (-1, a.ndim - 1):  # the backend's kernel and its backward
        return apply_activation("log_softmax", x, {})
    shifted = a - xp.max(a, axis=axis, keepdims=True)
    y = shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))
    return np_ops._record(tape, y, parents, lambda g: (
        g - xp.exp(y) * xp.sum(g, axis=axis, keepdims=True),))


def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """Integer class ids as one-hot vectors along a new ``axis`` (float32 unless ``dtype``)."""
    if sparse:
        raise ValueError("one_hot: sparse tensors are not supported")
    xp = get_ops().xp
    ids = xp.asarray(raw(x)).astype("int64")
    out = (ids[..., None] == xp.arange(num_classes)).astype(np_ops._dtype(dtype))
    return out if axis in (-1, out.ndim - 1) else xp.moveaxis(out, -1, axis)


def normalize(x, axis=-1, order=2, epsilon=None):
    """``x`` divided by its ``order``-norm along ``axis`` (Keras' ``ops.normalize``)."""
    if order != 2:
        norm = np_ops.power(np_ops.sum(np_ops.power(np_ops.abs(x), order), axis=axis,
                                       keepdims=True), 1.0 / order)
        return np_ops.divide(x, np_ops.maximum(norm, 1e-12 if epsilon is None else epsilon))
    eps = 1e-12 if epsilon is None else epsilon
    squares = np_ops.sum(np_ops.square(x), axis=axis, keepdims=True)
    return np_ops.multiply(x, np_ops.power(np_ops.maximum(squares, eps * eps), -0.5))


_EPSILON = 1e-7  # Keras' backend.epsilon(): predictions are clipped to [eps, 1 - eps]


def binary_crossentropy(target, output, from_logits=False):
    """Elementwise ``-(t log p + (1 - t) log(1 - p))`` (p clipped as Keras does)."""
    if from_logits:
        # max(z, 0) - z t + log(1 + exp(-|z|))
        return np_ops.add(np_ops.subtract(relu(output), np_ops.multiply(output, target)),
                          np_ops.log1p(np_ops.exp(np_ops.negative(np_ops.abs(output)))))
    p = np_ops.clip(output, _EPSILON, 1.0 - _EPSILON)
    one_minus = np_ops.subtract(1.0, target)
    return np_ops.negative(np_ops.add(np_ops.multiply(target, np_ops.log(p)),
                                      np_ops.multiply(one_minus,
                                                      np_ops.log(np_ops.subtract(1.0, p)))))


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """``-sum(t * log p)`` along ``axis`` (p renormalised and clipped as Keras does)."""
    if from_logits:
        logp = log_softmax(output, axis=axis)
    else:
        p = np_ops.divide(output, np_ops.sum(output, axis=axis, keepdims=True))
        logp = np_ops.log(np_ops.clip(p, _EPSILON, 1.0 - _EPSILON))
    return np_ops.negative(np_ops.sum(np_ops.multiply(target, logp), axis=axis))


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Cross-entropy with integer class ids ``target``."""
    ids = numpy.asarray(get_ops().to_numpy(raw(target))).astype("int64")
    if ids.ndim == numpy.ndim(raw(output)) and ids.shape[-1] == 1:
        ids = ids[..., 0]
    classes = np_ops.shape(output)[axis]
    return categorical_crossentropy(one_hot(ids, classes, axis=axis,
                                            dtype=np_ops.dtype(output)),
                                    output, from_logits=from_logits, axis=axis)
