"""Weight constraints (``kernel_constraint=``, ``bias_constraint=``) with Keras names.

A constraint maps a weight to its projection onto an allowed set; ``fit`` and
``train_on_batch`` apply it to the weight after every optimizer step, as Keras
does. Max-norm (``MaxNorm``) is the constraint dropout networks are trained
with (Srivastava et al. 2014): each unit's incoming weight vector is scaled
back to norm ``max_value`` whenever it grows past it.

Norms are taken over ``axis`` (0: over the inputs of each unit of a Dense
kernel of shape (in, out)); ``epsilon`` = 1e-7 keeps the division finite, as
in Keras.
"""
import numpy

from .backend import get_ops
from .utils.registry import Registry

_registry = Registry("constraint")
_EPSILON = 1e-7


class Constraint:
    """Base class: ``__call__(w)`` returns the constrained weight."""

    def apply(self, xp, w):
        """The constrained ``w`` computed with the array module ``xp``. A user's constraint
        written the Keras way (only ``__call__(w)``) is applied through that."""
        if type(self).__call__ is Constraint.__call__:
            raise NotImplementedError(f"{type(self).__name__} must define __call__(w) or "
                                      f"apply(xp, w)")
        return xp.asarray(self(w))

    def __call__(self, w):
        ops = get_ops()
        w = ops.asarray(w)
        if not numpy.issubdtype(w.dtype, numpy.floating):
            w = w.astype("float32")
        return self.apply(ops.xp, w)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _norms(xp, w, axis):
    return xp.sqrt((w * w).sum(axis=axis, keepdims=True))


def _axis(axis):
    if isinstance(axis, (list, tuple)):
        return tuple(int(a) for a in axis)
    if isinstance(axis, bool) or not isinstance(axis, (int, numpy.integer)):
        raise ValueError(f"A constraint axis must be an int or a tuple of ints, got {axis!r}")
    return int(axis)


def _non_negative(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{owner} {name} must be a number >= 0, got {value!r}")
    return value


@_registry.register("MaxNorm", "max_norm")
class MaxNorm(Constraint):
    """Scale each slice along ``axis`` back to norm ``max_value`` when it is longer."""

    def __init__(self, max_value=2, axis=0):
        self.max_value = _non_negative("MaxNorm", "max_value", max_value)
        self.axis = _axis(axis)

    def apply(self, xp, w):
        norms = _norms(xp, w, self.axis)
        desired = xp.clip(norms, 0, self.max_value)
        return (w * (desired / (_EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


@_registry.register("NonNeg", "non_neg")
class NonNeg(Constraint):
    """Set negative entries to zero."""

    def apply(self, xp, w):
        return w * (w >= 0).astype(w.dtype)


@_registry.register("UnitNorm", "unit_norm")
class UnitNorm(Constraint):
    """Scale each slice along ``axis`` to norm 1."""

    def __init__(self, axis=0):
        self.axis = _axis(axis)

    def apply(self, xp, w):
        return (w / (_EPSILON + _norms(xp, w, self.axis))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"axis": self.axis}


@_registry.register("MinMaxNorm", "min_max_norm")
class MinMaxNorm(Constraint):
    """Move each slice's norm into [min_value, max_value], by the fraction ``rate``
    of the way per application (``rate=1``: all the way)."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _non_negative("MinMaxNorm", "min_value", min_value)
        self.max_value = _non_negative("MinMaxNorm", "max_value", max_value)
        if self.max_value < self.min_value:
            raise ValueError(f"MinMaxNorm max_value ({max_value}) is below min_value "
                             f"({min_value})")
        self.rate = _non_negative("MinMaxNorm", "rate", rate)
        self.axis = _axis(axis)

    def apply(self, xp, w):
        norms = _norms(xp, w, self.axis)
        desired = (self.rate * xp.clip(norms, self.min_value, self.max_value)
                   + (1 - self.rate) * norms)
        return (w * (desired / (_EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm


def get(identifier):
    """None, a Constraint, a name ("max_norm", "MaxNorm", ...) or a config dict."""
    if identifier is None:
        return None
    return _registry.resolve(identifier, Constraint)


def serialize(constraint):
    if constraint is None:
        return None
    return {"class_name": type(constraint).__name__, "config": constraint.get_config()}


__all__ = ["Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm", "max_norm", "non_neg",
           "unit_norm", "min_max_norm", "get", "serialize"]
