"""AUC: the area under the ROC or precision-recall curve, as Keras computes it.

Confusion counts are accumulated at ``num_thresholds`` evenly spaced thresholds
(plus one just below 0 and one just above 1), then the curve through those
points is integrated: the trapezoid rule for ROC, and for PR the interpolation
of Davis & Goadrich (2006) that Keras uses, which models true and predicted
positives as linear between thresholds.
"""
import numpy

from .base import Metric, register
from .confusion import COUNTS, _ratio, confusion_counts

_EPSILON = 1e-7


@register()
class AUC(Metric):
    """Area under the ROC (``curve="ROC"``, default) or PR (``curve="PR"``) curve.

    Args:
        num_thresholds: number of thresholds (> 1), default 200.
        curve: "ROC" or "PR".
        summation_method: "interpolation" (default), "minoring" or "majoring".
        thresholds: explicit thresholds in [0, 1] instead of evenly spaced ones.
    """

    direction = "up"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, thresholds=None):
        if str(curve).upper() not in ("ROC", "PR"):
            raise ValueError(f'AUC curve must be "ROC" or "PR", got {curve!r}')
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(f"AUC summation_method must be 'interpolation', 'minoring' or "
                             f"'majoring', got {summation_method!r}")
        self.curve = str(curve).upper()
        self.summation_method = summation_method
        if thresholds is not None:
            inner = sorted(float(t) for t in thresholds)
            num_thresholds = len(inner) + 2
        else:
            if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int) \
                    or num_thresholds <= 1:
                raise ValueError(f"AUC num_thresholds must be an int > 1, got "
                                 f"{num_thresholds!r}")
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.num_thresholds = num_thresholds
        self._init_thresholds = None if thresholds is None else list(inner)
        self.thresholds = numpy.array([0.0 - _EPSILON] + inner + [1.0 + _EPSILON])
        super().__init__(name)

    def reset_state(self):
        self.counts = {key: numpy.zeros(self.num_thresholds) for key in COUNTS}

    def update_state(self, y_true, y_pred, sample_weight=None):
        found = confusion_counts(y_true, y_pred, self.thresholds, sample_weight, what=self.name)
        for key, value in zip(COUNTS, found):
            self.counts[key] += value

    def result(self):
        tp, fp, tn, fn = (self.counts[key] for key in COUNTS)
        if self.curve == "PR" and self.summation_method == "interpolation":
            return float(self._interpolated_pr_auc(tp, fp, fn))
        recall = _ratio(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _ratio(fp, fp + tn), recall
        else:
            x, y = recall, _ratio(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = numpy.minimum(y[:-1], y[1:])
        else:
            heights = numpy.maximum(y[:-1], y[1:])
        return float(((x[:-1] - x[1:]) * heights).sum())

    @staticmethod
    def _interpolated_pr_auc(tp, fp, fn):
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _ratio(dtp, numpy.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = numpy.ones_like(p[1:])
        ratio[both] = p[:-1][both] / numpy.maximum(p[1:][both], 0)
        increments = _ratio(slope * (dtp + intercept * numpy.log(ratio)),
                            numpy.maximum(tp[1:] + fn[1:], 0))
        return increments.sum()

    def get_config(self):
        return {"name": self.name, "num_thresholds": self.num_thresholds, "curve": self.curve,
                "summation_method": self.summation_method,
                "thresholds": self._init_thresholds, "multi_label": False,
                "num_labels": None, "label_weights": None, "from_logits": False}

    @classmethod
    def from_config(cls, config):
        config = {k: v for k, v in config.items()
                  if k not in ("multi_label", "num_labels", "label_weights", "from_logits")}
        return cls(**config)
