"""F-beta and F1 scores with Keras 3 semantics (per class, or micro/macro/weighted averaged)."""
import numpy

from .base import Metric, as_arrays, register, sample_weights

EPSILON = 1e-7  # Keras' backend.epsilon(), added to every denominator
AVERAGES = (None, "micro", "macro", "weighted")


@register("fbeta_score")
class FBetaScore(Metric):
    """F-beta score: ``(1 + b²) * P * R / (b² * P + R)`` from streaming counts.

    Predictions are (n, k) scores, targets one-hot (n, k) (integer class ids
    are one-hot encoded first). A score is a positive when it exceeds
    ``threshold``; with ``threshold=None`` the highest score of each row is the
    positive (multi-class arg-max; for a single output column give a threshold).

    Args:
        average: None (one score per class, an array), "micro" (global counts),
            "macro" (unweighted mean over classes) or "weighted" (mean weighted
            by each class's number of true instances).
        beta: weight of recall relative to precision (> 0).
        threshold: a float in (0, 1], or None for arg-max.
    """

    direction = "up"

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score"):
        if average not in AVERAGES:
            raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0:
            raise ValueError(f"beta must be a number > 0, got {beta!r}")
        if threshold is not None and (isinstance(threshold, bool)
                                      or not isinstance(threshold, (int, float))
                                      or not 0 < threshold <= 1):
            raise ValueError(f"threshold must be a float in (0, 1] or None, got {threshold!r}")
        self.average, self.beta = average, float(beta)
        self.threshold = None if threshold is None else float(threshold)
        super().__init__(name)

    def reset_state(self):
        self.true_positives = self.false_positives = None
        self.false_negatives = self.intermediate_weights = None

    def _positives(self, y_pred):
        if self.threshold is not None:
            return y_pred > self.threshold
        row_max = y_pred.max(axis=-1, keepdims=True)
        return (y_pred >= row_max) & (numpy.abs(y_pred) > 1e-9)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = as_arrays(y_true, y_pred, self.name)
        if y_pred.ndim != 2:
            raise ValueError(f"{self.name} expects 2-D (batch, outputs) inputs, got y_pred of "
                             f"shape {y_pred.shape}")
        pred = self._positives(y_pred).astype("float64")
        w = sample_weights(sample_weight, y_pred.shape[0], self.name)
        w = numpy.ones((y_pred.shape[0], 1)) if w is None else w[:, None]
        axis = None if self.average == "micro" else 0
        found = [(w * pred * y_true).sum(axis=axis), (w * pred * (1 - y_true)).sum(axis=axis),
                 (w * (1 - pred) * y_true).sum(axis=axis), (w * y_true).sum(axis=axis)]
        if self.true_positives is None:
            self.true_positives, self.false_positives = found[0], found[1]
            self.false_negatives, self.intermediate_weights = found[2], found[3]
            return
        if numpy.shape(found[0]) != numpy.shape(self.true_positives):
            raise ValueError(f"{self.name}: the number of classes changed from "
                             f"{numpy.size(self.true_positives)} to {numpy.size(found[0])}")
        self.true_positives = self.true_positives + found[0]
        self.false_positives = self.false_positives + found[1]
        self.false_negatives = self.false_negatives + found[2]
        self.intermediate_weights = self.intermediate_weights + found[3]

    def result(self):
        if self.true_positives is None:
            return 0.0
        tp = self.true_positives
        precision = tp / (tp + self.false_positives + EPSILON)
        recall = tp / (tp + self.false_negatives + EPSILON)
        b2 = self.beta ** 2
        score = (1 + b2) * precision * recall / (b2 * precision + recall + EPSILON)
        if self.average == "weighted":
            weights = self.intermediate_weights / (self.intermediate_weights.sum() + EPSILON)
            return float((score * weights).sum())
        if self.average is not None:
            return float(numpy.mean(score))
        return numpy.asarray(score, dtype="float64")

    def get_config(self):
        return {"name": self.name, "average": self.average, "beta": self.beta,
                "threshold": self.threshold}


@register()
class F1Score(FBetaScore):
    """F1 score, the F-beta score with beta = 1 (arguments as FBetaScore, without beta)."""

    def __init__(self, average=None, threshold=None, name="f1_score"):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config
