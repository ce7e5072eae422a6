"""Maxout: each unit is the max of ``pieces`` affine functions of the input."""
from ..backend import get_ops
from ..engine.stages import Kind
from .base import Layer, register
from ..utils.checks import check_positive_int
from .core import Dense


@register
class Maxout(Dense):
    """``y_j = max_k (x @ kernel[:, j*pieces + k] + bias[j*pieces + k])`` (Goodfellow et al. 2013).

    The kernel has shape (in, units * pieces), one column per piece, the
    pieces of a unit adjacent. The winning piece of every output is kept for
    the backward pass, which routes the gradient to it alone.

    Args:
        units: output width.
        pieces: affine pieces per unit (>= 1; 2 by default).
        **kwargs: use_bias, kernel_initializer, bias_initializer,
            kernel_regularizer and bias_regularizer, as in Dense.

    Example:
        >>> layer = Maxout(16, pieces=3, input_shape=(8,))
    """

    def __init__(self, units, pieces=2, **kwargs):
        if kwargs.get("activation") not in (None, "linear"):
            raise ValueError("Maxout takes no activation: the max over pieces is its "
                             "non-linearity")
        kwargs.pop("activation", None)
        super().__init__(units, **kwargs)
        self.pieces = check_positive_int("Maxout pieces", pieces)

    takes_sequences = False

    def _kernel_width(self):
        return self.units * self.pieces

    def stages(self):
        """A MAXOUT stage: the product, then the max over each unit's pieces."""
        if not self._lowers_as(Maxout):
            return Layer.stages(self)
        return [self._dense_stage(Kind.MAXOUT, pieces=self.pieces)]

    def forward(self, x, training=False):
        ops = get_ops()
        z, affine_cache = self._affine_forward(ops, x, training)
        y, argmax = ops.maxout(z, self.pieces)
        return y, (affine_cache, argmax)

    def backward(self, dy, cache, need_dx=True):
        ops = get_ops()
        affine_cache, argmax = cache
        dz = ops.backprop_maxout(dy, argmax, self.pieces)
        return self._affine_backward(ops, dz, affine_cache, need_dx)

    def get_config(self):
        config = super().get_config()
        del config["activation"]
        config["pieces"] = self.pieces
        return config
