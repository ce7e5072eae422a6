"""Checks of compile/fit arguments that name the problem before anything changes.

``compile``'s metrics are tried once on a tiny batch of the form the loss and
the output shape imply, so a metric that cannot work (``"mse"`` on sparse
class ids against three outputs) fails at compile or at the start of ``fit``,
not after the optimizer has already stepped.
"""
import copy

import numpy

from .. import metrics as metrics_mod
from ..callbacks import Callback

_VERBOSE = ("auto", 0, 1, 2)


def metric_list(metrics):
    """``compile``'s ``metrics`` as a list (None: none; one name or Metric: a list of it)."""
    if metrics is None:
        return []
    if isinstance(metrics, (str, metrics_mod.Metric, dict)):
        return [metrics]
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list of metric names or Metric objects, got "
                        f"{metrics!r}")
    return list(metrics)


def check_metrics_fit(metrics, loss, output_shape, y_sample=None):
    """Raise ValueError naming the first metric that fails on targets of ``loss``'s form.

    The targets are ``y_sample`` (a few checked rows of the real ones) when given,
    else zeros of the form a built-in loss implies. A user's loss takes targets as
    given, so without ``y_sample`` it cannot be told: returns False (not checked yet);
    True once checked. Each metric is tried on a deep copy, so the compiled metrics
    keep their state.
    """
    if y_sample is not None:
        y_true = numpy.asarray(y_sample)
    elif loss.user_defined:
        return False
    elif loss.sparse_targets:
        y_true = numpy.zeros(2, dtype="int64")
    else:
        y_true = numpy.zeros((2,) + tuple(output_shape), dtype="float32")
    y_pred = numpy.full((len(y_true),) + tuple(output_shape), 1.0 / output_shape[-1],
                        dtype="float32")
    for metric in metrics:
        try:
            probe = copy.deepcopy(metric)
            probe.reset_state()
            probe.update_state(y_true, y_pred, None)
            probe.result()
        except Exception as exc:  # reported with its cause, by name
            raise ValueError(f"Metric {metric.name!r} cannot be computed for loss "
                             f"{type(loss).__name__} on model outputs of shape "
                             f"{tuple(output_shape)} (targets of shape {y_true.shape[1:]} "
                             f"per sample): {type(exc).__name__}: {exc}") from exc
    return True


def check_callbacks(callbacks):
    """``fit``'s ``callbacks`` as a list of objects with the Callback protocol."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of fastnn.callbacks.Callback objects, "
                        f"got {callbacks!r}")
    for i, callback in enumerate(callbacks):
        if not isinstance(callback, Callback) and not all(
                callable(getattr(callback, hook, None))
                for hook in ("set_model", "set_params", "on_train_begin", "on_epoch_end")):
            raise TypeError(f"callbacks[{i}] is not a callback (an instance of a "
                            f"fastnn.callbacks.Callback subclass), got {callback!r}")
    return list(callbacks)


def check_verbose(verbose):
    """Keras' ``verbose``: "auto" (1), 0 (silent), 1 (progress bar) or 2 (one line per epoch)."""
    if isinstance(verbose, str):
        if verbose == "auto":
            return 1
    elif isinstance(verbose, (int, numpy.integer)) and 0 <= verbose <= 2:
        return int(verbose)
    raise ValueError(f"verbose must be one of {', '.join(map(repr, _VERBOSE))}, got {verbose!r}")
