"""Layers: each builds its weights from an input shape and runs forward/backward through Ops."""
from .activation import ELU, PReLU, ReLU, LeakyReLU, Softmax
from .base import Layer, Weight, layer_registry
from .core import Activation, Dense, Flatten, Input, InputLayer
from .lambda_layer import Lambda
from .maxout import Maxout
from .noise import AlphaDropout, GaussianDropout, GaussianNoise
from .normalization import BatchNormalization, LayerNormalization
from .preprocessing import Normalization
from .regularization import DropConnect, Dropout
from .utility import ActivityRegularization, Identity, UnitNormalization


def get(identifier):
    """A layer class by name (only fastnn's own registry: configs never import modules)."""
    return layer_registry.get(identifier)


def deserialize(config):
    """A layer from ``{"class_name": ..., "config": ...}`` (as ``Sequential.get_config`` writes)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"A layer config is a dict with 'class_name' and 'config', "
                         f"got {config!r}")
    if "registered_name" in config:
        from ..saving import get_registered_object
        cls = get_registered_object(config["registered_name"])
        if not (isinstance(cls, type) and issubclass(cls, Layer)):
            raise ValueError(f"Unknown custom layer {config['registered_name']!r}: register "
                             f"it with @fastnn.saving.register_keras_serializable()")
        return cls.from_config(dict(config.get("config", {})))
    return get(config["class_name"]).from_config(dict(config.get("config", {})))


def serialize(layer):
    """``{"class_name", "config"}`` of ``layer`` (plus ``"registered_name"`` for a class
    registered with ``fastnn.saving.register_keras_serializable``)."""
    from ..saving import registered_key
    entry = {"class_name": type(layer).__name__, "config": layer.get_config()}
    key = registered_key(type(layer))
    if key is not None:
        entry["registered_name"] = key
    return entry


__all__ = ["Layer", "Weight", "Input", "InputLayer", "Dense", "Activation", "ReLU", "LeakyReLU",
           "PReLU", "ELU", "Softmax", "Lambda", "Maxout", "Flatten", "Dropout", "DropConnect",
           "BatchNormalization", "LayerNormalization", "Normalization", "UnitNormalization",
           "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
           "Identity", "get", "serialize", "deserialize"]
