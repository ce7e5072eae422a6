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
from .ops import custom_loss
from .utils.registry import Registry, snake_case
from .utils.registry import serialize as _serialize

_registry = Registry("loss", "losses")


class Loss:
    """Base class. ``__call__(y_true, y_pred, sample_weight=None)`` returns the mean loss.

    Built-in losses compute value and gradient in one Ops call. A user's loss
    subclasses Loss and implements ``call(y_true, y_pred)`` with ``fastnn.ops``,
    returning per-sample losses; they are weighted, reduced (``reduction``:
    "sum_over_batch_size" (the mean), "mean" (the same) or "sum") and
    differentiated on a tape.
    """

    ops_method = None          # Ops method on predictions (None: the loss is call())
    logits_method = None       # fused Ops method on logits, when the head activation allows
    fuses_with = ()            # output activations that can be fused with this loss
    sparse_targets = False

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        self.name = name or snake_case(type(self).__name__)
        if reduction not in _REDUCTIONS:
            raise ValueError(f"Unknown reduction {reduction!r}; known: "
                             f"{', '.join(_REDUCTIONS)}")
        self.reduction = reduction

    def call(self, y_true, y_pred):
        """Per-sample losses (user losses override this)."""
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred)")

    def _extra(self):
        return {}

    from_logits = False

    def value_and_grad(self, ops, pred, targets, grad_out=None, sample_weight=None,
                       on_logits=False, probs_out=None):
        """Mean loss over the batch; fills ``grad_out`` with its gradient.

        ``on_logits``: ``pred`` holds logits (``from_logits=True``, or a fused
        softmax/sigmoid head); ``probs_out`` then receives the probabilities.
        """
        if self.ops_method is None:
            return custom_loss.value_and_grad(self, ops, pred, targets, grad_out, sample_weight)
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
        config = {"name": self.name}
        if self.ops_method is None:
            config["reduction"] = self.reduction
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


_REDUCTIONS = ("sum_over_batch_size", "mean", "sum")


class LossFunctionWrapper(Loss):
    """A loss function ``fn(y_true, y_pred, **kwargs)`` returning per-sample losses, as a
    Loss (what ``compile(loss=fn)`` makes of a function)."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"LossFunctionWrapper needs a function, got {fn!r}")
        super().__init__(name=name or getattr(fn, "__name__", None), reduction=reduction)
        self.fn = fn
        self.fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        y_true, y_pred = custom_loss.same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred, **self.fn_kwargs)

    def get_config(self):
        from .saving import registered_key
        # An unregistered function is written by name; loading it then fails clearly.
        key = registered_key(self.fn) or getattr(self.fn, "__name__", repr(self.fn))
        return {"fn": key, "name": self.name, "reduction": self.reduction, **self.fn_kwargs}

    @classmethod
    def from_config(cls, config):
        from .saving import get_registered_object
        config = dict(config)
        key = config.pop("fn", None)
        fn = get_registered_object(key) if isinstance(key, str) else None
        if fn is None or isinstance(fn, type):
            raise ValueError(f"Unknown loss function {key!r}: register it with "
                             f"@fastnn.saving.register_keras_serializable() before loading "
                             f"(or load with compile=False)")
        return cls(fn, **config)


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

    def __init__(self, delta=1.0, name=None):
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
    """Resolve a name, a Loss, a loss function ``fn(y_true, y_pred)`` or a
    ``{"class_name", "config"}`` dict (user classes by their ``"registered_name"``)."""
    if isinstance(identifier, dict) and "registered_name" in identifier:
        from .saving import get_registered_object
        cls = get_registered_object(identifier["registered_name"])
        if not (isinstance(cls, type) and issubclass(cls, Loss)):
            raise ValueError(f"Unknown loss {identifier['registered_name']!r}: register it "
                             f"with @fastnn.saving.register_keras_serializable()")
        return cls.from_config(dict(identifier.get("config", {})))
    if isinstance(identifier, dict) and identifier.get("class_name") == "LossFunctionWrapper":
        return LossFunctionWrapper.from_config(dict(identifier.get("config", {})))
    if callable(identifier) and not isinstance(identifier, (Loss, type)):
        return LossFunctionWrapper(identifier)
    return _registry.resolve(identifier, Loss)


def serialize(loss):
    """``{"class_name", "config"}`` of ``loss`` (plus ``"registered_name"`` for a
    registered user class)."""
    from .saving import registered_key
    entry = _serialize(loss)
    key = registered_key(type(loss))
    if key is not None:
        entry["registered_name"] = key
    return entry



# Keras' function-style names.
mean_squared_error = mse = MeanSquaredError()
mean_absolute_error = mae = MeanAbsoluteError()
binary_crossentropy = BinaryCrossentropy()
categorical_crossentropy = CategoricalCrossentropy()
sparse_categorical_crossentropy = SparseCategoricalCrossentropy()
