"""Normalization: feature-wise standardisation learned from the data with ``adapt``.

The seeds' "preprocess the data" step as a layer: ``norm = Normalization();
norm.adapt(x_train)`` stores each feature's mean and variance, and the layer
computes ``(x - mean) / sqrt(variance)`` (``invert=True``: the inverse). The
statistics are non-trainable weights, saved with the model; given as
``mean=``/``variance=`` they are constants instead, as in Keras.
"""
import numpy

from ..backend import get_ops
from .base import Layer, register

_EPSILON = 1e-7


def _as_vector(name, value):
    array = numpy.asarray(value, dtype="float64").reshape(-1)
    if not numpy.isfinite(array).all():
        raise ValueError(f"Normalization {name} must be finite")
    return array


@register
class Normalization(Layer):
    """Standardise each feature: ``(x - mean) / max(sqrt(variance), 1e-7)``.

    Args:
        axis: the feature axis; only -1 (the last) is supported.
        mean, variance: fixed statistics (scalars or one value per feature); when
            omitted, call ``adapt(data)`` before use.
        invert: compute ``mean + x * sqrt(variance)`` instead (undo a normalisation).

    Example:
        >>> import numpy as np
        >>> norm = Normalization()
        >>> norm.adapt(np.array([[0.0], [2.0]]))
        >>> norm(np.array([[2.0]], dtype="float32"))
        array([[1.]], dtype=float32)
    """

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis not in (-1, [-1], (-1,)):
            raise ValueError(f"Normalization supports only axis=-1 (the features), got {axis!r}")
        if (mean is None) != (variance is None):
            raise ValueError("Normalization needs both mean and variance, or neither")
        self.axis = -1
        self.invert = bool(invert)
        self._fixed = None
        if mean is not None:
            mean, variance = _as_vector("mean", mean), _as_vector("variance", variance)
            if (variance < 0).any():
                raise ValueError("Normalization variance must be >= 0")
            self._fixed = (mean, variance)
        self.mean = self.variance = self.count = None

    def build(self, input_shape):
        super().build(input_shape)
        d = self.input_shape[-1]
        if self._fixed is not None:
            for array in self._fixed:
                if array.size not in (1, d):
                    raise ValueError(f"Normalization statistics have {array.size} entries "
                                     f"for {d} features")
            return
        self.mean = self.add_weight("mean", (d,), "zeros", trainable=False)
        self.variance = self.add_weight("variance", (d,), "ones", trainable=False)
        # (1,) where Keras has (): the model file format stores arrays of rank >= 1
        self.count = self.add_weight("count", (1,), "zeros", trainable=False)

    def adapt(self, data):
        """Set the mean and variance of each feature from ``data`` (n_samples, ...)."""
        if self._fixed is not None:
            raise ValueError("This Normalization was given mean and variance; adapt is for "
                             "layers created without them")
        data = numpy.asarray(data, dtype="float64")
        if data.ndim < 2 or data.shape[0] == 0:
            raise ValueError(f"adapt needs data of shape (n_samples, n_features), got "
                             f"{data.shape}")
        if not numpy.isfinite(data).all():
            raise ValueError("adapt data contains NaN or infinite values")
        if not self.built:
            self.build(data.shape[1:])
        elif tuple(data.shape[1:]) != tuple(self.input_shape):
            raise ValueError(f"adapt data has samples of shape {data.shape[1:]}, the layer "
                             f"was built for {self.input_shape}")
        flat = data.reshape(-1, data.shape[-1])
        self.set_weights([flat.mean(axis=0), flat.var(axis=0), numpy.array([flat.shape[0]])])

    def _statistics(self, ops, dtype):
        if self._fixed is not None:
            mean, variance = (ops.asarray(a, dtype=dtype) for a in self._fixed)
        else:
            mean, variance = self.mean.value, self.variance.value
        std = ops.xp.maximum(ops.xp.sqrt(variance), variance.dtype.type(_EPSILON))
        return mean.astype(dtype, copy=False), std.astype(dtype, copy=False)

    def forward(self, x, training=False):
        ops = get_ops()
        mean, std = self._statistics(ops, x.dtype)
        if self.invert:
            return mean + x * std, std
        return (x - mean) / std, std

    def backward(self, dy, std, need_dx=True):
        if not need_dx:
            return None
        return dy * std if self.invert else dy / std

    def get_config(self):
        config = super().get_config()
        fixed = self._fixed or (None, None)
        config.update(axis=self.axis, invert=self.invert,
                      mean=None if fixed[0] is None else fixed[0].tolist(),
                      variance=None if fixed[1] is None else fixed[1].tolist())
        return config
