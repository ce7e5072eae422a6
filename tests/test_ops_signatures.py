"""Every backend class offers exactly the base ``Ops`` signatures (thinc's test_ops_consistency).

Layers call ``get_ops().method(...)`` with positional and keyword arguments, so
an override that renames, reorders or re-defaults a parameter would behave
differently per backend. Backends that cannot be imported here are skipped.
"""
import importlib
import inspect

import pytest

from fastnn.backend.ops import Ops

BACKEND_CLASSES = [("fastnn.backend.cpu_ops", "CpuOps"), ("fastnn.backend.cupy_ops", "CupyOps")]


def _public_methods(cls):
    return {name: member for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")}


@pytest.mark.parametrize("module,name", BACKEND_CLASSES, ids=[n for _, n in BACKEND_CLASSES])
def test_signatures_match_ops(module, name):
    try:
        cls = getattr(importlib.import_module(module), name)
    except ImportError as err:
        pytest.skip(f"{module} cannot be imported here: {err}")
    assert issubclass(cls, Ops)
    base = _public_methods(Ops)
    extra = sorted(set(_public_methods(cls)) - set(base))
    assert not extra, f"{name} has public methods that Ops lacks: {extra}"
    for method, func in _public_methods(cls).items():
        assert inspect.signature(func) == inspect.signature(base[method]), (
            f"{name}.{method}{inspect.signature(func)} differs from "
            f"Ops.{method}{inspect.signature(base[method])}")
