"""Dropout: inverted dropout (scale kept units by 1/(1-rate) in training, identity in inference)."""
from ..backend import get_ops
from ..utils.random import new_seed
from .base import Layer, register


def check_rate(layer_name, rate):
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError(f"{layer_name} rate must be a number in [0, 1), got {rate!r}")
    return float(rate)


@register
class Dropout(Layer):
    """Zero each input with probability ``rate`` while training.

    Args:
        rate: fraction of inputs to drop, in [0, 1).
        seed: optional int; otherwise masks draw from fastnn's random stream.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate("Dropout", rate)
        self.seed = seed
        self._calls = 0

    def _mask_seed(self):
        if self.seed is None:
            return new_seed()
        self._calls += 1
        return (self.seed * 1_000_003 + self._calls) & ((1 << 63) - 1)

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            return x, None
        ops = get_ops()
        mask = ops.dropout_mask(x.shape, self.rate, self._mask_seed(), dtype=x.dtype)
        return ops.multiply(x, mask), mask

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
