"""Utilities: seeding, one-hot encoding, normalising rows, training-curve plots."""
import numpy

from .plotting import plot_history
from .gradient_check import GradientCheckReport, gradient_check, numerical_gradient
from .random import set_random_seed


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode integer class ids: (n,) -> (n, num_classes)."""
    y = numpy.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or (y.size and not numpy.array_equal(y, numpy.round(y))):
        raise ValueError("to_categorical needs a 1-D array of integer class ids")
    y = y.astype("int64")
    if y.size and y.min() < 0:
        raise ValueError("to_categorical: class ids must be >= 0")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    elif y.size and y.max() >= num_classes:
        raise ValueError(f"to_categorical: class id {y.max()} >= num_classes={num_classes}")
    out = numpy.zeros((y.shape[0], num_classes), dtype=dtype)
    out[numpy.arange(y.shape[0]), y] = 1
    return out


def normalize(x, axis=-1, order=2):
    """``x`` divided by its ``order``-norm along ``axis`` (rows of norm 0 are left as they
    are), as ``keras.utils.normalize``."""
    x = numpy.asarray(x)
    norm = numpy.atleast_1d(numpy.linalg.norm(x, order, axis))
    norm[norm == 0] = 1
    return x / numpy.expand_dims(norm, axis)


__all__ = ["plot_history", "set_random_seed", "to_categorical", "normalize", "gradient_check",
           "GradientCheckReport", "numerical_gradient"]
