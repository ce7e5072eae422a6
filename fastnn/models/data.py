"""Checking and converting user data before it touches a model.

Every check runs before anything is changed, so bad input raises a clear
ValueError/TypeError and leaves the model as it was.
"""
import numpy


def _as_numeric_array(value, what):
    try:
        arr = numpy.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} could not be read as an array: {exc}") from None
    if arr.dtype == object or numpy.issubdtype(arr.dtype, numpy.complexfloating) or not (
            numpy.issubdtype(arr.dtype, numpy.number) or arr.dtype == numpy.bool_):
        raise TypeError(f"{what} must hold real numbers, got dtype {arr.dtype}")
    return arr


def cast(arr, dtype):
    """``arr`` as a C-contiguous ``dtype`` array; values beyond its range become inf
    (silently: the NaN/inf check that follows every cast reports them)."""
    with numpy.errstate(over="ignore", invalid="ignore"):
        return numpy.ascontiguousarray(arr, dtype=dtype)


def check_finite(arr, what="x"):
    """Raise ValueError naming how many NaN/inf entries a float array holds."""
    if numpy.issubdtype(arr.dtype, numpy.floating) and not numpy.isfinite(arr).all():
        bad = int(arr.size - numpy.count_nonzero(numpy.isfinite(arr)))
        raise ValueError(f"{what} contains {bad} NaN or infinite value(s)")


def check_x(x, input_shape, dtype="float32", what="x", scan_finite=True):
    """Return ``x`` as a C-contiguous float array of shape (n, *input_shape).

    ``scan_finite=False`` leaves the NaN/inf scan to a caller whose kernel does it.
    """
    if (type(x) is numpy.ndarray and x.dtype == dtype and x.flags.c_contiguous
            and x.shape[1:] == input_shape and x.ndim > 1):
        # Already in the model's form (the serving hot path): only the NaN/inf check.
        if scan_finite:
            check_finite(x, what)
        return x
    arr = _as_numeric_array(x, what)
    if arr.ndim < 2:
        hint = " (one sample? use x.reshape(1, -1))" if arr.ndim == 1 else ""
        raise ValueError(f"{what} must have shape (n_samples, {_dims(input_shape)}), "
                         f"got shape {arr.shape}{hint}")
    if input_shape is not None and tuple(arr.shape[1:]) != tuple(input_shape):
        if len(input_shape) == 1 and arr.ndim == 2:
            raise ValueError(f"{what} has {arr.shape[1]} features per sample but the model "
                             f"expects {input_shape[0]}")
        raise ValueError(f"{what} has sample shape {tuple(arr.shape[1:])} but the model "
                         f"expects {tuple(input_shape)}")
    arr = cast(arr, dtype)  # checked after the cast: float64 beyond float32 becomes inf
    if scan_finite:
        check_finite(arr, what)
    return arr


def _dims(shape):
    return ", ".join(str(d) for d in shape) if shape else "n_features"


def check_lengths(x, y, what="y"):
    if y is not None and len(y) != len(x):
        raise ValueError(f"x and {what} have different lengths: {len(x)} and {len(y)} samples")


def check_targets(y, loss, output_shape, dtype="float32", what="y"):
    """Return targets in the form ``loss`` expects, after checking them.

    Sparse losses get int64 class ids (n,) in [0, classes); the others get a
    float array (n, *output_shape) (a 1-D y is taken as one column).
    """
    arr = _as_numeric_array(y, what)
    check_finite(arr, what)
    width = output_shape[-1]
    if loss.sparse_targets and not loss.user_defined:
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(f"{what} for {type(loss).__name__} must be integer class ids of "
                             f"shape (n,), got shape {arr.shape}; for one-hot targets use "
                             f"categorical_crossentropy")
        if not numpy.issubdtype(arr.dtype, numpy.integer):
            if not numpy.array_equal(arr, numpy.round(arr)):
                raise ValueError(f"{what} for {type(loss).__name__} must be integer class ids")
        if arr.size and (arr.min() < 0 or arr.max() >= width):
            raise ValueError(f"{what} holds labels outside [0, {width}): min {arr.min()}, "
                             f"max {arr.max()} for a model with {width} outputs")
        return numpy.ascontiguousarray(arr, dtype="int64")
    if not loss.user_defined:  # a user's loss takes the targets as given
        if arr.ndim == 1:
            arr = arr[:, None]
        _check_target_shape(arr, loss, output_shape, what)
    arr = cast(arr, dtype)
    check_finite(arr, what)  # again after the cast: float64 beyond float32 is inf now
    return arr


def _check_target_shape(arr, loss, output_shape, what):
    if tuple(arr.shape[1:]) != tuple(output_shape):
        one_hot = type(loss).__name__ in ("CategoricalCrossentropy", "CategoricalHinge")
        hint = (" (integer labels? use sparse_categorical_crossentropy or "
                "fastnn.utils.to_categorical)" if one_hot and arr.shape[1:] == (1,) else "")
        raise ValueError(f"{what} has shape {arr.shape[1:]} per sample but the model outputs "
                         f"{tuple(output_shape)}{hint}")


def check_sample_weight(sample_weight, n, what="sample_weight"):
    if sample_weight is None:
        return None
    arr = _as_numeric_array(sample_weight, what).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{what} has {arr.shape[0]} entries for {n} samples")
    arr = cast(arr, "float32")
    check_finite(arr, what)
    if (arr < 0).any():
        raise ValueError(f"{what} must be >= 0")
    return arr


def class_weight_to_sample_weight(class_weight, y_sparse_or_onehot, n_classes):
    """Per-sample weights from ``{class_id: weight}`` (Keras' ``class_weight``)."""
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be a dict {{class: weight}}, got {class_weight!r}")
    table = numpy.ones(max(n_classes, 2), dtype="float32")
    for cls, weight in class_weight.items():
        if not 0 <= int(cls) < table.shape[0]:
            raise ValueError(f"class_weight names class {cls}, outside [0, {table.shape[0]})")
        if not numpy.isfinite(cast(weight, "float32")) or weight < 0:
            raise ValueError(f"class_weight[{cls}] must be a finite number >= 0")
        table[int(cls)] = weight
    y = y_sparse_or_onehot
    if y.ndim == 2 and y.shape[1] > 1:
        ids = y.argmax(axis=1)
    else:
        ids = numpy.round(y.reshape(-1)).astype("int64")
    if ids.size and (ids.min() < 0 or ids.max() >= table.shape[0]):
        raise ValueError(f"class_weight needs class ids in [0, {table.shape[0]}); y holds "
                         f"{ids.min()}..{ids.max()}")
    return table[ids]
