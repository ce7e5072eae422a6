"""Confusion-matrix metrics at decision thresholds (Keras 3 semantics).

Every entry of ``y_pred`` is one binary decision: positive when
``y_pred > threshold`` (strictly), against ``y_true`` read as a boolean. With
one-hot targets and k outputs this counts n * k decisions (Keras' "micro"
view); ``class_id`` restricts the counts to one output column. Integer class
ids against k > 1 outputs are one-hot encoded first.
"""
import numpy

from .base import Metric, as_arrays, register, sample_weights, scalar_or_array

COUNTS = ("tp", "fp", "tn", "fn")


def parse_thresholds(thresholds, default=0.5):
    """A float or a list of floats in [0, 1] -> a float64 array."""
    if thresholds is None:
        return numpy.array([default], dtype="float64")
    values = thresholds if isinstance(thresholds, (list, tuple)) else [thresholds]
    if not values:
        raise ValueError("thresholds must not be empty")
    for t in values:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1:
            raise ValueError(f"Threshold values must be in [0, 1], got {thresholds!r}")
    return numpy.array(values, dtype="float64")


def _keep_top_k(y_pred, k):
    """Set all but the k largest entries of each row to -inf (Keras' top_k filter)."""
    order = numpy.argsort(-y_pred, axis=-1, kind="stable")[..., :k]
    out = numpy.full_like(y_pred, -numpy.inf)
    numpy.put_along_axis(out, order, numpy.take_along_axis(y_pred, order, axis=-1), axis=-1)
    return out


def confusion_counts(y_true, y_pred, thresholds, sample_weight=None, top_k=None,
                     class_id=None, what="metric"):
    """Weighted (tp, fp, tn, fn), each an array with one entry per threshold."""
    y_true, y_pred = as_arrays(y_true, y_pred, what)
    if top_k is not None:
        y_pred = _keep_top_k(y_pred, top_k)
    if class_id is not None:
        if not 0 <= class_id < y_pred.shape[-1]:
            raise ValueError(f"{what}: class_id={class_id} but y_pred has "
                             f"{y_pred.shape[-1]} columns")
        y_true, y_pred = y_true[..., class_id:class_id + 1], y_pred[..., class_id:class_id + 1]
    w = sample_weights(sample_weight, y_pred.shape[0], what)
    weight = numpy.ones_like(y_pred) if w is None else numpy.broadcast_to(
        w.reshape((-1,) + (1,) * (y_pred.ndim - 1)), y_pred.shape)
    truth = y_true.astype(bool).reshape(1, -1)
    weight = weight.reshape(1, -1)
    # Thresholds in float32, as Keras holds them: float32(0.3) > 0.3 in float64 would
    # count a prediction of exactly 0.3 as positive at threshold 0.3.
    limits = numpy.asarray(thresholds, dtype="float32").astype("float64")
    positive = y_pred.reshape(1, -1) > limits[:, None]
    return ((weight * (positive & truth)).sum(axis=1),
            (weight * (positive & ~truth)).sum(axis=1),
            (weight * (~positive & ~truth)).sum(axis=1),
            (weight * (~positive & truth)).sum(axis=1))


class _ConfusionMetric(Metric):
    """Accumulates the four counts per threshold; subclasses turn them into a result."""

    def __init__(self, thresholds=None, name=None, top_k=None, class_id=None):
        self.init_thresholds = thresholds
        self.top_k = _optional_int("top_k", top_k, minimum=1)
        self.class_id = _optional_int("class_id", class_id, minimum=0)
        default = 0.5 if self.top_k is None else -numpy.inf
        self.thresholds = parse_thresholds(thresholds, default)
        super().__init__(name)

    def reset_state(self):
        self.counts = {key: numpy.zeros(len(self.thresholds)) for key in COUNTS}

    def update_state(self, y_true, y_pred, sample_weight=None):
        found = confusion_counts(y_true, y_pred, self.thresholds, sample_weight, self.top_k,
                                 self.class_id, what=self.name)
        for key, value in zip(COUNTS, found):
            self.counts[key] += value

    def get_config(self):
        return {"name": self.name, "thresholds": self.init_thresholds}


def _optional_int(name, value, minimum):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) \
            or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _ratio(num, den):
    """num / den with 0 where den is 0 (Keras' divide_no_nan)."""
    return numpy.divide(num, den, out=numpy.zeros_like(num), where=den != 0)


class _Count(_ConfusionMetric):
    """One confusion count: a float for one threshold, an array for a list of them."""

    count = None

    def __init__(self, thresholds=None, name=None):
        super().__init__(thresholds, name)

    def result(self):
        return scalar_or_array(self.counts[self.count])


@register()
class TruePositives(_Count):
    """Weighted count of positives predicted as positive (``y_pred > threshold``).

    Args:
        thresholds: a float in [0, 1] or a list of them (default 0.5); a list
            gives one count per threshold.
    """

    count, direction = "tp", "up"


@register()
class FalsePositives(_Count):
    """Weighted count of negatives predicted as positive (see TruePositives)."""

    count, direction = "fp", "down"


@register()
class TrueNegatives(_Count):
    """Weighted count of negatives predicted as negative (see TruePositives)."""

    count, direction = "tn", "up"


@register()
class FalseNegatives(_Count):
    """Weighted count of positives predicted as negative (see TruePositives)."""

    count, direction = "fn", "down"


class _PrecisionRecall(_ConfusionMetric):
    direction = "up"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None):
        super().__init__(thresholds, name, top_k, class_id)

    def get_config(self):
        return {**super().get_config(), "top_k": self.top_k, "class_id": self.class_id}


@register()
class Precision(_PrecisionRecall):
    """tp / (tp + fp), 0 when nothing is predicted positive.

    Args:
        thresholds: a float in [0, 1] or a list (one precision each); default
            0.5, or "the top k" when ``top_k`` is set.
        top_k: count only the k highest predictions of each sample as candidates.
        class_id: compute the binary precision of this output column only.
    """

    def result(self):
        return scalar_or_array(_ratio(self.counts["tp"], self.counts["tp"] + self.counts["fp"]))


@register()
class Recall(_PrecisionRecall):
    """tp / (tp + fn), 0 when there are no positives. Arguments as for Precision."""

    def result(self):
        return scalar_or_array(_ratio(self.counts["tp"], self.counts["tp"] + self.counts["fn"]))
