"""Streaming metrics with Keras names: ``update_state`` per batch, ``result``, ``reset_state``.

Strings follow Keras 3: the class name or its snake_case form ("precision",
"recall", "f1_score", "true_positives", "mean_squared_error"), plus "acc",
"mse" and "mae"; the string given becomes the metric's name in the logs.
``metrics=["accuracy"]`` picks, as Keras does, binary accuracy for a binary
cross-entropy loss or a one-column output, sparse categorical accuracy for a
sparse loss, categorical accuracy for one-hot losses, else exact accuracy.
"""
from .accuracy import (Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
                       TopKCategoricalAccuracy)
from ..utils.registry import serialize as _serialize
from .auc import AUC
from .base import Mean, MeanMetricWrapper, Metric, Sum, registry
from .confusion import (FalseNegatives, FalsePositives, Precision, Recall, TrueNegatives,
                        TruePositives)
from .f_score import F1Score, FBetaScore
from .function import FunctionMetric
from .regression import (CosineSimilarity, MeanAbsoluteError, MeanAbsolutePercentageError,
                         MeanSquaredError, RootMeanSquaredError)


def _accuracy_for(name, loss, output_shape):
    loss_name = type(loss).__name__ if loss is not None else ""
    if loss_name == "BinaryCrossentropy" or (output_shape is not None
                                             and tuple(output_shape)[-1:] == (1,)):
        return BinaryAccuracy(name=name)
    if loss_name == "SparseCategoricalCrossentropy":
        return SparseCategoricalAccuracy(name=name)
    return CategoricalAccuracy(name=name)  # several outputs with any other loss (Keras)


def get(identifier, loss=None, output_shape=None):
    """Resolve a metric name, a Metric or a ``{"class_name", "config"}`` dict.

    ``loss`` and ``output_shape`` choose the kind of "accuracy" (see module doc).
    """
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        return _accuracy_for(identifier, loss, output_shape)
    if isinstance(identifier, str):  # the given string becomes the name in the logs
        return registry.get(identifier)(name=identifier)
    if isinstance(identifier, dict) and "registered_name" in identifier:
        from ..saving import registered_class
        cls = registered_class(identifier["registered_name"], Metric, "metric")
        return cls.from_config(dict(identifier.get("config", {})))
    if isinstance(identifier, dict) and identifier.get("class_name") == "FunctionMetric":
        return FunctionMetric.from_config(dict(identifier.get("config", {})))
    if callable(identifier) and not isinstance(identifier, (Metric, type)):
        return FunctionMetric(identifier)  # a function of (y_true, y_pred), as Keras
    return registry.resolve(identifier, Metric)


def serialize(metric):
    """``{"class_name", "config"}`` of ``metric`` (plus ``"registered_name"`` for a
    registered user class)."""
    from ..saving import with_registered_name
    return with_registered_name(metric, _serialize(metric))


__all__ = ["Metric", "Mean", "Sum", "AUC", "RootMeanSquaredError", "MeanMetricWrapper",
           "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
           "Precision", "Recall",
           "F1Score", "FBetaScore", "TruePositives", "FalsePositives", "TrueNegatives",
           "FalseNegatives", "MeanSquaredError", "MeanAbsoluteError", "TopKCategoricalAccuracy",
           "MeanAbsolutePercentageError", "CosineSimilarity", "FunctionMetric", "get",
           "serialize"]
