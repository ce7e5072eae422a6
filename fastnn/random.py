"""``fastnn.random``: Keras' ``keras.random`` draws, on the current backend's arrays.

Seeds behave as in Keras 3: an int ``seed`` gives the same draw at every call;
a ``SeedGenerator`` advances with each draw (so a layer holding one draws fresh
values every step, reproducibly); ``seed=None`` draws from fastnn's shared
stream, which ``fastnn.utils.set_random_seed`` seeds. The numbers come from
NumPy's generator, so they differ from Keras' (JAX/TF) streams value by value.

Example:
    >>> from fastnn import random
    >>> a = random.normal((2, 3), seed=7)
    >>> bool((a == random.normal((2, 3), seed=7)).all())
    True
"""
import numpy

from .backend import get_ops
from .initializers import _truncated_normal
from .ops import numpy_ops as _ops
from .utils.random import get_rng, new_seed


class SeedGenerator:
    """A random stream that advances with every draw that uses it (Keras' SeedGenerator).

    Args:
        seed: an int for a reproducible stream; None: seeded from fastnn's shared stream.
    """

    def __init__(self, seed=None, name=None, **kwargs):
        self.name = name or "seed_generator"
        self.initial_seed = new_seed() if seed is None else int(seed)
        self._rng = numpy.random.default_rng(self.initial_seed)

    def next(self):
        """The generator to draw the next values from."""
        return self._rng

    def get_config(self):
        return {"seed": self.initial_seed, "name": self.name}


def _generator(seed):
    if seed is None:
        return get_rng()
    if isinstance(seed, SeedGenerator):
        return seed.next()
    if isinstance(seed, (int, numpy.integer)) and not isinstance(seed, bool):
        return numpy.random.default_rng(int(seed))
    raise ValueError(f"seed must be an int, a SeedGenerator or None, got {seed!r}")


def _out(values, dtype):
    return get_ops().asarray(values, dtype=_ops._dtype(dtype))


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Draws from a normal distribution."""
    return _out(_generator(seed).normal(mean, stddev, size=tuple(shape)), dtype)


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """Draws from a uniform distribution on ``[minval, maxval)``."""
    return _out(_generator(seed).uniform(minval, maxval, size=tuple(shape)), dtype)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal draws, redrawn until within two standard deviations of the mean."""
    return _out(_truncated_normal(_generator(seed), tuple(shape), stddev, mean), dtype)


def randint(shape, minval, maxval, dtype="int32", seed=None):
    """Integers drawn uniformly from ``[minval, maxval)``."""
    values = _generator(seed).integers(minval, maxval, size=tuple(shape))
    return get_ops().asarray(values, dtype=numpy.dtype(dtype).name)


def categorical(logits, num_samples, dtype="int32", seed=None):
    """``num_samples`` class ids per row of ``logits`` (unnormalised log-probabilities)."""
    logits = numpy.asarray(get_ops().to_numpy(_ops.raw(logits)), dtype="float64")
    gumbel = -numpy.log(-numpy.log(_generator(seed).uniform(
        1e-20, 1.0, size=(logits.shape[0], num_samples, logits.shape[1]))))
    ids = (logits[:, None, :] + gumbel).argmax(axis=-1)
    return get_ops().asarray(ids, dtype=numpy.dtype(dtype).name)


def dropout(inputs, rate, noise_shape=None, seed=None):
    """``inputs`` with entries zeroed with probability ``rate`` and the rest scaled by
    ``1 / (1 - rate)`` (differentiable: the mask is a constant)."""
    if not 0 <= rate < 1:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
    shape = _ops.shape(inputs) if noise_shape is None else tuple(
        d if d is not None else s for d, s in zip(noise_shape, _ops.shape(inputs)))
    keep = _generator(seed).uniform(size=shape) >= rate
    dtype = _ops.dtype(inputs) if _ops.dtype(inputs).startswith("float") else None
    mask = _out(keep / (1.0 - rate), dtype)
    return _ops.multiply(inputs, mask)


def shuffle(x, axis=0, seed=None):
    """``x`` with its entries along ``axis`` in a random order."""
    order = _generator(seed).permutation(_ops.shape(x)[axis])
    return _ops.take(x, order, axis=axis)
