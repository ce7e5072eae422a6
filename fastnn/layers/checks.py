"""Hyperparameter checks shared by layers: bad values fail at construction, by name."""
import math

import numpy


def _is_number(value):
    return not isinstance(value, bool) and isinstance(value, (int, float, numpy.integer,
                                                              numpy.floating))


def check_positive_int(what, value):
    """``value`` as an int >= 1, else ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def check_rate(what, rate):
    """A drop rate in [0, 1)."""
    if not _is_number(rate) or not 0 <= rate < 1:
        raise ValueError(f"{what} rate must be a number in [0, 1), got {rate!r}")
    return float(rate)


def check_non_negative(what, value, allow_none=False):
    """A finite number >= 0 (or None when ``allow_none``)."""
    if value is None and allow_none:
        return None
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return float(value)
