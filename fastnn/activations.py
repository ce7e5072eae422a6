"""Activation functions, usable by name (``activation="relu"``) or as objects.

The activations are the Ops methods declared with ``@activation`` in
fastnn/backend/ops.py: each is registered here under its method's name, with the
declared ``in_place`` flag and Keras-style parameter. Each knows its forward and
backward Ops method. ``in_place`` says
whether its backward pass needs only the output, so the forward pass may
overwrite its input (saving a buffer per layer).

Calling one on an array computes it with the current backend::

    >>> import numpy as np, fastnn
    >>> fastnn.activations.relu(np.array([-1.0, 2.0], dtype="float32"))
    array([0., 2.], dtype=float32)

Besides the classic units there are Keras 3's ``relu6``, ``softsign``,
``hard_sigmoid`` (``relu6(x + 3) / 6``), ``hard_silu`` (= ``hard_swish``),
``exponential``, ``mish`` and ``log_softmax``, each with its backward pass.

``step`` (threshold at 0: 1 for x >= 0 else 0) has a zero gradient everywhere,
so a network of step units cannot learn by backpropagation; it is here for
teaching perceptrons.
"""
from .backend import get_ops
from .backend.ops import Ops, activation_methods
from .ops.nn import apply_activation
from .ops.tape import Tensor, Variable
from .utils.registry import Registry

_registry = Registry("activation")
_DECLARED = activation_methods(Ops)


def _variant(name, params, ndim):
    """The Ops method and its parameters for Keras-style keyword arguments."""
    if name in ("softmax", "log_softmax") and "axis" in params:
        params = dict(params)
        axis = params.pop("axis")
        if axis not in (-1, ndim - 1):
            raise ValueError(f"{name} supports only the last axis, got axis={axis}")
    if name == "relu" and params:
        keras_args = {"negative_slope": 0.0, "max_value": None, "threshold": 0.0, **params}
        if keras_args != {"negative_slope": 0.0, "max_value": None, "threshold": 0.0}:
            return "general_relu", keras_args
        return "relu", {}
    if name == "leaky_relu" and "negative_slope" in params:
        params = dict(params)
        params["alpha"] = float(params.pop("negative_slope"))
    if name == "gelu" and "approximate" in params:
        approximate = params.get("approximate")
        params = {k: v for k, v in params.items() if k != "approximate"}
        return ("gelu_tanh" if approximate else "gelu"), params
    return name, params


class ActivationFunction:
    """One activation: name, Ops methods and hyperparameters (e.g. ``alpha``)."""

    def __init__(self, name, in_place=None, **params):
        self.name = name
        self.params = params
        # Keras-style arguments pick the Ops method, e.g. relu(max_value=6) -> general_relu.
        self._method, self._method_params = _variant(name, params, 2)
        spec = _DECLARED.get(self._method)
        if in_place is None:  # as declared on the Ops method
            in_place = spec is not None and spec.in_place
        self.in_place = in_place and self._method == name
        self._kernel_params = dict(self._method_params)
        if spec is not None and spec.param is not None:
            self._kernel_params.setdefault(spec.param, spec.default)

    @property
    def kernel(self):
        """(kernel name, parameters): how executors run it (``"relu"``, ``{}``;
        ``"leaky_relu"``, ``{"alpha": 0.2}``; ``"general_relu"``, Keras' three). A
        declared parameter not given has its default here."""
        return self._method, dict(self._kernel_params)

    def forward(self, ops, x, out=None):
        return getattr(ops, self._method)(x, out=out, **self._method_params)

    def backward(self, ops, dy, x, y, out=None):
        return getattr(ops, "backprop_" + self._method)(dy, x, y, out=out,
                                                        **self._method_params)

    def __call__(self, x, **params):
        """Apply to ``x`` with the current backend; Keras' keyword arguments are accepted
        (``relu(x, negative_slope, max_value, threshold)``, ``leaky_relu(x,
        negative_slope)``, ``gelu(x, approximate)``, ``softmax(x, axis=-1)``)."""
        ops = get_ops()
        merged = {**self.params, **params}
        if isinstance(x, (Tensor, Variable)):  # inside custom code: recorded on its tape
            method, merged = _variant(self.name, merged, len(x.shape))
            return apply_activation(method, x, merged)
        x = ops.asarray(x)
        method, merged = _variant(self.name, merged, x.ndim)
        return getattr(ops, method)(x, **merged)

    def get_config(self):
        return {"name": self.name, **self.params}

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"<activation {self.name}{extra}>"


def _define(name, spec):
    """Register the Ops activation ``name`` (an ``ops.Activation`` declaration) and make
    it a module attribute (``fastnn.activations.relu``)."""
    params = {} if spec.param is None else {spec.param: spec.default}
    act = ActivationFunction(name, **params)  # in_place: from the declaration
    _registry.register(name)(act)
    globals()[name] = act


# Every public activation the Ops declare (``@activation`` in fastnn/backend/ops.py).
for _name, _spec in _DECLARED.items():
    if _spec.public:
        _define(_name, _spec)

# Keras' other names for two of them.
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}
for _alias, _name in _ALIASES.items():
    globals()[_alias] = _registry.register(_alias)(_registry.get(_name))
del _name, _spec, _alias


def get(identifier):
    """Resolve None, a name, an ActivationFunction or a config dict to an activation."""
    if identifier is None:
        return _registry.get("linear")
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
