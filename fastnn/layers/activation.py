"""Activation layers with Keras arguments: ReLU, LeakyReLU, PReLU, ELU, Softmax.

All but PReLU are an ``Activation`` layer whose function is fixed by the
layer's own hyperparameters; their configs hold those hyperparameters.
"""
from .. import activations, constraints, initializers, regularizers
from ..activations import ActivationFunction
from ..backend import get_ops
from ..engine.stages import Kind, Stage
from .base import Layer, register
from ..utils.checks import check_finite_number, check_non_negative
from .core import Activation


class _ActivationLayer(Activation):
    """An Activation layer configured by named hyperparameters (see ``_hyperparameters``)."""

    def _hyperparameters(self):
        raise NotImplementedError

    def get_config(self):
        config = super(Activation, self).get_config()  # Layer's: no "activation" entry
        config.update(self._hyperparameters())
        return config


@register
class ReLU(_ActivationLayer):
    """Keras' ReLU layer::

        f(x) = max_value                        for x >= max_value
        f(x) = x                                for threshold <= x < max_value
        f(x) = negative_slope * (x - threshold) otherwise

    Args:
        max_value: cap on the output (None: no cap), >= 0.
        negative_slope: slope below the threshold, >= 0.
        threshold: where the unit turns on, >= 0.
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        self.max_value = check_non_negative("ReLU max_value", max_value, allow_none=True)
        self.negative_slope = check_non_negative("ReLU negative_slope", negative_slope)
        self.threshold = check_non_negative("ReLU threshold", threshold)
        if self.max_value is None and self.negative_slope == 0 and self.threshold == 0:
            function = activations.relu  # the plain, compiled kernel
        else:
            function = ActivationFunction("general_relu", in_place=False,
                                          max_value=self.max_value,
                                          negative_slope=self.negative_slope,
                                          threshold=self.threshold)
        super().__init__(function, **kwargs)

    def _hyperparameters(self):
        return {"max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


@register
class LeakyReLU(_ActivationLayer):
    """``x`` for x > 0, ``negative_slope * x`` otherwise (Keras 3 default slope 0.3)."""

    def __init__(self, negative_slope=0.3, **kwargs):
        self.negative_slope = check_non_negative("LeakyReLU negative_slope", negative_slope)
        super().__init__(ActivationFunction("leaky_relu", in_place=False,
                                            alpha=self.negative_slope), **kwargs)

    def _hyperparameters(self):
        return {"negative_slope": self.negative_slope}


@register
class ELU(_ActivationLayer):
    """``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise."""

    def __init__(self, alpha=1.0, **kwargs):
        self.alpha = check_finite_number("ELU alpha", alpha)
        super().__init__(ActivationFunction("elu", in_place=False, alpha=self.alpha), **kwargs)

    def _hyperparameters(self):
        return {"alpha": self.alpha}


@register
class Softmax(_ActivationLayer):
    """Softmax over ``axis``; only the last (feature) axis is supported.

    As the last layer before a cross-entropy loss it is fused with the loss,
    like ``Dense(..., activation="softmax")``.
    """

    def __init__(self, axis=-1, **kwargs):
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"Softmax axis must be an int, got {axis!r}")
        self.axis = axis
        super().__init__(activations.softmax, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        rank = len(self.input_shape) + 1  # with the batch axis
        if self.axis not in (-1, rank - 1):
            raise ValueError(f"Softmax supports only the last axis (-1 or {rank - 1}) for "
                             f"inputs of shape {self.input_shape}, got axis={self.axis}")

    def _hyperparameters(self):
        return {"axis": self.axis}


@register
class PReLU(Layer):
    """Parametric ReLU: ``x`` for x > 0, ``alpha * x`` otherwise, alpha learned per unit.

    Args:
        alpha_initializer: initial slopes (Keras default "zeros": starts as ReLU).
        alpha_regularizer: optional penalty on alpha.
        shared_axes: feature axes (1-based, as in Keras) that share one slope;
            ``shared_axes=[1]`` learns a single slope for 1-D features.
    """

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        if shared_axes is not None:
            shared_axes = [shared_axes] if isinstance(shared_axes, int) else list(shared_axes)
            if not all(isinstance(a, int) and not isinstance(a, bool) and a >= 1
                       for a in shared_axes):
                raise ValueError(f"PReLU shared_axes must be feature axes >= 1, "
                                 f"got {shared_axes!r}")
        self.shared_axes = shared_axes
        self.alpha = None

    def build(self, input_shape):
        super().build(input_shape)
        shape = list(self.input_shape)
        for axis in self.shared_axes or []:
            if axis > len(shape):
                raise ValueError(f"PReLU shared axis {axis} does not exist in input shape "
                                 f"{self.input_shape}")
            shape[axis - 1] = 1
        self.alpha = self.add_weight("alpha", shape, self.alpha_initializer,
                                     regularizer=self.alpha_regularizer,
                                     constraint=self.alpha_constraint)

    def stages(self):
        """A PRELU stage when every feature has its own slope."""
        if not self._lowers_as(PReLU) or self.alpha.shape != tuple(self.input_shape):
            return super().stages()
        d = self.input_shape[-1]
        return [Stage(Kind.PRELU, self, d, d, alpha=self.alpha.value,
                      alpha_grad=self._grad(self.alpha))]

    def forward(self, x, training=False):
        return get_ops().prelu(x, self.alpha.value), x

    def backward(self, dy, cache, need_dx=True):
        ops = get_ops()
        dalpha_out = self.alpha.grad if self._trainable else None
        dx, _ = ops.backprop_prelu(dy, cache, None, self.alpha.value, dalpha_out=dalpha_out)
        return dx if need_dx else None

    def get_config(self):
        config = super().get_config()
        config.update(alpha_initializer=initializers.serialize(self.alpha_initializer),
                      alpha_regularizer=regularizers.serialize(self.alpha_regularizer),
                      alpha_constraint=constraints.serialize(self.alpha_constraint),
                      shared_axes=self.shared_axes)
        return config
