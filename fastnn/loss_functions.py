"""Keras' per-sample loss functions: ``fastnn.losses.mean_squared_error(y_true, y_pred)``
returns one value per sample, as ``keras.losses.mean_squared_error`` does.

These are the values a user inspects or reduces; ``Loss`` objects reduce them
(``reduction=``) when called. Training does not run through here: it uses each
loss's fused value-and-gradient Ops call, and the test suite checks that both
give the same numbers. Predictions are clipped to [1e-7, 1 - 1e-7] inside the
cross-entropies on probabilities, as in Keras.
"""
import numpy

EPSILON = 1e-7


def _pair(y_true, y_pred):
    """Float arrays of matching rank: a 1-D side against (n, 1) is expanded."""
    y_pred = numpy.asarray(y_pred)
    if not numpy.issubdtype(y_pred.dtype, numpy.floating):
        y_pred = y_pred.astype("float32")
    y_true = numpy.asarray(y_true, dtype=y_pred.dtype)
    if y_true.ndim == y_pred.ndim - 1:
        y_true = y_true[..., None]
    elif y_pred.ndim == y_true.ndim - 1:
        y_pred = y_pred[..., None]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has shape "
                         f"{y_pred.shape}")
    return y_true, y_pred


def _log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - numpy.log(numpy.exp(shifted).sum(axis=-1, keepdims=True))


def _clipped_log_probs(p):
    p = p / p.sum(axis=-1, keepdims=True)
    return numpy.log(numpy.clip(p, EPSILON, 1 - EPSILON))


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    return numpy.mean((y_pred - y_true) ** 2, axis=-1)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    return numpy.mean(numpy.abs(y_pred - y_true), axis=-1)


def huber(y_true, y_pred, delta=1.0):
    y_true, y_pred = _pair(y_true, y_pred)
    err = numpy.abs(y_pred - y_true)
    t = y_pred.dtype.type
    return numpy.mean(numpy.where(err <= delta, t(0.5) * err ** 2,
                                  t(delta) * err - t(0.5 * delta * delta)), axis=-1)


def hinge(y_true, y_pred):
    """Labels in {-1, 1}; 0/1 labels are mapped to -1/1 (Keras)."""
    y_true, y_pred = _pair(y_true, y_pred)
    if numpy.isin(y_true, (0, 1)).all():
        y_true = 2 * y_true - 1
    return numpy.mean(numpy.maximum(1 - y_true * y_pred, 0), axis=-1)


def categorical_hinge(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    pos = (y_true * y_pred).sum(axis=-1)
    neg = ((1 - y_true) * y_pred).max(axis=-1)
    return numpy.maximum(neg - pos + 1, 0)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    y_true, y_pred = _pair(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        # -(t log s(z) + (1 - t) log(1 - s(z))) = max(z, 0) - z t + log(1 + exp(-|z|))
        values = (numpy.maximum(y_pred, 0) - y_pred * y_true
                  + numpy.log1p(numpy.exp(-numpy.abs(y_pred))))
    else:
        p = numpy.clip(y_pred, EPSILON, 1 - EPSILON)
        values = -(y_true * numpy.log(p) + (1 - y_true) * numpy.log(1 - p))
    return numpy.mean(values, axis=-1)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    y_true, y_pred = _pair(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1 - label_smoothing) + label_smoothing / y_pred.shape[-1]
    log_p = _log_softmax(y_pred) if from_logits else _clipped_log_probs(y_pred)
    return -(y_true * log_p).sum(axis=-1)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    y_pred = numpy.asarray(y_pred)
    if not numpy.issubdtype(y_pred.dtype, numpy.floating):
        y_pred = y_pred.astype("float32")
    ids = numpy.asarray(y_true).reshape(-1).astype("int64")
    k = y_pred.shape[-1]
    if ids.size and (ids.min() < 0 or ids.max() >= k):
        raise ValueError(f"class ids must lie in [0, {k}), got min {ids.min()}, "
                         f"max {ids.max()}")
    log_p = _log_softmax(y_pred) if from_logits else _clipped_log_probs(y_pred)
    return -log_p[numpy.arange(ids.size), ids]


# ---------------------------------------------------------------- value and gradient
# The losses below have no fused Ops kernel: each is a pair of (per-sample values,
# gradient of those values with respect to y_pred), so one definition serves both the
# per-sample function and training (``Loss.value_and_grad`` on the host).

def _mape(y_true, y_pred):
    denom = numpy.maximum(numpy.abs(y_true), EPSILON)
    k = y_pred.shape[-1]
    values = 100.0 * numpy.mean(numpy.abs((y_true - y_pred) / denom), axis=-1)
    return values, 100.0 / k * numpy.sign(y_pred - y_true) / denom


def _msle(y_true, y_pred):
    k = y_pred.shape[-1]
    p = numpy.maximum(y_pred, EPSILON)
    diff = numpy.log1p(p) - numpy.log1p(numpy.maximum(y_true, EPSILON))
    grad = 2.0 / k * diff / (1 + p) * (y_pred > EPSILON)
    return numpy.mean(diff ** 2, axis=-1), grad


def _hinge_labels(y_true):
    return 2 * y_true - 1 if numpy.isin(y_true, (0, 1)).all() else y_true


def _squared_hinge(y_true, y_pred):
    t = _hinge_labels(y_true)
    margin = numpy.maximum(1 - t * y_pred, 0)
    return numpy.mean(margin ** 2, axis=-1), -2.0 / y_pred.shape[-1] * margin * t


def _log_cosh(y_true, y_pred):
    d = y_pred - y_true
    # log(cosh(d)) = d + softplus(-2 d) - log 2, stable for large |d|
    values = d + numpy.logaddexp(0, -2 * d) - numpy.log(2.0)
    return numpy.mean(values, axis=-1), numpy.tanh(d) / y_pred.shape[-1]


def _kl_divergence(y_true, y_pred):
    t = numpy.clip(y_true, EPSILON, 1)
    p = numpy.clip(y_pred, EPSILON, 1)
    inside = (y_pred > EPSILON) & (y_pred < 1)
    return (t * numpy.log(t / p)).sum(axis=-1), -t / p * inside


def _poisson(y_true, y_pred):
    k = y_pred.shape[-1]
    values = numpy.mean(y_pred - y_true * numpy.log(y_pred + EPSILON), axis=-1)
    return values, (1 - y_true / (y_pred + EPSILON)) / k


def _cosine_similarity(y_true, y_pred):
    t = y_true / numpy.sqrt(numpy.maximum((y_true ** 2).sum(-1, keepdims=True), 1e-12))
    norm = numpy.sqrt(numpy.maximum((y_pred ** 2).sum(-1, keepdims=True), 1e-12))
    p = y_pred / norm
    cos = (t * p).sum(axis=-1, keepdims=True)
    return -cos[..., 0], -(t - cos * p) / norm


VALUE_AND_GRAD = {
    "mean_absolute_percentage_error": _mape, "mean_squared_logarithmic_error": _msle,
    "squared_hinge": _squared_hinge, "log_cosh": _log_cosh, "kl_divergence": _kl_divergence,
    "poisson": _poisson, "cosine_similarity": _cosine_similarity,
}


def _values_only(pair):
    def function(y_true, y_pred):
        return pair(*_pair(y_true, y_pred))[0]
    function.__name__ = pair.__name__.lstrip("_")
    function.__doc__ = f"Keras' per-sample ``{function.__name__}``."
    return function


mean_absolute_percentage_error = _values_only(_mape)
mean_squared_logarithmic_error = _values_only(_msle)
squared_hinge = _values_only(_squared_hinge)
log_cosh = _values_only(_log_cosh)
kl_divergence = _values_only(_kl_divergence)
poisson = _values_only(_poisson)
cosine_similarity = _values_only(_cosine_similarity)

mse = mean_squared_error
mae = mean_absolute_error
mape = mean_absolute_percentage_error
msle = mean_squared_logarithmic_error

__all__ = ["mean_squared_error", "mean_absolute_error", "huber", "hinge", "categorical_hinge",
           "binary_crossentropy", "categorical_crossentropy",
           "sparse_categorical_crossentropy", "mean_absolute_percentage_error",
           "mean_squared_logarithmic_error", "squared_hinge", "log_cosh", "kl_divergence",
           "poisson", "cosine_similarity", "mse", "mae", "mape", "msle"]
