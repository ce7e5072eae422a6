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

_objects = {}   # "package>name" -> class or function
_names = {}     # class or function -> "package>name"


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
    """The class or function registered under ``name`` (or found in the given dicts),
    else None."""
    for table in (custom_objects, _objects, module_objects):
        if table and name in table:
            return table[name]
    return None


def registered_key(obj):
    """The registry key of ``obj`` (a class or function), or None when not registered."""
    return _names.get(obj)


def get_custom_objects():
    """The registry itself: ``{"package>name": object}``."""
    return _objects


def load_model(filepath, compile=True):
    """Same as ``fastnn.models.load_model``."""
    from .models.saving import load_model as load
    return load(filepath, compile=compile)


def save_model(model, filepath, include_optimizer=True):
    """Same as ``model.save(filepath)``."""
    from .models.saving import save_model as save
    save(model, filepath, include_optimizer=include_optimizer)
