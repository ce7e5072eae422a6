"""Losses with Keras names, defaults and reduction (mean over the batch).

Each loss computes, in one Ops call, the batch loss and the gradient with
respect to the predictions. Cross-entropies after a softmax/sigmoid output
layer are fused: the trainer hands the logits to ``softmax_cross_entropy`` /
``sigmoid_cross_entropy`` so the gradient is the stable ``p - y`` instead of
going through a clipped log. The reported loss then comes from the logits and
is exact where Keras' clipping at 1e-7 would cap it.
"""
import numpy

from .backend import get_ops
from .utils.registry import Registry, serialize, snake_case

_registry = Registry("loss", "losses")


class Loss:
    """Base class. ``__call__(y_true, y_pred, sample_weight=None)`` returns the mean loss."""

    ops_method = None          # Ops method on predictions
    logits_method = None       # fused Ops method on logits, when the head activation allows
    fuses_with = ()            # output activations that can be fused with this loss
    sparse_targets = False

    def __init__(self, name=None):
        self.name = name or snake_case(type(self).__name__)

    def _extra(self):
        return {}

    from_logits = False

    def value_and_grad(self, ops, pred, targets, grad_out=None, sample_weight=None,
                       on_logits=False, probs_out=None):
        """Mean loss over the batch; fills ``grad_out`` with its gradient.

        ``on_logits``: ``pred`` holds logits (``from_logits=True``, or a fused
        softmax/sigmoid head); ``probs_out`` then receives the probabilities.
        """
        n = pred.shape[0]
        if on_logits or self.from_logits:
            if probs_out is None:
                probs_out = ops.xp.empty_like(pred)
            total = getattr(ops, self.logits_method)(pred, targets, probs_out, grad_out,
                                                     sample_weight, 1.0 / n, **self._extra())
        else:
            total = getattr(ops, self.ops_method)(pred, targets, grad_out, sample_weight,
                                                  1.0 / n, **self._extra())
        return total / n

    def __call__(self, y_true, y_pred, sample_weight=None):
        ops = get_ops()
        pred = ops.asarray(y_pred)
        if not numpy.issubdtype(pred.dtype, numpy.floating):
            pred = pred.astype("float32")
        if pred.ndim == 1:
            pred = pred[:, None]
        targets = ops.asarray(y_true)
        if not self.sparse_targets and targets.ndim == 1:
            targets = targets[:, None]
        w = None if sample_weight is None else ops.asarray(sample_weight, dtype=pred.dtype)
        return self.value_and_grad(ops, pred, targets, sample_weight=w)

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _register(*aliases):
    def decorate(cls):
        _registry.register(cls.__name__, snake_case(cls.__name__), *aliases)(cls)
        return cls
    return decorate


class _CrossEntropy(Loss):
    def __init__(self, from_logits=False, label_smoothing=0.0, name=None):
        super().__init__(name)
        if not 0 <= label_smoothing <= 1:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)

    def _extra(self):
        return {"label_smoothing": self.label_smoothing}

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


@_register()
class CategoricalCrossentropy(_CrossEntropy):
    """-sum(y * log p) with one-hot (or soft) targets."""

    ops_method = "crossentropy_loss"
    logits_method = "softmax_cross_entropy"
    fuses_with = ("softmax",)


@_register()
class SparseCategoricalCrossentropy(_CrossEntropy):
    """Cross-entropy with integer class targets."""

    ops_method = "crossentropy_loss"
    logits_method = "softmax_cross_entropy"
    fuses_with = ("softmax",)
    sparse_targets = True

    def __init__(self, from_logits=False, name=None):
        super().__init__(from_logits=from_logits, name=name)

    def _extra(self):
        return {}

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


@_register()
class BinaryCrossentropy(_CrossEntropy):
    """-(y log p + (1 - y) log(1 - p)), averaged over the output columns."""

    ops_method = "binary_crossentropy_loss"
    logits_method = "sigmoid_cross_entropy"
    fuses_with = ("sigmoid",)


class _Pointwise(Loss):
    pass


@_register("mse")
class MeanSquaredError(_Pointwise):
    ops_method = "mean_squared_error_loss"


@_register("mae")
class MeanAbsoluteError(_Pointwise):
    ops_method = "mean_absolute_error_loss"


@_register()
class Huber(_Pointwise):
    """0.5 d^2 where |d| <= delta, else delta * (|d| - delta / 2)."""

    ops_method = "huber_loss"

    def __init__(self, delta=1.0, name="huber_loss"):
        super().__init__(name)
        if not delta > 0:
            raise ValueError(f"Huber delta must be > 0, got {delta!r}")
        self.delta = float(delta)

    def _extra(self):
        return {"delta": self.delta}

    def get_config(self):
        return {"name": self.name, "delta": self.delta}


@_register()
class Hinge(_Pointwise):
    """max(0, 1 - y * s) with labels in {-1, 1} (0/1 labels are mapped to -1/1)."""

    ops_method = "hinge_loss"


@_register()
class CategoricalHinge(_Pointwise):
    """Multi-class SVM: max(0, 1 + max_{j != y} s_j - s_y)."""

    ops_method = "categorical_hinge_loss"


def get(identifier):
    """Resolve a name, a Loss or a {"class_name", "config"} dict."""
    return _registry.resolve(identifier, Loss)



# Keras' function-style names.
mean_squared_error = mse = MeanSquaredError()
mean_absolute_error = mae = MeanAbsoluteError()
binary_crossentropy = BinaryCrossentropy()
categorical_crossentropy = CategoricalCrossentropy()
sparse_categorical_crossentropy = SparseCategoricalCrossentropy()
