"""Metrics written by users: a function of ``(y_true, y_pred)``, or state variables."""
import numpy

from ..backend import get_ops
from ..ops.tape import Variable
from .base import MeanMetricWrapper, per_sample


class MetricVariable(Variable):
    """A metric's state (``Metric.add_variable``): a NumPy array updated with ``assign*``."""

    def __init__(self, name, value, initial):
        self.name = name
        self.value = value
        self.initial = initial

    @property
    def shape(self):
        return tuple(self.value.shape)

    def reset(self):
        self.value[...] = self.initial


def make_variable(metric, shape, initializer, dtype, name):
    """A MetricVariable of ``shape`` filled by ``initializer`` ("zeros", "ones", a number
    or a fastnn initializer)."""
    from .. import initializers
    shape = () if shape is None else tuple(shape)
    dtype = numpy.dtype(dtype or "float32")
    if isinstance(initializer, (int, float)):
        initial = numpy.full(shape, initializer, dtype=dtype)
    else:
        initial = numpy.asarray(initializers.get(initializer or "zeros")(shape, dtype.name),
                                dtype=dtype).reshape(shape)
    name = name or f"variable_{len(metric.variables)}"
    return MetricVariable(f"{metric.name}/{name}", initial.copy(), initial)


class FunctionMetric(MeanMetricWrapper):
    """The weighted mean over samples of ``fn(y_true, y_pred, **kwargs)`` (what
    ``compile(metrics=[fn])`` makes of a function; Keras' ``MeanMetricWrapper``)."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"A metric function must be callable, got {fn!r}")
        self.fn = fn
        self.fn_kwargs = kwargs
        super().__init__(name=name or getattr(fn, "__name__", None))

    def values(self, y_true, y_pred):
        out = get_ops().to_numpy(_raw(self.fn(y_true, y_pred, **self.fn_kwargs)))
        out = numpy.asarray(out, dtype="float64")
        if out.ndim == 0:
            out = numpy.full(len(y_pred), float(out))
        return per_sample(out)

    def get_config(self):
        from ..saving import registered_key
        key = registered_key(self.fn) or getattr(self.fn, "__name__", repr(self.fn))
        return {"fn": key, "name": self.name, **self.fn_kwargs}

    @classmethod
    def from_config(cls, config):
        from ..saving import registered_function
        config = dict(config)
        return cls(registered_function(config.pop("fn", None), "metric"), **config)


def _raw(x):
    return x.value if isinstance(x, Variable) else x
