"""fastnn: a CPU-first neural-network toolkit with a Keras-like API."""
from .backend import get_num_threads, set_backend, get_backend, set_num_threads

__version__ = "0.1.0"
