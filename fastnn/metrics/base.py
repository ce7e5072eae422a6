"""Streaming metrics with Keras names: ``update_state`` per batch, ``result``, ``reset_state``.

Metrics run on NumPy copies of small per-batch arrays (predictions and
targets), outside the hot kernels.

``metrics=["accuracy"]`` picks, as Keras does, binary accuracy for a binary
cross-entropy loss or a one-column output, sparse categorical accuracy for a
sparse loss, categorical accuracy otherwise.
"""
import numpy

from .utils.registry import Registry, snake_case

_registry = Registry("metric")


class Metric:
    """Base class of streaming metrics."""

    def __init__(self, name=None):
        self.name = name or snake_case(type(self).__name__)
        self.reset_state()

    def reset_state(self):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        """One-shot value on the given batch (the state is reset first)."""
        self.reset_state()
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _register(*aliases):
    def decorate(cls):
        _registry.register(cls.__name__, snake_case(cls.__name__), *aliases)(cls)
        return cls
    return decorate


class MeanMetricWrapper(Metric):
    """Weighted mean over samples of a per-sample value ``values(y_true, y_pred)``."""

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def values(self, y_true, y_pred):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self.values(numpy.asarray(y_true), numpy.asarray(y_pred))
        if sample_weight is None:
            self.total += float(values.sum())
            self.count += values.shape[0]
        else:
            w = numpy.asarray(sample_weight, dtype="float64").reshape(-1)
            self.total += float((values * w).sum())
            self.count += float(w.sum())

    def result(self):
        return self.total / self.count if self.count else 0.0


def _per_sample(values):
    """Mean over the trailing axes so each sample gives one number."""
    values = values.astype("float64")
    return values.reshape(values.shape[0], -1).mean(axis=1) if values.ndim > 1 else values


@_register("acc")
class Accuracy(MeanMetricWrapper):
    """How often predictions equal the targets exactly."""

    def values(self, y_true, y_pred):
        return _per_sample(y_true.reshape(y_pred.shape) == y_pred)


@_register()
class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` matches a 0/1 target."""

    def __init__(self, name=None, threshold=0.5):
        self.threshold = float(threshold)
        super().__init__(name)

    def values(self, y_true, y_pred):
        pred = y_pred > self.threshold
        return _per_sample(y_true.reshape(pred.shape).astype(bool) == pred)

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}


@_register()
class CategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of predictions equals the arg-max of one-hot targets."""

    def values(self, y_true, y_pred):
        return (y_true.argmax(axis=-1) == y_pred.argmax(axis=-1)).astype("float64")


@_register()
class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of predictions equals an integer target."""

    def values(self, y_true, y_pred):
        return (y_true.reshape(-1).astype("int64") == y_pred.argmax(axis=-1)).astype("float64")


@_register("mse")
class MeanSquaredError(MeanMetricWrapper):
    def values(self, y_true, y_pred):
        return _per_sample((y_pred - y_true.reshape(y_pred.shape)) ** 2)


@_register("mae")
class MeanAbsoluteError(MeanMetricWrapper):
    def values(self, y_true, y_pred):
        return _per_sample(numpy.abs(y_pred - y_true.reshape(y_pred.shape)))


class Mean(Metric):
    """The weighted mean of the values given (the running loss)."""

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, value, weight=1.0):
        self.total += float(value) * weight
        self.count += weight

    def result(self):
        return self.total / self.count if self.count else 0.0


def get(identifier, loss=None, output_shape=None):
    """Resolve a metric name or object; "accuracy" depends on the loss (see module doc)."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        loss_name = type(loss).__name__ if loss is not None else ""
        if loss_name == "BinaryCrossentropy" or (output_shape is not None
                                                 and tuple(output_shape)[-1:] == (1,)):
            return BinaryAccuracy(name=identifier)
        if loss_name == "SparseCategoricalCrossentropy":
            return SparseCategoricalAccuracy(name=identifier)
        if loss_name in ("CategoricalCrossentropy", "CategoricalHinge"):
            return CategoricalAccuracy(name=identifier)
        return Accuracy(name=identifier)
    if isinstance(identifier, str):
        return _registry.get(identifier)(name=identifier)
    if isinstance(identifier, dict) and "class_name" in identifier:
        return _registry.get(identifier["class_name"]).from_config(identifier.get("config", {}))
    raise ValueError(f"Cannot use {identifier!r} as a metric; known metrics: accuracy, "
                     f"{', '.join(_registry.names())}")


def serialize(metric):
    return {"class_name": type(metric).__name__, "config": metric.get_config()}
