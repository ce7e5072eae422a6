"""``fastnn.saving``: the registry of user classes that model files may name.

Keras semantics: ``@register_keras_serializable(package="Custom", name=None)``
files a class (or function) under ``"package>name"`` (name defaults to the
class name); a saved config names it by that key, and loading resolves the key
in this registry only. Nothing is ever imported from a module named in a file:
a class that was not registered in the loading process is refused.

Example:
    >>> import fastnn
    >>> @fastnn.saving.register_keras_serializable(package="MyLayers")
    ... class Scale(fastnn.layers.Layer):
    ...     def call(self, x):
    ...         return x * 2.0
    >>> fastnn.saving.get_registered_name(Scale)
    'MyLayers>Scale'
"""

import contextlib
import contextvars

_objects = {}   # "package>name" -> class or function
_names = {}     # class or function -> "package>name"
_scoped = contextvars.ContextVar("fastnn_custom_objects", default=None)


def register_keras_serializable(package="Custom", name=None):
    """Decorator: make a layer, loss or metric class (or a loss/metric function) loadable
    from model files under ``"package>name"``."""
    if not isinstance(package, str) or ">" in package:
        raise ValueError(f"package must be a string without '>', got {package!r}")

    def decorate(obj):
        key_name = name if name is not None else getattr(obj, "__name__", None)
        if not isinstance(key_name, str) or not key_name:
            raise ValueError(f"Cannot register {obj!r}: give it a name")
        if isinstance(obj, type) and not hasattr(obj, "get_config"):
            raise ValueError(f"Cannot register {obj.__name__}: it has no get_config() method")
        key = f"{package}>{key_name}"
        _objects[key] = obj
        _names[obj] = key
        return obj
    return decorate


def get_registered_name(obj):
    """The key ``obj`` is registered under, else its ``__name__`` (as Keras)."""
    return _names.get(obj, getattr(obj, "__name__", None))


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The class or function registered under ``name``, found in a ``custom_object_scope``
    (by ``name`` or by the part after ``">"``) or in the given dicts; else None."""
    scoped = _scoped.get()
    for table in (scoped, _objects, custom_objects, module_objects):
        if table and name in table:
            return table[name]
    if scoped and isinstance(name, str) and ">" in name:
        return scoped.get(name.split(">", 1)[1])
    return None


@contextlib.contextmanager
def custom_object_scope(custom_objects):
    """Within the block, the classes and functions of ``custom_objects`` (a dict, keyed by
    registered name or plain name) resolve as if registered (this thread/context only)."""
    merged = dict(_scoped.get() or {})
    merged.update(custom_objects or {})
    token = _scoped.set(merged)
    try:
        yield
    finally:
        _scoped.reset(token)


CustomObjectScope = custom_object_scope


def registered_key(obj):
    """The registry key of ``obj`` (a class or function), or None when not registered."""
    return _names.get(obj)


def with_registered_name(obj, entry):
    """``entry`` (an object's ``{"class_name", "config"}``) plus ``"registered_name"`` when
    the object's class is registered here: how loading finds a user's class again."""
    key = registered_key(type(obj))
    if key is not None:
        entry["registered_name"] = key
    return entry


def registered_class(key, base, kind):
    """The class registered under ``key``, which must subclass ``base``; else a ValueError
    that names the ``kind`` ("loss", "metric") and how to register it."""
    cls = get_registered_object(key)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"Unknown {kind} {key!r}: register it "
                         f"with @fastnn.saving.register_keras_serializable()")
    return cls


def registered_function(key, kind):
    """The function registered under ``key`` (a loss or metric function written by name
    in a config); else a ValueError that says to register it before loading."""
    fn = get_registered_object(key) if isinstance(key, str) else None
    if fn is None or isinstance(fn, type):
        raise ValueError(f"Unknown {kind} function {key!r}: register it with "
                         f"@fastnn.saving.register_keras_serializable() before loading "
                         f"(or load with compile=False)")
    return fn


def get_custom_objects():
    """The registry itself: ``{"package>name": object}``."""
    return _objects


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """``fastnn.models.load_model`` with ``custom_objects`` in scope (Keras' signature;
    fastnn never runs code from files, so ``safe_mode`` is always on)."""
    from .models.saving import load_model as load
    with custom_object_scope(custom_objects):
        return load(filepath, compile=compile)


def save_model(model, filepath, include_optimizer=True):
    """Same as ``model.save(filepath)``."""
    from .models.saving import save_model as save
    save(model, filepath, include_optimizer=include_optimizer)
