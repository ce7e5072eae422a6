"""Forward and backward passes of layers written with ``call`` (Keras style).

A built-in layer implements ``forward``/``backward`` by hand. A user's layer
implements only ``call(inputs)`` with ``fastnn.ops``; its training forward
pass records ``call`` on a tape (the input and the layer's trainable weights
watched) and keeps the tape in the cache, and its backward pass walks that
tape back once. In inference ``call`` runs on plain arrays and nothing is
recorded.
"""
import contextvars
import inspect

from ..backend import get_ops
from ..ops.autodiff import dense
from ..ops.tape import Tape, Tensor, raw

_takes_training = {}
_training = contextvars.ContextVar("fastnn_training", default=False)
_collected_losses = contextvars.ContextVar("fastnn_layer_losses", default=None)


def add_loss(layer, loss):
    """``Layer.add_loss``: keep ``loss`` (a scalar) with the losses of the outermost
    layer whose ``call`` is running; the trainer adds them to the model's loss."""
    collected = _collected_losses.get()
    if collected is None:
        raise RuntimeError(f"Layer {layer.name!r}: add_loss may only be called from call()")
    collected.append(loss)


def losses(layer):
    """The values of the losses ``add_loss`` collected in the layer's last call."""
    return [raw(loss) for loss in layer.__dict__.get("_call_losses", ())]


def uses_call(layer):
    """True for a layer computing in ``call`` (its class does not override ``forward``)."""
    return getattr(type(layer).forward, "_call_based", False)


def sublayers(layer):
    """The layers a call-based layer holds as attributes (or in lists of them), in order."""
    names = layer.__dict__.get("_layer_attrs")
    if not names or not uses_call(layer):
        return ()
    from .base import Layer
    found = []
    for name in names:
        value = layer.__dict__.get(name)
        if isinstance(value, Layer):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(v for v in value if isinstance(v, Layer))
    return found


def call_nested(layer, x, training):
    """``layer(x)`` inside another layer's recorded ``call``: a call-based layer records
    onto the same tape; a built-in layer runs its own forward and adds one tape node whose
    vjp is its hand-written backward (which writes its weights' gradients)."""
    if training is None:
        training = _training.get()
    value = raw(x)
    if not layer.built:
        layer.build(value.shape[1:])
    if uses_call(layer):
        return invoke(layer, x, training)
    y, cache = layer.forward(value, training)
    if not isinstance(x, Tensor):
        return y
    xp = get_ops().xp

    def vjp(g):
        # backward writes the weights' gradients: keep what earlier nodes (a second call
        # of the same layer) put there and add it back.
        earlier = [w.grad.copy() for w in layer.trainable_weights]
        dx = layer.backward(dense(xp, g, y), cache, need_dx=True)
        for w, grad in zip(layer.trainable_weights, earlier):
            w.grad += grad
        return (dx,)
    return x.tape.record(y, (x,), vjp)


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
    y = raw(y)
    if type(y) is not ops.xp.ndarray:
        y = ops.xp.asarray(y)
    if y.dtype != x.dtype and y.dtype.kind == "f":
        y = y.astype(x.dtype)
    return y if y.flags.c_contiguous else ops.xp.ascontiguousarray(y)


def forward(layer, x, training):
    """``(y, cache)``; with ``training`` the cache holds the tape ``backward`` walks."""
    ops = get_ops()
    if not training:
        # Nothing is recorded; a backward pass (a gradient check in inference mode)
        # replays the call on a tape from the input kept here.
        collected = []
        token = _collected_losses.set(collected)
        try:
            y = invoke(layer, x, False)
        finally:
            _collected_losses.reset(token)
        layer._call_losses = collected
        return _as_output(ops, y, x), x
    cache = _recorded(layer, x, True)
    return _as_output(ops, cache[2], x), cache


def _recorded(layer, x, training):
    """``call`` run on a tape watching ``x`` and the trainable weights: the cache."""
    weights = layer.trainable_weights
    tape = Tape(weights)
    xt = tape.watch(x)
    token = _training.set(training)
    collected = []
    losses_token = _collected_losses.set(collected)
    active = tape.enter()
    try:
        out = invoke(layer, xt, training)
    finally:
        tape.leave(active)
        _collected_losses.reset(losses_token)
        _training.reset(token)
    layer._call_losses = collected
    return tape, xt, out, weights, collected


def backward(layer, dy, cache, need_dx=True):
    """Write the weights' gradients; return the input's gradient (None unless ``need_dx``)."""
    if not isinstance(cache, tuple):
        cache = _recorded(layer, cache, False)
    ops = get_ops()
    tape, xt, out, weights, added = cache
    out_value = out.value if isinstance(out, Tensor) else out
    if dy.dtype != getattr(out_value, "dtype", dy.dtype):
        dy = dy.astype(out_value.dtype)
    for weight in weights:  # nested built-in layers write theirs during the walk
        weight.grad[...] = 0
    extra = [(loss, ops.xp.ones_like(ops.xp.asarray(raw(loss)))) for loss in added]
    grads = tape.gradient(out, dy, [xt, *weights], extra)
    for weight, g in zip(weights, grads[1:]):
        if g is not None:
            weight.grad[...] = g
    if not need_dx:
        return None
    g = grads[0]
    return ops.xp.zeros_like(xt.value) if g is None else dense(ops.xp, g, xt.value)


def output_shape(layer, input_shape):
    """The per-sample output shape, found by running ``call`` on a batch of two zeros."""
    ops = get_ops()
    x = ops.alloc((2,) + tuple(input_shape), layer.dtype)
    token = _collected_losses.set([])  # losses of this probe call are dropped
    try:
        y = raw(invoke(layer, x, False))
    finally:
        _collected_losses.reset(token)
    return tuple(int(d) for d in y.shape[1:])
