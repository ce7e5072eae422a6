"""Pass-through layers: Identity, ActivityRegularization, UnitNormalization."""
from .. import regularizers
from ..backend import get_ops
from .base import Layer, register


@register
class Identity(Layer):
    """Returns its input unchanged."""

    def forward(self, x, training=False):
        return x, None

    def backward(self, dy, cache, need_dx=True):
        return dy if need_dx else None


@register
class ActivityRegularization(Identity):
    """Identity whose output is penalised by ``l1 * sum|y| + l2 * sum y**2`` (divided by
    the batch size, as every activity regularizer)."""

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        kwargs.pop("activity_regularizer", None)
        super().__init__(activity_regularizer=regularizers.L1L2(l1=l1, l2=l2), **kwargs)
        self.l1, self.l2 = self.activity_regularizer.l1, self.activity_regularizer.l2

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer", None)
        config.update(l1=self.l1, l2=self.l2)
        return config


@register
class UnitNormalization(Layer):
    """Scale each sample to unit L2 norm: ``x / max(||x||, 1e-12)`` over the last axis."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if axis not in (-1, 1, [-1], [1], (-1,), (1,)):
            raise ValueError(f"UnitNormalization supports only the last axis, got {axis!r}")
        self.axis = int(axis) if not isinstance(axis, (list, tuple)) else list(axis)

    def build(self, input_shape):
        super().build(input_shape)
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        if 1 in axes and len(self.input_shape) > 1:  # axis 1 is not the last one then
            raise ValueError(f"UnitNormalization supports only the last axis; axis=1 is not "
                             f"the last for samples of shape {self.input_shape}")

    def forward(self, x, training=False):
        xp = get_ops().xp
        norm = xp.maximum(xp.sqrt((x * x).sum(axis=-1, keepdims=True)), x.dtype.type(1e-12))
        y = x / norm
        return y, (y, norm)

    def backward(self, dy, cache, need_dx=True):
        if not need_dx:
            return None
        y, norm = cache
        return (dy - y * (dy * y).sum(axis=-1, keepdims=True)) / norm

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config
