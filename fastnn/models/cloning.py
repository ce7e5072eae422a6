"""Model configs as plain data and JSON: ``Sequential.from_config``, ``to_json``,
``model_from_json`` and ``clone_model``.

Configs name layers by class; they are resolved only in fastnn's own layer
registry, so a config (or a JSON file) never imports or runs code.
"""
import json

from ..layers import deserialize
from ..layers.core import InputLayer


def sequential_from_config(cls, config):
    """A new ``cls`` (a Sequential) from ``get_config()`` output; built when the config
    holds an input shape (or starts with an InputLayer entry, as Keras writes)."""
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError("A Sequential config is a dict with a 'layers' list")
    layers = [deserialize(entry) for entry in config["layers"]]
    if config.get("input_shape") and not (layers and isinstance(layers[0], InputLayer)):
        layers.insert(0, InputLayer(shape=tuple(config["input_shape"])))
    return cls(layers, name=config.get("name"))


def to_json(model, **kwargs):
    """The model's architecture as a JSON string (``json.dumps`` keyword arguments pass
    through); no weights."""
    return json.dumps({"class_name": type(model).__name__, "config": model.get_config()},
                      **kwargs)


def model_from_json(json_string, custom_objects=None):
    """A new, freshly initialised model from ``to_json`` output."""
    from .sequential import Sequential
    if custom_objects:
        raise ValueError("custom_objects is not supported: configs resolve only fastnn's "
                         "own layers")
    try:
        data = json.loads(json_string)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model_from_json needs a JSON string: {exc}") from None
    if not isinstance(data, dict) or data.get("class_name") != "Sequential":
        raise ValueError("model_from_json reads Sequential models written by to_json")
    return Sequential.from_config(data.get("config"))


def clone_model(model, input_tensors=None, clone_function=None):
    """A new model with the same architecture and freshly initialised weights (Keras'
    ``clone_model``); the original's weights and compile state are not copied."""
    if input_tensors is not None or clone_function is not None:
        raise ValueError("clone_model supports neither input_tensors nor clone_function")
    return type(model).from_config(model.get_config())
