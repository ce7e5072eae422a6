"""Forward and backward passes of layers written with ``call`` (Keras style).

A built-in layer implements ``forward``/``backward`` by hand. A user's layer
implements only ``call(inputs)`` with ``fastnn.ops``; its training forward
pass records ``call`` on a tape (the input and the layer's trainable weights
watched) and keeps the tape in the cache, and its backward pass walks that
tape back once. In inference ``call`` runs on plain arrays and nothing is
recorded.
"""
import inspect

from ..backend import get_ops
from ..ops.autodiff import dense
from ..ops.tape import Tape, Tensor, raw

_takes_training = {}


def invoke(layer, x, training):
    """``layer.call(x)``, passing ``training`` when ``call`` accepts it."""
    cls = type(layer)
    takes = _takes_training.get(cls)
    if takes is None:
        params = inspect.signature(layer.call).parameters
        takes = _takes_training[cls] = "training" in params or any(
            p.kind is p.VAR_KEYWORD for p in params.values())
    return layer.call(x, training=training) if takes else layer.call(x)


def _as_output(ops, y, x):
    """The raw output array: C-contiguous, in the input's float dtype."""
    y = ops.xp.asarray(raw(y))
    if y.dtype != x.dtype and y.dtype.kind == "f":
        y = y.astype(x.dtype)
    return ops.xp.ascontiguousarray(y)


def forward(layer, x, training):
    """``(y, cache)``; with ``training`` the cache holds the tape ``backward`` walks."""
    ops = get_ops()
    if not training:
        # Nothing is recorded; a backward pass (a gradient check in inference mode)
        # replays the call on a tape from the input kept here.
        return _as_output(ops, invoke(layer, x, False), x), x
    cache = _recorded(layer, x, True)
    return _as_output(ops, cache[2], x), cache


def _recorded(layer, x, training):
    """``call`` run on a tape watching ``x`` and the trainable weights: the cache."""
    weights = layer.trainable_weights
    tape = Tape(weights)
    xt = tape.watch(x)
    with tape.active():
        out = invoke(layer, xt, training)
    return tape, xt, out, weights


def backward(layer, dy, cache, need_dx=True):
    """Write the weights' gradients; return the input's gradient (None unless ``need_dx``)."""
    if not isinstance(cache, tuple):
        cache = _recorded(layer, cache, False)
    ops = get_ops()
    tape, xt, out, weights = cache
    out_value = out.value if isinstance(out, Tensor) else out
    if dy.dtype != getattr(out_value, "dtype", dy.dtype):
        dy = dy.astype(out_value.dtype)
    grads = tape.gradient(out, dy, [xt, *weights])
    for weight, g in zip(weights, grads[1:]):
        if g is None:
            weight.grad[...] = 0
        else:
            weight.grad[...] = g
    if not need_dx:
        return None
    g = grads[0]
    return ops.xp.zeros_like(xt.value) if g is None else dense(ops.xp, g, xt.value)


def output_shape(layer, input_shape):
    """The per-sample output shape, found by running ``call`` on a batch of two zeros."""
    ops = get_ops()
    x = ops.alloc((2,) + tuple(input_shape), layer.dtype)
    y = raw(invoke(layer, x, False))
    return tuple(int(d) for d in y.shape[1:])
