"""Regression metrics: mean squared, root mean squared, mean absolute (percentage) error and
cosine similarity (each a mean over columns per sample, then over samples)."""
import numpy

from .. import loss_functions
from .base import MeanMetricWrapper, per_sample, register


@register("mse")
class MeanSquaredError(MeanMetricWrapper):
    """Mean of ``(y_pred - y_true) ** 2``."""

    direction = "down"

    def values(self, y_true, y_pred):
        return per_sample((y_pred - y_true.reshape(y_pred.shape)) ** 2)


@register("mae")
class MeanAbsoluteError(MeanMetricWrapper):
    """Mean of ``|y_pred - y_true|``."""

    direction = "down"

    def values(self, y_true, y_pred):
        return per_sample(numpy.abs(y_pred - y_true.reshape(y_pred.shape)))


@register()
class RootMeanSquaredError(MeanSquaredError):
    """Square root of the (weighted) mean squared error over everything seen."""

    def result(self):
        return float(numpy.sqrt(super().result()))


@register("mape")
class MeanAbsolutePercentageError(MeanMetricWrapper):
    """Mean of ``100 * |y_true - y_pred| / max(|y_true|, 1e-7)``."""

    direction = "down"

    def values(self, y_true, y_pred):
        return loss_functions.mean_absolute_percentage_error(y_true.reshape(y_pred.shape),
                                                             y_pred)


@register()
class CosineSimilarity(MeanMetricWrapper):
    """Mean cosine similarity between targets and predictions over the last axis
    (+1 when aligned: the negative of the loss of the same name)."""

    direction = "up"

    def __init__(self, name=None, axis=-1):
        if axis not in (-1,):
            raise ValueError(f"CosineSimilarity supports only axis=-1, got {axis!r}")
        self.axis = -1
        super().__init__(name)

    def values(self, y_true, y_pred):
        return -loss_functions.cosine_similarity(y_true.reshape(y_pred.shape), y_pred)

    def get_config(self):
        return {"name": self.name, "axis": self.axis}
