"""Differential tests against real Keras 3 (the oracle for every name fastnn shares with it).

Keras runs on its JAX backend on the CPU; the tests skip when Keras is not installed
(``pip install "fastnn-toolkit[compat]"``); with ``FASTNN_REQUIRE_KERAS=1`` a missing
Keras fails the run instead. Each test runs one small program on both
libraries and compares what a user sees: shapes, dtypes, return types, values from
fixed weights, logs keys, the order of callback hooks and the errors raised.
"""
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # compat_marks

if os.environ.get("FASTNN_REQUIRE_KERAS"):
    # CI sets this: without Keras the run fails here instead of skipping every test.
    import keras  # noqa: F401, E402
