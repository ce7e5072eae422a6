"""``fastnn.ops``: the ``keras.ops`` functions an MLP user writes custom code with.

Names, arguments and defaults follow Keras 3. The functions compute on the
current backend's arrays ("numpy", "cpu" or "cupy"), so custom losses,
metrics and layers run wherever the model runs. During a training step the
inputs of custom code are ``Tensor`` objects on a tape and every call records
a vector-Jacobian product, so the code is differentiated in reverse mode
without a hand-written backward pass (see ``fastnn.ops.tape``). Outside a
training step they take and return plain arrays and record nothing.

Example:
    >>> from fastnn import ops
    >>> float(ops.mean(ops.square(ops.convert_to_tensor([1.0, -2.0]))))
    2.5
"""
from . import nn, numpy_ops
from .autodiff import value_and_grad
from .nn import (binary_crossentropy, categorical_crossentropy, elu, gelu, hard_sigmoid,
                 hard_silu, leaky_relu, log_sigmoid, log_softmax, normalize, one_hot, relu,
                 relu6, selu, sigmoid, silu, softmax, softplus, softsign,
                 sparse_categorical_crossentropy, swish, tanh)
from .numpy_ops import (abs, absolute, add, all, any, arange, argmax, argmin, broadcast_to,
                        cast, ceil, clip, concatenate, convert_to_numpy, convert_to_tensor,
                        cos, count_nonzero, cumsum, divide, dot, dtype, equal, erf, exp,
                        expand_dims, expm1, eye, floor, floor_divide, full, full_like,
                        get_item, greater, greater_equal, identity, isfinite, isinf, isnan,
                        less, less_equal, log, log1p, log2, log10, logical_and, logical_not,
                        logical_or, logical_xor, logsumexp, matmul, max, maximum, mean, min,
                        minimum, mod, moveaxis, multiply, ndim, negative, not_equal, ones,
                        ones_like, outer, power, prod, ravel, reciprocal, reshape, round,
                        shape, sign, sin, size, slice, split, sqrt, square, squeeze, stack, std,
                        stop_gradient, subtract, sum, swapaxes, take, take_along_axis,
                        tensordot, tile, transpose, true_divide, var, where, zeros, zeros_like)
from .tape import Tape, Tensor, Variable

__all__ = [name for name in dir() if not name.startswith("_")
           and name not in ("nn", "numpy_ops", "autodiff", "tape")]
