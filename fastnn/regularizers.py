"""Weight penalties (``kernel_regularizer=``): L1, L2, L1L2 with Keras defaults.

A regularizer adds ``penalty(w)`` to the reported loss and its gradient to the
weight's gradient, as Keras does.
"""
import numpy

from .utils.registry import Registry

_registry = Registry("regularizer")


class Regularizer:
    """``l1 * sum|w| + l2 * sum w^2``."""

    def __init__(self, l1=0.0, l2=0.0):
        for name, value in (("l1", l1), ("l2", l2)):
            if not numpy.isfinite(value) or value < 0:
                raise ValueError(f"{type(self).__name__}: {name} must be a finite number >= 0, "
                                 f"got {value!r}")
        self.l1, self.l2 = float(l1), float(l2)

    def penalty(self, ops, w):
        total = 0.0
        if self.l1:
            total += self.l1 * float(ops.xp.abs(w).sum())
        if self.l2:
            total += self.l2 * ops.sumsq(w)
        return total

    def add_gradient(self, ops, w, grad):
        """grad += d penalty / dw, in place."""
        if self.l1:
            grad += grad.dtype.type(self.l1) * ops.xp.sign(w)
        if self.l2:
            grad += grad.dtype.type(2 * self.l2) * w

    def __call__(self, w):
        from .backend import get_ops
        ops = get_ops()
        return self.penalty(ops, ops.asarray(w))

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@_registry.register("L1L2", "l1_l2")
class L1L2(Regularizer):
    pass


@_registry.register("L1", "l1")
class L1(Regularizer):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


@_registry.register("L2", "l2")
class L2(Regularizer):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


@_registry.register("OrthogonalRegularizer", "orthogonal_regularizer")
class OrthogonalRegularizer(Regularizer):
    """Pushes a kernel's rows (``mode="rows"``) or columns towards orthogonality:
    ``factor * mean over pairs i < j of |cos(w_i, w_j)|`` (Keras 3).

    Rows are L2-normalised (norms below 1e-7 count as 1e-7) before their dot products.
    """

    def __init__(self, factor=0.01, mode="rows"):
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) \
                or not numpy.isfinite(factor) or factor < 0:
            raise ValueError(f"OrthogonalRegularizer factor must be a finite number >= 0, "
                             f"got {factor!r}")
        if mode not in ("rows", "columns"):
            raise ValueError(f'OrthogonalRegularizer mode must be "rows" or "columns", got '
                             f"{mode!r}")
        super().__init__()
        self.factor, self.mode = float(factor), mode

    def _parts(self, ops, w):
        """(rows of w to compare, their norms, the normalised rows, cosines, scale)."""
        if w.ndim != 2:
            raise ValueError(f"OrthogonalRegularizer needs a 2-D weight, got shape {w.shape}")
        xp = ops.xp
        rows = w if self.mode == "rows" else w.T
        norms = xp.maximum(xp.sqrt((rows * rows).sum(axis=1, keepdims=True)),
                           rows.dtype.type(1e-7))
        unit = rows / norms
        cos = unit @ unit.T
        size = rows.shape[0]
        scale = self.factor * 0.5 / (size * (size - 1.0) / 2.0) if size > 1 else 0.0
        return rows, norms, unit, cos * (1 - xp.eye(size, dtype=cos.dtype)), scale

    def penalty(self, ops, w):
        _, _, _, off_diagonal, scale = self._parts(ops, w)
        return scale * float(ops.xp.abs(off_diagonal).sum())

    def add_gradient(self, ops, w, grad):
        rows, norms, unit, off_diagonal, scale = self._parts(ops, w)
        d_unit = 2 * scale * (ops.xp.sign(off_diagonal) @ unit)
        d_rows = (d_unit - unit * (unit * d_unit).sum(axis=1, keepdims=True)) / norms
        grad += (d_rows if self.mode == "rows" else d_rows.T).astype(grad.dtype, copy=False)

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


# Keras' lower-case forms, the ones most tutorials use: ``kernel_regularizer=l2(1e-4)``.
l1, l2, l1_l2, orthogonal_regularizer = L1, L2, L1L2, OrthogonalRegularizer


def get(identifier):
    if identifier is None:
        return None
    return _registry.resolve(identifier, Regularizer)


def serialize(regularizer):
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
