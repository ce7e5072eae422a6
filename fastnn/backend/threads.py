"""One thread count for both pools: our OpenMP kernels and the BLAS behind scipy.

``set_num_threads(n)`` stores ``n`` for the kernels (they take it as an
argument, so it holds for every calling thread) and limits BLAS through
threadpoolctl. The default is the number of cores this process may use.
"""
import os

from threadpoolctl import threadpool_limits

_state = {"n": None, "limiter": None}


def _available_cores():
    env = os.environ.get("OMP_NUM_THREADS")
    if env and env.split(",")[0].strip().isdigit():
        return max(1, int(env.split(",")[0]))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def openmp_enabled():
    """True when the compiled kernels were built with OpenMP."""
    from .._kernels._openmp import openmp_enabled as enabled
    return enabled()


def get_num_threads():
    """Threads the kernels and BLAS may use."""
    if _state["n"] is None:
        _state["n"] = _available_cores()
    return _state["n"]


def set_num_threads(n):
    """Use ``n`` threads in the OpenMP kernels and in BLAS (threadpoolctl)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads needs a positive int, got {n!r}")
    _state["n"] = n
    # Load our kernels first so scipy's BLAS is among the libraries threadpoolctl limits.
    from .._kernels import _blas  # noqa: F401
    if _state["limiter"] is not None:
        _state["limiter"].restore_original_limits()
    _state["limiter"] = threadpool_limits(limits=n, user_api="blas")
