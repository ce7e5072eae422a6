"""Losses with Keras names, defaults and reductions.

Two forms, as in Keras: ``Loss`` objects (``MeanSquaredError(reduction=...)``),
which ``compile`` takes and which reduce per-sample values when called, and
per-sample functions (``mean_squared_error(y_true, y_pred)``, one value per
sample; see ``fastnn.loss_functions``). Reductions: "sum_over_batch_size"
(default; "mean" is the same), "sum", "mean_with_sample_weight" and "none".

Each loss computes, in one Ops call, the batch loss and the gradient with
respect to the predictions. Cross-entropies after a softmax/sigmoid output
layer are fused: the trainer hands the logits to ``softmax_cross_entropy`` /
``sigmoid_cross_entropy`` so the gradient is the stable ``p - y`` instead of
going through a clipped log. The reported loss then comes from the logits and
is exact where Keras' clipping at 1e-7 would cap it.
"""
import numpy

from . import loss_functions
from .backend import get_ops
from .ops import custom_loss
from .utils.registry import Registry, snake_case
from .utils.registry import serialize as _serialize

_registry = Registry("loss", "losses")
REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", "none")


class Loss:
    """Base class. ``__call__(y_true, y_pred, sample_weight=None)`` returns the reduced loss
    (a float; per-sample values for ``reduction="none"``).

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
    function = None            # the per-sample function (fastnn.loss_functions)

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction is None:
            reduction = "none"
        if reduction not in REDUCTIONS:
            raise ValueError(f"Unknown reduction {reduction!r}; use one of "
                             f"{', '.join(REDUCTIONS)}")
        self.name = name or snake_case(type(self).__name__)
        self.reduction = reduction

    def call(self, y_true, y_pred):
        """Per-sample losses (user losses override this)."""
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred)")

    @property
    def user_defined(self):
        """True for a user's loss: ``call`` written with ``fastnn.ops``, differentiated on a
        tape (targets reach it as given). Built-in losses use Ops kernels or, without one,
        their per-sample function's value and gradient."""
        return type(self).call is not Loss.call

    def _extra(self):
        return {}

    from_logits = False

    def _scale(self, n, sample_weight):
        """What the weighted sum of per-sample losses is multiplied by under the reduction
        ("none" trains as the default, "sum_over_batch_size")."""
        if self.reduction == "sum":
            return 1.0
        if self.reduction == "mean_with_sample_weight" and sample_weight is not None:
            total = float(sample_weight.sum())
            return 1.0 / total if total else 0.0
        return 1.0 / n

    def value_and_grad(self, ops, pred, targets, grad_out=None, sample_weight=None,
                       on_logits=False, probs_out=None):
        """The reduced loss over the batch; fills ``grad_out`` with its gradient.

        ``on_logits``: ``pred`` holds logits (``from_logits=True``, or a fused
        softmax/sigmoid head); ``probs_out`` then receives the probabilities.
        """
        if self.user_defined:
            return custom_loss.value_and_grad(self, ops, pred, targets, grad_out, sample_weight)
        scale = self._scale(pred.shape[0], sample_weight)
        if self.ops_method is None:
            return self._host_value_and_grad(ops, pred, targets, grad_out, sample_weight, scale)
        if on_logits or self.from_logits:
            if probs_out is None:
                probs_out = ops.xp.empty_like(pred)
            total = getattr(ops, self.logits_method)(pred, targets, probs_out, grad_out,
                                                     sample_weight, scale, **self._extra())
        else:
            total = getattr(ops, self.ops_method)(pred, targets, grad_out, sample_weight,
                                                  scale, **self._extra())
        return total * scale

    def _host_value_and_grad(self, ops, pred, targets, grad_out, sample_weight, scale):
        """A loss without a fused kernel: its (values, gradient) pair from
        ``fastnn.loss_functions.VALUE_AND_GRAD``, computed on the host."""
        p = ops.to_numpy(pred)
        t = ops.to_numpy(targets).astype(p.dtype, copy=False).reshape(p.shape)
        values, grad = loss_functions.VALUE_AND_GRAD[self.name_of_function](t, p)
        w = None if sample_weight is None else ops.to_numpy(sample_weight).reshape(-1)
        if grad_out is not None:
            factor = scale if w is None else scale * w[:, None]
            grad_out[...] = ops.asarray((grad * factor).astype(p.dtype, copy=False))
        return float((values if w is None else values * w).sum()) * scale

    def _function_kwargs(self):
        return {}

    def __call__(self, y_true, y_pred, sample_weight=None):
        """Per-sample values (``fastnn.loss_functions``, or a user's ``call``) reduced as
        ``reduction`` says."""
        ops = get_ops()
        if self.user_defined:
            return self._call_user(ops, y_true, y_pred, sample_weight)
        y_true, y_pred = ops.to_numpy(ops.asarray(y_true)), ops.to_numpy(ops.asarray(y_pred))
        values = type(self).function(y_true, y_pred, **self._function_kwargs())
        w = None
        if sample_weight is not None:
            w = numpy.asarray(sample_weight, dtype=values.dtype).reshape(-1)
            if w.shape[0] != values.shape[0]:
                raise ValueError(f"sample_weight has {w.shape[0]} entries for "
                                 f"{values.shape[0]} samples")
            values = values * w
        if self.reduction == "none":
            return values
        return float(values.sum(dtype="float64")) * self._scale(max(values.shape[0], 1), w)

    def _call_user(self, ops, y_true, y_pred, sample_weight):
        """A user's loss called directly: its ``call`` values, weighted and reduced."""
        pred = ops.asarray(y_pred)
        if not numpy.issubdtype(pred.dtype, numpy.floating):
            pred = pred.astype("float32")
        targets = ops.asarray(y_true)
        w = None if sample_weight is None else ops.asarray(sample_weight, dtype=pred.dtype)
        if self.reduction == "none":
            values, _ = custom_loss.weighted_values(
                self, *custom_loss.same_rank(targets.astype(pred.dtype), pred), w)
            return ops.to_numpy(ops.asarray(values))
        return self.value_and_grad(ops, pred, targets, sample_weight=w)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


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
        from .saving import registered_function
        config = dict(config)
        return cls(registered_function(config.pop("fn", None), "loss"), **config)


def _register(*aliases):
    def decorate(cls):
        _registry.register(cls.__name__, snake_case(cls.__name__), *aliases)(cls)
        return cls
    return decorate


class _CrossEntropy(Loss):
    def __init__(self, from_logits=False, label_smoothing=0.0, name=None,
                 reduction="sum_over_batch_size"):
        super().__init__(name, reduction)
        if not 0 <= label_smoothing <= 1:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)

    def _extra(self):
        return {"label_smoothing": self.label_smoothing}

    def _function_kwargs(self):
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing}

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


@_register()
class CategoricalCrossentropy(_CrossEntropy):
    """-sum(y * log p) with one-hot (or soft) targets."""

    ops_method = "crossentropy_loss"
    logits_method = "softmax_cross_entropy"
    fuses_with = ("softmax",)
    function = staticmethod(loss_functions.categorical_crossentropy)


@_register()
class SparseCategoricalCrossentropy(_CrossEntropy):
    """Cross-entropy with integer class targets."""

    ops_method = "crossentropy_loss"
    logits_method = "softmax_cross_entropy"
    fuses_with = ("softmax",)
    sparse_targets = True
    function = staticmethod(loss_functions.sparse_categorical_crossentropy)

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size"):
        super().__init__(from_logits=from_logits, name=name, reduction=reduction)

    def _extra(self):
        return {}

    def _function_kwargs(self):
        return {"from_logits": self.from_logits}

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "from_logits": self.from_logits}


@_register()
class BinaryCrossentropy(_CrossEntropy):
    """-(y log p + (1 - y) log(1 - p)), averaged over the output columns."""

    ops_method = "binary_crossentropy_loss"
    logits_method = "sigmoid_cross_entropy"
    fuses_with = ("sigmoid",)
    function = staticmethod(loss_functions.binary_crossentropy)


class _Pointwise(Loss):
    pass


@_register("mse")
class MeanSquaredError(_Pointwise):
    ops_method = "mean_squared_error_loss"
    function = staticmethod(loss_functions.mean_squared_error)


@_register("mae")
class MeanAbsoluteError(_Pointwise):
    ops_method = "mean_absolute_error_loss"
    function = staticmethod(loss_functions.mean_absolute_error)


@_register()
class Huber(_Pointwise):
    """0.5 d^2 where |d| <= delta, else delta * (|d| - delta / 2)."""

    ops_method = "huber_loss"
    function = staticmethod(loss_functions.huber)

    def __init__(self, delta=1.0, name="huber_loss", reduction="sum_over_batch_size"):
        super().__init__(name, reduction)
        if not delta > 0:
            raise ValueError(f"Huber delta must be > 0, got {delta!r}")
        self.delta = float(delta)

    def _extra(self):
        return {"delta": self.delta}

    def _function_kwargs(self):
        return {"delta": self.delta}

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


@_register()
class Hinge(_Pointwise):
    """max(0, 1 - y * s) with labels in {-1, 1} (0/1 labels are mapped to -1/1)."""

    ops_method = "hinge_loss"
    function = staticmethod(loss_functions.hinge)


@_register()
class CategoricalHinge(_Pointwise):
    """Multi-class SVM: max(0, 1 + max_{j != y} s_j - s_y)."""

    ops_method = "categorical_hinge_loss"
    function = staticmethod(loss_functions.categorical_hinge)


class _HostLoss(_Pointwise):
    """A loss computed from ``fastnn.loss_functions``' (values, gradient) pair."""

    name_of_function = None

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        super().__init__(name or self.name_of_function, reduction)


def _host_loss(class_name, function_name, doc, *aliases):
    cls = type(class_name, (_HostLoss,), {
        "__doc__": doc, "name_of_function": function_name,
        "function": staticmethod(getattr(loss_functions, function_name))})
    cls.__module__ = __name__
    _register(*aliases)(cls)
    return cls


MeanAbsolutePercentageError = _host_loss(
    "MeanAbsolutePercentageError", "mean_absolute_percentage_error",
    "100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7)).", "mape")
MeanSquaredLogarithmicError = _host_loss(
    "MeanSquaredLogarithmicError", "mean_squared_logarithmic_error",
    "mean((log(1 + y_pred) - log(1 + y_true)) ** 2).", "msle")
SquaredHinge = _host_loss("SquaredHinge", "squared_hinge",
                          "mean(max(0, 1 - y * s) ** 2), 0/1 labels mapped to -1/1.")
LogCosh = _host_loss("LogCosh", "log_cosh", "mean(log(cosh(y_pred - y_true))).", "logcosh")
KLDivergence = _host_loss("KLDivergence", "kl_divergence",
                          "sum(y_true * log(y_true / y_pred)), both clipped to [1e-7, 1].",
                          "kld", "kullback_leibler_divergence")
Poisson = _host_loss("Poisson", "poisson", "mean(y_pred - y_true * log(y_pred + 1e-7)).")
CosineSimilarity = _host_loss("CosineSimilarity", "cosine_similarity",
                              "-cos(y_true, y_pred) over the last axis (-1 when aligned).")


def get(identifier):
    """Resolve a name, a Loss, a loss function ``fn(y_true, y_pred)`` or a
    ``{"class_name", "config"}`` dict (user classes by their ``"registered_name"``)."""
    if isinstance(identifier, dict) and "registered_name" in identifier:
        from .saving import registered_class
        cls = registered_class(identifier["registered_name"], Loss, "loss")
        return cls.from_config(dict(identifier.get("config", {})))
    if isinstance(identifier, dict) and identifier.get("class_name") == "LossFunctionWrapper":
        return LossFunctionWrapper.from_config(dict(identifier.get("config", {})))
    if callable(identifier) and identifier in _FUNCTION_CLASSES:
        return _FUNCTION_CLASSES[identifier]()
    if callable(identifier) and not isinstance(identifier, (Loss, type)):
        return LossFunctionWrapper(identifier)
    return _registry.resolve(identifier, Loss)


def serialize(loss):
    """``{"class_name", "config"}`` of ``loss`` (plus ``"registered_name"`` for a
    registered user class)."""
    from .saving import with_registered_name
    return with_registered_name(loss, _serialize(loss))


# Keras' per-sample functions (one value per sample). ``compile(loss=...)`` also takes them.
from .loss_functions import (binary_crossentropy, categorical_crossentropy,  # noqa: E402, F401
                             categorical_hinge, cosine_similarity, hinge, huber,
                             kl_divergence, log_cosh, mae, mape, mean_absolute_error,
                             mean_absolute_percentage_error, mean_squared_error,
                             mean_squared_logarithmic_error, mse, msle, poisson,
                             sparse_categorical_crossentropy, squared_hinge)


_FUNCTION_CLASSES = {
    mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError,
    huber: Huber, hinge: Hinge, categorical_hinge: CategoricalHinge,
    binary_crossentropy: BinaryCrossentropy, categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    mean_absolute_percentage_error: MeanAbsolutePercentageError,
    mean_squared_logarithmic_error: MeanSquaredLogarithmicError, squared_hinge: SquaredHinge,
    log_cosh: LogCosh, kl_divergence: KLDivergence, poisson: Poisson,
    cosine_similarity: CosineSimilarity}
