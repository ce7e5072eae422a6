"""Watching one logged quantity for improvement: shared by EarlyStopping,
ModelCheckpoint and ReduceLROnPlateau."""
import math
import numbers
import warnings

MODES = ("auto", "min", "max")


def check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def resolve_direction(mode, monitor, model):
    """"min" or "max" for ``monitor``.

    ``mode="auto"`` follows Keras 3: a loss is minimised; a compiled metric of
    that name (with or without "val_") says its own direction; failing that,
    names containing "acc" are maximised (Keras 2's rule). Anything else is an
    error asking for an explicit mode.
    """
    if mode != "auto":
        return mode
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name == "loss" or name.endswith("_loss"):
        return "min"
    for metric in getattr(model, "compiled_metrics", None) or []:
        if metric.name == name and getattr(metric, "direction", None) in ("up", "down"):
            return "max" if metric.direction == "up" else "min"
    if "acc" in name:
        return "max"
    raise ValueError(f"Cannot tell whether monitor={monitor!r} should be minimised or "
                     f"maximised: pass mode='min' or mode='max'")


def monitored_value(logs, monitor, owner):
    """The scalar ``logs[monitor]``, or None (with a warning naming what is logged)."""
    logs = logs or {}
    value = logs.get(monitor)
    if value is None:
        warnings.warn(f"{owner} is conditioned on {monitor!r}, which is not in the logs. "
                      f"Available: {', '.join(logs)}", stacklevel=3)
        return None
    if not isinstance(value, numbers.Real):
        warnings.warn(f"{owner} needs a single number for {monitor!r}, got {value!r}",
                      stacklevel=3)
        return None
    return float(value)


def is_improvement(direction, current, reference, min_delta=0.0):
    """``current`` beats ``reference`` by more than ``min_delta`` (None: anything beats it)."""
    if reference is None:
        return not math.isnan(current)
    if direction == "min":
        return current + min_delta < reference
    return current - min_delta > reference


def check_non_negative(name, value, integer=False):
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value >= 0:
        kind = "an int" if integer else "a number"
        raise ValueError(f"{name} must be {kind} >= 0, got {value!r}")
    return value
