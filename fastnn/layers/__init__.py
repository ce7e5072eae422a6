"""Layers: each builds its weights from an input shape and runs forward/backward through Ops."""
from .base import Layer, Weight, layer_registry
from .core import Activation, Dense, Flatten, Input, InputLayer
from .normalization import BatchNormalization, LayerNormalization
from .regularization import Dropout


def get(identifier):
    """A layer class by name (only fastnn's own registry: configs never import modules)."""
    return layer_registry.get(identifier)


__all__ = ["Layer", "Weight", "Input", "InputLayer", "Dense", "Activation", "Flatten",
           "Dropout", "BatchNormalization", "LayerNormalization", "get"]
