"""Activation functions, usable by name (``activation="relu"``) or as objects.

Each activation knows its forward and backward Ops method. ``in_place`` says
whether its backward pass needs only the output, so the forward pass may
overwrite its input (saving a buffer per layer).

Calling one on an array computes it with the current backend::

    >>> import numpy as np, fastnn
    >>> fastnn.activations.relu(np.array([-1.0, 2.0], dtype="float32"))
    array([0., 2.], dtype=float32)

``step`` (threshold at 0: 1 for x >= 0 else 0) has a zero gradient everywhere,
so a network of step units cannot learn by backpropagation; it is here for
teaching perceptrons.
"""
from .backend import get_ops
from .ops.nn import apply_activation
from .ops.tape import Tensor, Variable
from .utils.registry import Registry

_registry = Registry("activation")


class ActivationFunction:
    """One activation: name, Ops methods and hyperparameters (e.g. ``alpha``)."""

    def __init__(self, name, in_place=True, **params):
        self.name = name
        self.in_place = in_place
        self.params = params

    def forward(self, ops, x, out=None):
        return getattr(ops, self.name)(x, out=out, **self.params)

    def backward(self, ops, dy, x, y, out=None):
        return getattr(ops, "backprop_" + self.name)(dy, x, y, out=out, **self.params)

    def __call__(self, x, **params):
        ops = get_ops()
        merged = {**self.params, **params}
        if isinstance(x, (Tensor, Variable)):  # inside custom code: recorded on its tape
            return apply_activation(self.name, x, merged)
        return getattr(ops, self.name)(ops.asarray(x), **merged)

    def get_config(self):
        return {"name": self.name, **self.params}

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"<activation {self.name}{extra}>"


def _define(name, in_place=True, **params):
    act = ActivationFunction(name, in_place=in_place, **params)
    _registry.register(name)(act)
    return act


linear = _define("linear")
step = _define("step")
relu = _define("relu")
leaky_relu = _define("leaky_relu", in_place=False, alpha=0.2)
elu = _define("elu", in_place=False, alpha=1.0)
selu = _define("selu", in_place=False)
sigmoid = _define("sigmoid")
tanh = _define("tanh")
softplus = _define("softplus", in_place=False)
gelu = _define("gelu", in_place=False)
silu = _define("silu", in_place=False)
softmax = _define("softmax")
_registry.register("swish")(silu)


def get(identifier):
    """Resolve None, a name, an ActivationFunction or a config dict to an activation."""
    if identifier is None:
        return linear
    if isinstance(identifier, ActivationFunction):
        return identifier
    if isinstance(identifier, str):
        return _registry.get(identifier)
    if isinstance(identifier, dict):
        params = dict(identifier)
        base = _registry.get(params.pop("name"))
        if not params:
            return base
        return ActivationFunction(base.name, in_place=base.in_place, **{**base.params, **params})
    raise ValueError(
        f"Cannot use {identifier!r} as an activation: pass one of {', '.join(_registry.names())} "
        "or a fastnn.activations function (a plain Python function has no backward pass)")


def serialize(activation):
    """The plain-data form of an activation (its name, or a dict with its parameters)."""
    return activation.name if not activation.params or activation is get(activation.name) \
        else activation.get_config()


def names():
    return _registry.names()
