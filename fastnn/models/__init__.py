"""Models: Sequential, its training loop, and (de)serialisation."""
from .cloning import clone_model, model_from_json
from .model import Model
from .sequential import Sequential
from .saving import InvalidModelFileError, load_model
from .training import ModelNotCompiledError

__all__ = ["Model", "Sequential", "ModelNotCompiledError", "load_model", "InvalidModelFileError",
           "clone_model", "model_from_json"]
