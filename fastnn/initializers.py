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
from .utils.registry import Registry, serialize, snake_case  # noqa: F401  (serialize is public API)

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


def _check_stddev(owner, stddev):
    if not stddev >= 0:
        raise ValueError(f"{owner} stddev must be >= 0, got {stddev!r}")
    return float(stddev)


class _Random(Initializer):
    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"{type(self).__name__} seed must be an int or None, got {seed!r}")
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
        self.mean, self.stddev = float(mean), _check_stddev(type(self).__name__, stddev)

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
    """Normal(mean, stddev) with values beyond two stddev redrawn (Keras)."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), _check_stddev(type(self).__name__, stddev)

    def __call__(self, shape, dtype="float32"):
        return _truncated_normal(self._rng(), shape, self.stddev, self.mean).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


@_register
class VarianceScaling(_Random):
    """Keras' VarianceScaling: draws with variance ``scale / n``.

    Args:
        scale: positive variance multiplier.
        mode: n is "fan_in", "fan_out" or "fan_avg" (their mean).
        distribution: "truncated_normal" (std rescaled for the truncation at two
            std, as Keras does), "untruncated_normal" or "uniform" (limit
            ``sqrt(3 * scale / n)``).
        seed: int for repeatable draws (the same values on every call).
    """

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        if not scale > 0:
            raise ValueError(f"VarianceScaling scale must be > 0, got {scale!r}")
        if mode not in self._MODES:
            raise ValueError(f"VarianceScaling mode must be one of {self._MODES}, got {mode!r}")
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(f"VarianceScaling distribution must be one of "
                             f"{self._DISTRIBUTIONS}, got {distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape, dtype="float32"):
        fan_in, fan_out = _fans(tuple(shape))
        n = {"fan_in": fan_in, "fan_out": fan_out,
             "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, n)
        rng = self._rng()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            values = rng.uniform(-limit, limit, shape)
        elif self.distribution == "untruncated_normal":
            values = rng.normal(0.0, math.sqrt(variance), shape)
        else:
            values = _truncated_normal(rng, shape, math.sqrt(variance) / _TRUNCATED_STD)
        return values.astype(dtype)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


class _FixedVarianceScaling(VarianceScaling):
    """A VarianceScaling whose scale, mode and distribution are fixed by the subclass."""

    preset = {}

    def __init__(self, seed=None):
        super().__init__(seed=seed, **self.preset)

    def get_config(self):
        return {"seed": self.seed}


@_register
class GlorotUniform(_FixedVarianceScaling):
    preset = {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform"}


@_register
class GlorotNormal(_FixedVarianceScaling):
    preset = {"scale": 1.0, "mode": "fan_avg", "distribution": "truncated_normal"}


@_register
class HeNormal(_FixedVarianceScaling):
    preset = {"scale": 2.0, "mode": "fan_in", "distribution": "truncated_normal"}


@_register
class HeUniform(_FixedVarianceScaling):
    preset = {"scale": 2.0, "mode": "fan_in", "distribution": "uniform"}


@_register
class LecunNormal(_FixedVarianceScaling):
    preset = {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"}


@_register
class LecunUniform(_FixedVarianceScaling):
    preset = {"scale": 1.0, "mode": "fan_in", "distribution": "uniform"}


@_register
class Orthogonal(_Random):
    """A random orthogonal matrix times ``gain`` (Saxe et al. 2014): the QR factor of a
    Gaussian matrix, signs fixed by R's diagonal; tensors are flattened to
    (prod(shape[:-1]), shape[-1]) first, as in Keras."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = float(gain)

    def __call__(self, shape, dtype="float32"):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal needs a shape of rank >= 2, got {shape}")
        rows, cols = int(numpy.prod(shape[:-1])), shape[-1]
        a = self._rng().normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = numpy.linalg.qr(a)
        q *= numpy.sign(numpy.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(dtype)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


@_register
class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only)."""

    def __init__(self, gain=1.0):
        self.gain = float(gain)

    def __call__(self, shape, dtype="float32"):
        shape = tuple(shape)
        if len(shape) != 2:
            raise ValueError(f"Identity needs a 2-D shape, got {shape}")
        return (self.gain * numpy.eye(*shape)).astype(dtype)

    def get_config(self):
        return {"gain": self.gain}


# Keras' short aliases.
_registry.register("uniform")(RandomUniform)
_registry.register("normal")(RandomNormal)
_registry.register("zero")(Zeros)
_registry.register("one")(Ones)


def get(identifier):
    """Resolve a name, an Initializer or a {"class_name", "config"} dict."""
    return _registry.resolve(identifier, Initializer)

