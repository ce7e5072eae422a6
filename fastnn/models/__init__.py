"""Models: Sequential, its training loop, and (de)serialisation."""
from .sequential import Sequential
from .training import ModelNotCompiledError

__all__ = ["Sequential", "ModelNotCompiledError"]
