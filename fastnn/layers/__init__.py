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
from ..utils.registry import serialize as _serialize


def get(identifier):
    """A layer class by name (only fastnn's own registry: configs never import modules)."""
    return layer_registry.get(identifier)


def deserialize(config):
    """A layer from ``{"class_name": ..., "config": ...}`` (as ``Sequential.get_config`` writes)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"A layer config is a dict with 'class_name' and 'config', "
                         f"got {config!r}")
    if "registered_name" in config:
        from ..saving import registered_class
        cls = registered_class(config["registered_name"], Layer, "custom layer")
        return cls.from_config(dict(config.get("config", {})))
    return get(config["class_name"]).from_config(dict(config.get("config", {})))


def serialize(layer):
    """``{"class_name", "config"}`` of ``layer`` (plus ``"registered_name"`` for a class
    registered with ``fastnn.saving.register_keras_serializable``)."""
    from ..saving import with_registered_name
    return with_registered_name(layer, _serialize(layer))


__all__ = ["Layer", "Weight", "Input", "InputLayer", "Dense", "Activation", "ReLU", "LeakyReLU",
           "PReLU", "ELU", "Softmax", "Lambda", "Maxout", "Flatten", "Dropout", "DropConnect",
           "BatchNormalization", "LayerNormalization", "Normalization", "UnitNormalization",
           "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
           "Identity", "get", "serialize", "deserialize"]
