"""fastnn: a CPU-first neural-network toolkit with a Keras-like API.

Hot math runs in Cython/OpenMP kernels and BLAS (the "cpu" backend, default);
``fastnn.set_backend("numpy")`` switches to the plain-NumPy reference and
``"cupy"`` to the GPU.
"""
from . import activations, backend, callbacks, constraints, initializers, layers, losses
from . import metrics, models, optimizers, regularizers, utils
from . import ops, random, saving
from . import wrappers  # imports no scikit-learn until an estimator is used
from .backend import get_backend, get_num_threads, set_backend, set_num_threads
from .layers import Input
from .models import Model, Sequential

__version__ = "0.1.0"

__all__ = ["Model", "Sequential", "Input", "activations", "backend", "callbacks",
           "constraints", "initializers", "layers", "losses", "metrics", "models", "ops",
           "optimizers", "random", "regularizers", "saving", "utils", "wrappers",
           "set_backend", "get_backend", "set_num_threads", "get_num_threads", "__version__"]
