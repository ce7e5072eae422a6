"""The streaming Metric protocol, the means every simple metric is built on, the registry.

A metric accumulates state over batches with ``update_state(y_true, y_pred,
sample_weight=None)``, reports ``result()`` and starts over with
``reset_state()`` (``fit`` resets at every epoch). Metrics run on NumPy copies
of small per-batch arrays, outside the hot kernels.
"""
import numpy

from ..utils.registry import Registry, snake_case

registry = Registry("metric")


def register(*aliases):
    """Make a metric class resolvable by its class name, its snake_case name and ``aliases``."""
    def decorate(cls):
        registry.register(cls.__name__, snake_case(cls.__name__), *aliases)(cls)
        return cls
    return decorate


class Metric:
    """Base class of streaming metrics.

    ``direction`` is "up" when larger is better and "down" when smaller is
    (callbacks with ``mode="auto"`` read it, as Keras 3 does).
    """

    direction = None

    def __init__(self, name=None, dtype=None):
        self.name = name or snake_case(type(self).__name__)
        self.variables = []
        # fastnn's own metrics create their state in reset_state; a Keras-style metric
        # creates it with add_variable after this returns, and its own reset_state runs
        # at the start of every epoch.
        if getattr(type(self).reset_state, "__module__", "").startswith("fastnn."):
            self.reset_state()

    def add_variable(self, shape=(), initializer="zeros", dtype=None, aggregation="sum",
                     name=None):
        """A state variable (NumPy, on the host) that ``reset_state`` sets back to its
        initial value; update it with ``assign``/``assign_add``/``assign_sub``."""
        from .function import make_variable
        variable = make_variable(self, shape, initializer, dtype, name)
        self.variables.append(variable)
        return variable

    def add_weight(self, shape=(), initializer="zeros", dtype=None, aggregation="sum",
                   name=None):
        """Same as ``add_variable`` (Keras' older name)."""
        return self.add_variable(shape, initializer, dtype, aggregation, name)

    def reset_state(self):
        """Set every ``add_variable`` variable back to its initial value."""
        for variable in self.variables:
            variable.reset()

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


def as_arrays(y_true, y_pred, what):
    """NumPy float64 ``y_pred`` and ``y_true`` of the same shape.

    Integer class ids (n,) or (n, 1) against (n, k>1) predictions are one-hot
    encoded (a convenience for sparse losses; Keras would need one-hot targets);
    a 1-D side against one column is reshaped.
    """
    y_pred = numpy.asarray(y_pred, dtype="float64")
    y_true = numpy.asarray(y_true)
    if y_pred.ndim == 1:
        y_pred = y_pred[:, None]
    if y_true.ndim == 1 or (y_true.ndim == 2 and y_true.shape[1] == 1 and y_pred.shape[-1] > 1):
        y_true = y_true.reshape(-1)
        if y_pred.ndim == 2 and y_pred.shape[1] > 1:
            ids = y_true.astype("int64")
            if ids.size and (ids.min() < 0 or ids.max() >= y_pred.shape[1]):
                raise ValueError(f"{what}: class ids must lie in [0, {y_pred.shape[1]}), got "
                                 f"min {ids.min()}, max {ids.max()}")
            y_true = numpy.eye(y_pred.shape[1])[ids]
        else:
            y_true = y_true[:, None]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{what}: y_true has shape {y_true.shape} but y_pred has shape "
                         f"{y_pred.shape}")
    return y_true.astype("float64"), y_pred


def sample_weights(sample_weight, n, what):
    """Per-sample weights as a float64 (n,) array, or None."""
    if sample_weight is None:
        return None
    w = numpy.asarray(sample_weight, dtype="float64").reshape(-1)
    if w.shape[0] != n:
        raise ValueError(f"{what}: sample_weight has {w.shape[0]} entries for {n} samples")
    return w


def scalar_or_array(values):
    """A Python float for one value (what logs hold), else a NumPy array."""
    values = numpy.asarray(values, dtype="float64")
    return float(values.reshape(-1)[0]) if values.size == 1 and values.ndim <= 1 else values


def _weighted(values, sample_weight):
    """(sum of w * values, sum of w) over all entries, ``sample_weight`` broadcast to the
    shape of ``values`` as in Keras (one weight per sample spreads over its row)."""
    values = numpy.asarray(values, dtype="float64")
    if sample_weight is None:
        return float(values.sum()), float(values.size)
    w = numpy.asarray(sample_weight, dtype="float64")
    if w.ndim and values.ndim and w.ndim < values.ndim and w.shape[0] == values.shape[0]:
        w = w.reshape(w.shape + (1,) * (values.ndim - w.ndim))
    try:
        w = numpy.broadcast_to(w, values.shape)
    except ValueError:
        raise ValueError(f"sample_weight of shape {w.shape} does not fit values of shape "
                         f"{values.shape}") from None
    return float((values * w).sum()), float(w.sum())


@register()
class Mean(Metric):
    """The (weighted) mean of every value given: ``update_state([1, 2, 4])``; the trainer's
    running loss uses ``update_state(batch_loss, batch_size)``."""

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None):
        if isinstance(values, float) and isinstance(sample_weight, (int, float)):
            self.total += values * sample_weight  # the per-batch loss: no array work
            self.count += sample_weight
            return
        total, count = _weighted(values, sample_weight)
        self.total += total
        self.count += count

    def result(self):
        return self.total / self.count if self.count else 0.0


@register()
class Sum(Metric):
    """The (weighted) sum of every value given."""

    def reset_state(self):
        self.total = 0.0

    def update_state(self, values, sample_weight=None):
        self.total += _weighted(values, sample_weight)[0]

    def result(self):
        return self.total


class MeanMetricWrapper(Metric):
    """Weighted mean over samples of a per-sample value ``values(y_true, y_pred)``."""

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def values(self, y_true, y_pred):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self.values(numpy.asarray(y_true), numpy.asarray(y_pred))
        w = sample_weights(sample_weight, values.shape[0], self.name)
        if w is None:
            self.total += float(values.sum())
            self.count += values.shape[0]
        else:
            self.total += float((values * w).sum())
            self.count += float(w.sum())

    def result(self):
        return self.total / self.count if self.count else 0.0


def per_sample(values):
    """Mean over the trailing axes so each sample gives one number."""
    values = values.astype("float64")
    return values.reshape(values.shape[0], -1).mean(axis=1) if values.ndim > 1 else values
