"""Dropout and DropConnect: inverted dropout of inputs or of kernel entries.

Both scale what they keep by ``1 / (1 - rate)`` while training, so inference
is the plain layer (identity for Dropout, the full kernel for DropConnect).
"""
from ..backend import get_ops
from ..utils.random import new_seed
from ..engine.stages import Kind, Stage
from .base import Layer, register
from ..utils.checks import check_rate
from .core import Dense

_SEED_MASK = (1 << 63) - 1


class MaskSeeds:
    """The seeds of a layer's random masks, one per training call.

    With ``seed`` set, call ``k`` uses a seed derived from ``(seed, k)``, so a
    run repeats exactly; ``mask_calls`` counts the calls (gradient checks
    rewind it to draw the same mask twice). Without ``seed``, seeds come from
    fastnn's random stream (``fastnn.utils.set_random_seed``).
    """

    def _init_mask_seeds(self, seed):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"{type(self).__name__} seed must be an int or None, got {seed!r}")
        self.seed = seed
        self.mask_calls = 0

    def _mask_seed(self):
        if self.seed is None:
            return new_seed()
        self.mask_calls += 1
        return (self.seed * 1_000_003 + self.mask_calls) & _SEED_MASK


@register
class Dropout(MaskSeeds, Layer):
    """Zero each input with probability ``rate`` while training.

    Args:
        rate: fraction of inputs to drop, in [0, 1).
        seed: optional int; otherwise masks draw from fastnn's random stream.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate("Dropout", rate)
        self._init_mask_seeds(seed)

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            return x, None
        ops = get_ops()
        mask = ops.dropout_mask(x.shape, self.rate, self._mask_seed(), dtype=x.dtype)
        return ops.multiply(x, mask), mask

    def stages(self):
        if not self._lowers_as(Dropout):
            return super().stages()
        d = self.input_shape[-1]
        return [Stage(Kind.DROPOUT, self, d, d, rate=self.rate, seeded=self.rate > 0)]

    def backward(self, dy, mask, need_dx=True):
        if not need_dx:
            return None
        if mask is None:
            return dy
        return get_ops().multiply(dy, mask)

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config


@register
class DropConnect(MaskSeeds, Dense):
    """A Dense layer whose kernel entries are dropped with probability ``rate`` in training.

    Each training call draws a fresh mask over the kernel (Wan et al. 2013),
    scales the kept entries by ``1 / (1 - rate)`` and uses that kernel for the
    whole batch; inference uses the full kernel. The bias is never dropped.

    Args:
        units: output width.
        rate: fraction of kernel entries to drop, in [0, 1).
        activation: as in Dense.
        seed: optional int, for repeatable masks.
        **kwargs: the other Dense arguments (use_bias, initializers, regularizers).

    Example:
        >>> layer = DropConnect(32, rate=0.5, activation="relu", input_shape=(64,))
    """

    def __init__(self, units, rate=0.5, activation=None, seed=None, **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.rate = check_rate("DropConnect", rate)
        self._init_mask_seeds(seed)

    def stages(self):
        """A DENSE stage with a kernel mask drawn each training step."""
        if not self._lowers_as(DropConnect):
            return Layer.stages(self)
        return [self._dense_stage(Kind.DENSE, activation=self.activation, rate=self.rate,
                                  seeded=self.rate > 0)]

    def _effective_kernel(self, ops, training):
        kernel = self.kernel.value
        if not training or self.rate == 0:
            return kernel, None
        mask = ops.dropout_mask(kernel.shape, self.rate, self._mask_seed(), dtype=kernel.dtype)
        return ops.multiply(kernel, mask), mask

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config
