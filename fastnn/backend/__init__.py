"""Backend selection: which Ops does the math.

``set_backend("cpu" | "numpy" | "cupy")`` sets the process-wide default (at
import: the ``FASTNN_BACKEND`` environment variable, else "cpu");
``with use_backend(name):`` overrides it for the current context only. The Ops
instances are created once and cached, so ``get_ops()`` is cheap.

A backend is one ``Ops`` subclass plus one registry entry:
``register_backend(name, factory)``, where ``factory()`` returns the Ops (or
raises ImportError/RuntimeError naming what is missing on this machine).
"""
import contextlib
import contextvars
import os

from .ops import Ops, is_device_array
from .threads import get_num_threads, openmp_enabled, set_num_threads

__all__ = ["Ops", "set_backend", "get_backend", "get_ops", "use_backend", "available_backends",
           "register_backend", "is_device_array", "get_num_threads", "set_num_threads",
           "openmp_enabled"]


def _cpu():
    from .cpu_ops import CpuOps
    return CpuOps()


def _cupy():
    from .cupy_ops import CupyOps  # raises a clear error when cupy or a GPU is missing
    return CupyOps()


_factories = {"cpu": _cpu, "numpy": Ops, "cupy": _cupy}
_instances = {}
_default = os.environ.get("FASTNN_BACKEND", "cpu").lower()
_override = contextvars.ContextVar("fastnn_backend", default=None)


def register_backend(name, factory):
    """Make ``factory()`` (returning an ``Ops``) the backend called ``name``.

    Registering an existing name replaces it (its cached instance is dropped).
    """
    if not isinstance(name, str) or not name or not callable(factory):
        raise ValueError("register_backend needs a non-empty name and a callable factory, "
                         f"got {name!r}, {factory!r}")
    name = name.lower()
    _factories[name] = factory
    _instances.pop(name, None)


def _check_name(name):
    if not isinstance(name, str) or name.lower() not in _factories:
        raise ValueError(f"Unknown backend {name!r}; known backends: {', '.join(_factories)}")
    return name.lower()


def _create(name):
    ops = _factories[name]()
    if not isinstance(ops, Ops):
        raise TypeError(f"backend {name!r}: its factory returned {type(ops).__name__}, "
                        "not an Ops")
    return ops


def get_ops(name=None):
    """The Ops of ``name``, or of the current backend when ``name`` is None."""
    name = _check_name(name) if name is not None else get_backend()
    ops = _instances.get(name)
    if ops is None:
        ops = _instances[name] = _create(name)
    return ops


def get_backend():
    """The name of the backend in force here ("cpu" by default)."""
    return _override.get() or _default


def set_backend(name):
    """Make ``name`` the process-wide backend ("cpu", "numpy" or "cupy")."""
    global _default
    name = _check_name(name)
    get_ops(name)  # fail now, not at the first layer call
    _default = name


@contextlib.contextmanager
def use_backend(name):
    """Use backend ``name`` inside a ``with`` block (this thread/context only)."""
    name = _check_name(name)
    get_ops(name)
    token = _override.set(name)
    try:
        yield get_ops(name)
    finally:
        _override.reset(token)


def available_backends():
    """Names of the backends that can be created on this machine."""
    names = []
    for name in list(_factories):
        try:
            get_ops(name)
        except (ImportError, RuntimeError):
            continue
        names.append(name)
    return names
