"""Regression metrics: mean squared, root mean squared and mean absolute error (mean over
columns per sample)."""
import numpy

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
