"""Accuracy metrics (Keras names): exact match, thresholded, arg-max against one-hot or ids."""
import numpy

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


@register()
class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot target's class is among the ``k`` largest predictions."""

    direction = "up"

    def __init__(self, k=5, name=None):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"TopKCategoricalAccuracy k must be an int >= 1, got {k!r}")
        self.k = k
        super().__init__(name)

    def values(self, y_true, y_pred):
        target = y_true.argmax(axis=-1)
        score = numpy.take_along_axis(y_pred, target[:, None], axis=-1)
        # in the top k when fewer than k scores beat the target's (ties count for it)
        return ((y_pred > score).sum(axis=-1) < self.k).astype("float64")

    def get_config(self):
        return {"name": self.name, "k": self.k}
