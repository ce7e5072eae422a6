"""Value and gradient of a loss written with ``fastnn.ops`` (``Loss.call`` or a function).

Keras' reduction: the per-sample losses ``call(y_true, y_pred)`` are multiplied
by the sample weights (broadcast over trailing axes), summed, and for
"sum_over_batch_size"/"mean" divided by their number of entries ("mean_with_sample_weight":
by the sum of the weights). The gradient
with respect to ``y_pred`` comes from one reverse pass over a tape.
"""
from . import numpy_ops as np_ops
from .autodiff import value_and_grad as tape_value_and_grad


def same_rank(y_true, y_pred):
    """Keras' ``squeeze_or_expand_to_same_rank``: targets (n,) against predictions (n, 1)
    become (n, 1), and the other way round."""
    r_true, r_pred = np_ops.ndim(y_true), np_ops.ndim(y_pred)
    if r_true == r_pred:
        return y_true, y_pred
    if r_true == r_pred + 1 and np_ops.shape(y_true)[-1] == 1:
        if r_pred == 1:
            return y_true, np_ops.expand_dims(y_pred, -1)
        return np_ops.squeeze(y_true, -1), y_pred
    if r_pred == r_true + 1 and np_ops.shape(y_pred)[-1] == 1:
        if r_true == 1:
            return np_ops.expand_dims(y_true, -1), y_pred
        return y_true, np_ops.squeeze(y_pred, -1)
    return y_true, y_pred


def weighted_values(loss, y_true, y_pred, sample_weight):
    """``call``'s per-sample losses times the sample weights, and the weights as they
    broadcast against them (None when unweighted)."""
    values = loss.call(y_true, y_pred)
    w = None
    if sample_weight is not None and np_ops.ndim(values) > 0:
        w = sample_weight
        extra = np_ops.ndim(values) - np_ops.ndim(w)
        if extra > 0:
            w = np_ops.reshape(w, np_ops.shape(w) + (1,) * extra)
        values = np_ops.multiply(values, w)
    return values, w


def reduced(loss, y_true, y_pred, sample_weight):
    """The scalar loss: ``call`` weighted and reduced as ``loss.reduction`` says."""
    values, w = weighted_values(loss, y_true, y_pred, sample_weight)
    if loss.reduction == "sum":
        return np_ops.sum(values)
    if loss.reduction == "mean_with_sample_weight" and w is not None:
        # Keras: the weighted sum over the sum of the weights (broadcast to the values).
        return np_ops.divide(np_ops.sum(values),
                             np_ops.sum(np_ops.broadcast_to(w, np_ops.shape(values))))
    return np_ops.mean(values) if np_ops.size(values) else np_ops.sum(values)


def value_and_grad(loss, ops, pred, targets, grad_out=None, sample_weight=None):
    """The mean loss as a float; ``grad_out`` (when given) receives ``d loss / d pred``."""
    if targets.dtype != pred.dtype:
        targets = targets.astype(pred.dtype)  # Keras converts y_true to the loss dtype
    if grad_out is None:
        return float(reduced(loss, targets, pred, sample_weight))
    value, grad, _ = tape_value_and_grad(
        lambda p: reduced(loss, targets, p, sample_weight), pred)
    grad_out[...] = grad
    return float(value)
