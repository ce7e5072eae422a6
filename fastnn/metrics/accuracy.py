"""Accuracy metrics (Keras names): exact match, thresholded, arg-max against one-hot or ids."""
from .base import MeanMetricWrapper, per_sample, register


@register("acc")
class Accuracy(MeanMetricWrapper):
    """How often predictions equal the targets exactly."""

    direction = "up"

    def values(self, y_true, y_pred):
        return per_sample(y_true.reshape(y_pred.shape) == y_pred)


@register()
class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` matches a 0/1 target (mean over columns per sample)."""

    direction = "up"

    def __init__(self, name=None, threshold=0.5):
        self.threshold = float(threshold)
        super().__init__(name)

    def values(self, y_true, y_pred):
        pred = y_pred > self.threshold
        return per_sample(y_true.reshape(pred.shape).astype(bool) == pred)

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}


@register()
class CategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of predictions equals the arg-max of one-hot targets."""

    direction = "up"

    def values(self, y_true, y_pred):
        return (y_true.argmax(axis=-1) == y_pred.argmax(axis=-1)).astype("float64")


@register()
class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of predictions equals an integer target."""

    direction = "up"

    def values(self, y_true, y_pred):
        return (y_true.reshape(-1).astype("int64") == y_pred.argmax(axis=-1)).astype("float64")
