"""A model as bytes: the ``.fastnn`` file format, for pickles and process pools.

An estimator that joblib, Dask or ``pickle`` ships to another process carries
its model as the bytes of a ``.fastnn`` file rather than a pickled object, so
unpickling the model part goes through ``load_model``'s checks and executes no
code from the data. The file format needs a real file (its reader checks the
declared sizes against the file's), so the bytes pass through a temporary one.
"""
import os
import tempfile

from ..models.saving import load_model, save_model
from ..utils.random import local_random_stream


def model_to_bytes(model):
    """The bytes of ``model.save(...)``: architecture, weights, compile and optimizer state."""
    with tempfile.TemporaryDirectory(prefix="fastnn-") as tmp:
        path = os.path.join(tmp, "model.fastnn")
        save_model(model, path)
        with open(path, "rb") as f:
            return f.read()


def model_from_bytes(data):
    """The model that ``model_to_bytes`` wrote.

    The file's saved random-stream state is restored onto a scratch stream,
    so loading leaves fastnn's shared stream as it was.

    Raises:
        InvalidModelFileError: ``data`` is not a valid fastnn model file.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"model bytes must be bytes, got {type(data).__name__}")
    with tempfile.TemporaryDirectory(prefix="fastnn-") as tmp:
        path = os.path.join(tmp, "model.fastnn")
        with open(path, "wb") as f:
            f.write(data)
        with local_random_stream(None):
            return load_model(path)
