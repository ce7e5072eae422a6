"""Layers: each builds its weights from an input shape and runs forward/backward through Ops."""
from .activation import ELU, PReLU, ReLU, LeakyReLU, Softmax
from .base import Layer, Weight, layer_registry
from .core import Activation, Dense, Flatten, Input, InputLayer
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
    return get(config["class_name"]).from_config(dict(config.get("config", {})))


def serialize(layer):
    """``{"class_name", "config"}`` of ``layer``: plain data that ``deserialize`` accepts."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


__all__ = ["Layer", "Weight", "Input", "InputLayer", "Dense", "Activation", "ReLU", "LeakyReLU",
           "PReLU", "ELU", "Softmax", "Maxout", "Flatten", "Dropout", "DropConnect",
           "BatchNormalization", "LayerNormalization", "Normalization", "UnitNormalization",
           "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
           "Identity", "get", "serialize", "deserialize"]
