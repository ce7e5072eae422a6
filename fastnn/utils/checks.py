"""Argument checks shared by layers, optimizers and models: bad values fail early, by name."""
import math

import numpy


def is_number(value):
    """A real Python or NumPy number (not a bool)."""
    return not isinstance(value, bool) and isinstance(value, (int, float, numpy.integer,
                                                              numpy.floating))


def check_non_negative_int(what, value):
    """``value`` as an int >= 0, else ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < 0:
        raise ValueError(f"{what} must be an int >= 0, got {value!r}")
    return int(value)


def check_batch_size(batch_size):
    """Keras' ``batch_size``: None means 32."""
    return 32 if batch_size is None else check_positive_int("batch_size", batch_size)


def check_positive_int(what, value):
    """``value`` as an int >= 1, else ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def check_rate(what, rate):
    """A drop rate in [0, 1)."""
    return check_unit_interval(f"{what} rate", rate)


def check_non_negative(what, value, allow_none=False):
    """A finite number >= 0 (or None when ``allow_none``)."""
    if value is None and allow_none:
        return None
    if not is_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_positive(what, value, allow_none=False):
    """A finite number > 0 (or None when ``allow_none``): epsilon, clipping thresholds."""
    if value is None and allow_none:
        return None
    if not is_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a finite number > 0, got {value!r}")
    return float(value)


def check_unit_interval(what, value):
    """A number in [0, 1): momentum, decay rates."""
    if not is_number(value) or not 0 <= value < 1:
        raise ValueError(f"{what} must be in [0, 1), got {value!r}")
    return float(value)


def check_finite_number(what, value):
    """A finite real number (not NaN, not infinite): slopes such as ELU's alpha."""
    if not is_number(value) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


FLOAT_DTYPES = ("float32", "float64")


def check_float_dtype(what, dtype):
    """The name of a supported float dtype ("float32" or "float64")."""
    try:
        name = numpy.dtype(dtype).name
    except TypeError:
        name = None
    if name not in FLOAT_DTYPES:
        raise ValueError(f"{what} must be one of {', '.join(FLOAT_DTYPES)}, got {dtype!r}")
    return name
