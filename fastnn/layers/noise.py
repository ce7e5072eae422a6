"""Noise layers active only in training: GaussianNoise, GaussianDropout, AlphaDropout.

Each draws its noise from a seed (see ``MaskSeeds``), so a seeded layer repeats
exactly and gradient checks can replay the same noise; at inference each is
the identity, as in Keras. Monte-Carlo prediction (``predict(mc_samples=)``)
keeps them active like Dropout.
"""
import math

import numpy

from ..backend import get_ops
from ..utils.checks import check_non_negative, check_rate
from .base import Layer, register
from .regularization import MaskSeeds

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def _normal(ops, shape, seed, dtype):
    """Standard normal samples from ``seed``, on the backend's device."""
    return ops.asarray(numpy.random.default_rng(seed).standard_normal(shape).astype(dtype))


def _uniform(ops, shape, seed, dtype):
    return ops.asarray(numpy.random.default_rng(seed).random(shape).astype(dtype))


class _Noise(MaskSeeds, Layer):
    """Shared constructor and config: one hyperparameter plus ``seed``."""

    hyperparameter = None

    def get_config(self):
        config = super().get_config()
        config.update({self.hyperparameter: getattr(self, self.hyperparameter),
                       "seed": self.seed})
        return config


@register
class GaussianNoise(_Noise):
    """Add zero-mean Gaussian noise of standard deviation ``stddev`` while training."""

    hyperparameter = "stddev"

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = check_non_negative("GaussianNoise stddev", stddev)
        self._init_mask_seeds(seed)

    def forward(self, x, training=False):
        if not training or self.stddev == 0:
            return x, None
        ops = get_ops()
        noise = _normal(ops, x.shape, self._mask_seed(), x.dtype)
        return x + x.dtype.type(self.stddev) * noise, None

    def backward(self, dy, cache, need_dx=True):
        return dy if need_dx else None


@register
class GaussianDropout(_Noise):
    """Multiply by Gaussian noise of mean 1 and variance ``rate / (1 - rate)`` while
    training (Srivastava et al. 2014, section 10)."""

    hyperparameter = "rate"

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate("GaussianDropout", rate)
        self._init_mask_seeds(seed)

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            return x, None
        ops = get_ops()
        std = math.sqrt(self.rate / (1.0 - self.rate))
        noise = _normal(ops, x.shape, self._mask_seed(), x.dtype) * x.dtype.type(std) + 1
        return x * noise, noise

    def backward(self, dy, noise, need_dx=True):
        if not need_dx:
            return None
        return dy if noise is None else dy * noise


@register
class AlphaDropout(_Noise):
    """Dropout that keeps SELU activations' mean and variance (Klambauer et al. 2017):
    dropped units are set to SELU's negative saturation value, then an affine map
    restores the statistics. Identity at inference."""

    hyperparameter = "rate"

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if noise_shape is not None:
            raise ValueError("AlphaDropout noise_shape is not supported (None only)")
        self.rate = check_rate("AlphaDropout", rate)
        self._init_mask_seeds(seed)

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            return x, None
        ops = get_ops()
        t = x.dtype.type
        alpha_p = -_SELU_ALPHA * _SELU_SCALE
        kept = (_uniform(ops, x.shape, self._mask_seed(), x.dtype) >= self.rate).astype(x.dtype)
        a = ((1 - self.rate) * (1 + self.rate * alpha_p ** 2)) ** -0.5
        b = -a * alpha_p * self.rate
        y = t(a) * (x * kept + t(alpha_p) * (1 - kept)) + t(b)
        return y, kept * t(a)

    def backward(self, dy, scale, need_dx=True):
        if not need_dx:
            return None
        return dy if scale is None else dy * scale
