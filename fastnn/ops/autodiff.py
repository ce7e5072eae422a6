"""Gradients of user code: one tape per call, dropped when the call returns.

``value_and_grad(fn, x)`` runs ``fn`` on ``x`` recorded on a fresh tape and
walks the tape back once. Custom losses use it for ``d loss / d y_pred``;
layers written with ``call`` use ``Tape`` directly (their forward and backward
passes are two calls, the tape travels in the layer cache between them).
"""
from ..backend import get_ops
from .tape import Tape, Tensor


def value_and_grad(fn, x, variables=()):
    """``(fn(x), d fn / d x, [d fn / d v for v in variables])`` for a scalar-valued ``fn``.

    ``fn`` must compute with ``fastnn.ops``; the gradients are arrays of the
    current backend (zeros where ``fn`` does not depend on them).
    """
    xp = get_ops().xp
    tape = Tape(variables)
    xt = tape.watch(x)
    if variables:
        with tape.active():
            out = fn(xt)
    else:  # nothing to read as a Tensor but x: no context to set
        out = fn(xt)
    value = out.value if isinstance(out, Tensor) else out
    seed = xp.ones_like(xp.asarray(value))
    grads = tape.gradient(out, seed, [xt, *variables])
    sources = [x, *[v.value for v in variables]]
    grads = [xp.zeros_like(s) if g is None else dense(xp, g, s) for g, s in zip(grads, sources)]
    return value, grads[0], grads[1:]


def dense(xp, g, like):
    """``g`` as a writable C-contiguous array of ``like``'s shape and dtype."""
    if (isinstance(g, xp.ndarray) and g.dtype == like.dtype and g.shape == like.shape
            and g.flags.c_contiguous and g.flags.writeable):
        return g
    out = xp.empty(like.shape, dtype=like.dtype)
    out[...] = g
    return out
