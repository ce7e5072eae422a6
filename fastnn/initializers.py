"""Weight initializers with Keras definitions and names.

Fan-in/fan-out of a (in, out) kernel are its two dimensions. Glorot suits
tanh/sigmoid layers (keeps the variance of activations and gradients equal
across layers); He suits ReLU (which zeroes half of its inputs, so it doubles
the variance). The "normal" variants use a normal truncated at two standard
deviations, rescaled as Keras does (stddev / 0.8796...).

Draws come from ``fastnn.utils.random`` (reproducible under
``fastnn.utils.set_random_seed``) unless ``seed`` is given.
"""
import math

import numpy

from .utils.random import get_rng
from .utils.registry import Registry, snake_case

_registry = Registry("initializer")
# std of a standard normal truncated to [-2, 2]
_TRUNCATED_STD = 0.87962566103423978


def _fans(shape):
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(numpy.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: ``init(shape, dtype)`` returns a NumPy array."""

    def __call__(self, shape, dtype="float32"):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _register(cls):
    _registry.register(cls.__name__, snake_case(cls.__name__))(cls)
    return cls


@_register
class Zeros(Initializer):
    def __call__(self, shape, dtype="float32"):
        return numpy.zeros(shape, dtype=dtype)


@_register
class Ones(Initializer):
    def __call__(self, shape, dtype="float32"):
        return numpy.ones(shape, dtype=dtype)


@_register
class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = float(value)

    def __call__(self, shape, dtype="float32"):
        return numpy.full(shape, self.value, dtype=dtype)

    def get_config(self):
        return {"value": self.value}


class _Random(Initializer):
    def __init__(self, seed=None):
        self.seed = seed

    def _rng(self):
        return get_rng(self.seed)

    def get_config(self):
        return {"seed": self.seed}


def _truncated_normal(rng, shape, stddev, mean=0.0):
    """Normal(mean, stddev) redrawn outside two standard deviations."""
    out = rng.standard_normal(shape)
    bad = numpy.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = numpy.abs(out) > 2
    return mean + stddev * out


@_register
class RandomNormal(_Random):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype="float32"):
        return self._rng().normal(self.mean, self.stddev, shape).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


@_register
class RandomUniform(_Random):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        if maxval < minval:
            raise ValueError(f"RandomUniform needs minval <= maxval, got {minval}, {maxval}")
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype="float32"):
        return self._rng().uniform(self.minval, self.maxval, shape).astype(dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


@_register
class TruncatedNormal(_Random):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype="float32"):
        return _truncated_normal(self._rng(), shape, self.stddev, self.mean).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class VarianceScaling(_Random):
    """Keras' VarianceScaling: variance = scale / n, n = fan_in, fan_out or their mean."""

    scale = 1.0
    mode = "fan_in"
    distribution = "truncated_normal"

    def __call__(self, shape, dtype="float32"):
        fan_in, fan_out = _fans(tuple(shape))
        n = {"fan_in": fan_in, "fan_out": fan_out,
             "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, n)
        rng = self._rng()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            values = rng.uniform(-limit, limit, shape)
        else:
            values = _truncated_normal(rng, shape, math.sqrt(variance) / _TRUNCATED_STD)
        return values.astype(dtype)


@_register
class GlorotUniform(VarianceScaling):
    scale, mode, distribution = 1.0, "fan_avg", "uniform"


@_register
class GlorotNormal(VarianceScaling):
    scale, mode, distribution = 1.0, "fan_avg", "truncated_normal"


@_register
class HeNormal(VarianceScaling):
    scale, mode, distribution = 2.0, "fan_in", "truncated_normal"


@_register
class HeUniform(VarianceScaling):
    scale, mode, distribution = 2.0, "fan_in", "uniform"


@_register
class LecunNormal(VarianceScaling):
    scale, mode, distribution = 1.0, "fan_in", "truncated_normal"


@_register
class LecunUniform(VarianceScaling):
    scale, mode, distribution = 1.0, "fan_in", "uniform"


def get(identifier):
    """Resolve a name, an Initializer or a {"class_name", "config"} dict."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        return _registry.get(identifier)()
    if isinstance(identifier, dict) and "class_name" in identifier:
        return _registry.get(identifier["class_name"]).from_config(identifier.get("config", {}))
    raise ValueError(f"Cannot use {identifier!r} as an initializer; known: "
                     f"{', '.join(_registry.names())}")


def serialize(initializer):
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}
