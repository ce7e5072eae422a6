"""Shared set-up for the pytest-benchmark files in bench/.

Thread count: ``FASTNN_BENCH_THREADS=n`` (default: fastnn's default, all
cores). For a clean 1-thread run also export OMP_NUM_THREADS=1 and
OPENBLAS_NUM_THREADS=1 before starting pytest.
"""
import os
import sys
from pathlib import Path

import pytest

# The benchmark files import the harness modules next to them (_runners, ...).
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session", autouse=True)
def _bench_threads():
    import fastnn
    threads = os.environ.get("FASTNN_BENCH_THREADS")
    if threads:
        fastnn.set_num_threads(int(threads))
    yield


@pytest.fixture
def rate(benchmark):
    """``rate(bytes=..., flops=...)`` after a benchmark: store the GB/s or GFLOP/s
    the median time implies in ``extra_info`` (nothing when benchmarks are disabled)."""
    def record(bytes=None, flops=None, **info):
        benchmark.extra_info.update(info)
        median = _median(benchmark)
        if bytes is not None:
            benchmark.extra_info["bytes"] = int(bytes)
            if median:
                benchmark.extra_info["GB_per_s"] = round(bytes / median / 1e9, 2)
        if flops is not None:
            benchmark.extra_info["flops"] = int(flops)
            if median:
                benchmark.extra_info["GFLOP_per_s"] = round(flops / median / 1e9, 2)
    return record


def _median(benchmark):
    stats = getattr(benchmark, "stats", None)
    try:
        return stats.stats.median
    except AttributeError:
        return None
