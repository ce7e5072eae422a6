"""fastnn's one random stream: initializers, shuffling and dropout seeds draw from it."""
import contextlib
import random as _py_random
import threading

import numpy

_state = {"rng": numpy.random.default_rng()}


def set_random_seed(seed):
    """Seed fastnn (and Python's and NumPy's global generators) so runs repeat exactly."""
    if isinstance(seed, bool) or not isinstance(seed, (int, numpy.integer)) or seed < 0:
        raise ValueError(f"set_random_seed needs a non-negative int, got {seed!r}")
    seed = int(seed)
    _state["rng"] = numpy.random.default_rng(seed)
    _py_random.seed(seed)
    numpy.random.seed(seed % (2 ** 32))


def get_rng(seed=None):
    """A generator: a fresh one for an explicit ``seed``, else the shared stream."""
    if seed is not None:
        return numpy.random.default_rng(seed)
    return _state["rng"]


def new_seed():
    """A 63-bit seed drawn from the shared stream (for counter-based dropout masks)."""
    return int(_state["rng"].integers(0, 2 ** 63 - 1))


_local_lock = threading.RLock()


@contextlib.contextmanager
def local_random_stream(seed):
    """Run a block on its own stream seeded with ``seed``, then put the shared stream back.

    Everything fastnn draws inside the block (initial weights, shuffling,
    dropout seeds) comes from ``numpy.random.default_rng(seed)``, so the block
    repeats exactly, and the shared stream (and NumPy's and Python's global
    generators) are left as they were. Blocks in different threads take turns
    (one lock), because the stream they swap is process-wide.
    """
    with _local_lock:
        saved = _state["rng"]
        _state["rng"] = numpy.random.default_rng(seed)
        try:
            yield _state["rng"]
        finally:
            _state["rng"] = saved
