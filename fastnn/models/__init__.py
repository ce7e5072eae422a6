"""Models: Sequential, its training loop, and (de)serialisation."""
from .sequential import Sequential
from .saving import InvalidModelFileError, load_model
from .training import ModelNotCompiledError

__all__ = ["Sequential", "ModelNotCompiledError", "load_model", "InvalidModelFileError"]
