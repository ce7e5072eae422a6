"""``fastnn.ops`` against real ``keras.ops`` (JAX backend): the same signatures, and the
same values on the same inputs."""
import inspect
import os

import numpy as np
import pytest

from fastnn import ops
from fastnn.backend import use_backend

os.environ["KERAS_BACKEND"] = "jax"
keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":  # pragma: no cover - keras imported earlier elsewhere
    pytest.skip("keras was imported with another backend", allow_module_level=True)

PUBLIC = sorted(name for name in ops.__all__ if callable(getattr(ops, name))
                and name not in ("Tape", "Tensor", "Variable", "value_and_grad", "get_item"))


def test_every_function_is_a_keras_op_with_its_signature():
    for name in PUBLIC:
        theirs = getattr(keras.ops, name, None)
        assert theirs is not None, f"keras.ops has no {name}"
        assert inspect.signature(getattr(ops, name)) == inspect.signature(theirs), name


RNG = np.random.default_rng(0)
A = RNG.normal(size=(3, 4)).astype("float32")
B = RNG.normal(size=(1, 4)).astype("float32")
POS = np.abs(A) + 0.5
M = RNG.normal(size=(4, 2)).astype("float32")
IDS = np.array([0, 2, 1])

CASES = {
    "add": (A, B), "subtract": (A, B), "multiply": (A, B), "divide": (A, POS),
    "true_divide": (A, POS), "power": (POS, B), "maximum": (A, B), "minimum": (A, B),
    "mod": (POS, 0.7), "floor_divide": (POS, 0.7),
    "exp": (A,), "expm1": (A,), "log": (POS,), "log1p": (POS,), "log2": (POS,),
    "log10": (POS,), "sqrt": (POS,), "square": (A,), "abs": (A,), "absolute": (A,),
    "sign": (A,), "negative": (A,), "reciprocal": (POS,), "sin": (A,), "cos": (A,),
    "tanh": (A,), "floor": (A,), "ceil": (A,), "round": (A,), "erf": (A,),
    "clip": (A, -0.5, 0.5), "where": (A > 0, A, B),
    "equal": (A, A[:, :1]), "not_equal": (A, A[:, :1]), "less": (A, B),
    "less_equal": (A, B), "greater": (A, B), "greater_equal": (A, B),
    "logical_and": (A > 0, B > 0), "logical_or": (A > 0, B > 0), "logical_not": (A > 0,),
    "logical_xor": (A > 0, B > 0), "isnan": (A,), "isinf": (A,), "isfinite": (A,),
    "sum": (A, 1), "mean": (A, 0), "max": (A, -1), "min": (A,), "prod": (POS, 1),
    "logsumexp": (A, 1), "argmax": (A, 1), "argmin": (A, 0), "std": (A, 1), "var": (A,),
    "any": (A > 1,), "all": (A > -3,), "cumsum": (A, 1), "count_nonzero": (A > 0,),
    "matmul": (A, M), "dot": (A, M), "tensordot": (A, M, 1), "outer": (A[0], M[:, 0]),
    "relu": (A,), "relu6": (A * 5,), "sigmoid": (A,), "softplus": (A,), "softsign": (A,),
    "silu": (A,), "swish": (A,), "leaky_relu": (A,), "elu": (A,), "selu": (A,),
    "gelu": (A,), "hard_sigmoid": (A * 3,), "hard_silu": (A * 3,), "log_sigmoid": (A,),
    "softmax": (A,), "log_softmax": (A, 0), "one_hot": (IDS, 3), "normalize": (A,),
    "binary_crossentropy": (A > 0, 1 / (1 + np.exp(-A))),
    "categorical_crossentropy": (np.eye(4, dtype="float32")[[0, 1, 3]], np.exp(A)),
    "sparse_categorical_crossentropy": (IDS, A, True),
    "reshape": (A, (2, 6)), "transpose": (A,), "expand_dims": (A, 1), "squeeze": (B,),
    "concatenate": ([A, B],), "stack": ([A, A],), "take": (A, IDS, 1),
    "take_along_axis": (A, IDS[:, None], 1), "slice": (A, (1, 1), (2, 2)),
    "broadcast_to": (B, (3, 4)), "ravel": (A,), "split": (A, 2, 1), "swapaxes": (A, 0, 1),
    "moveaxis": (A, 0, 1), "tile": (B, (2, 1)), "cast": (A, "int32"),
    "convert_to_tensor": (A,), "convert_to_numpy": (A,), "shape": (A,), "ndim": (A,),
    "size": (A,), "zeros": ((2, 3),), "ones": ((2,),), "full": ((2,), 3.0),
    "zeros_like": (A,), "ones_like": (A,), "full_like": (A, 2.0), "eye": (3, 4, 1),
    "identity": (3,), "arange": (1, 7, 2), "stop_gradient": (A,), "dtype": (A,),
}


def test_every_function_has_a_value_case():
    assert set(PUBLIC) <= set(CASES) | {"repeat"}


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_values_match_keras(name, backend):
    args = CASES[name]
    with use_backend(backend):
        ours = getattr(ops, name)(*args)
    theirs = getattr(keras.ops, name)(*args)
    if name == "dtype":
        assert ours == str(theirs)
        return
    if isinstance(theirs, (list, tuple)) and name != "shape":
        assert len(ours) == len(theirs)
        pairs = list(zip(ours, theirs))
    else:
        pairs = [(ours, theirs)]
    for a, b in pairs:
        a = np.asarray(a)
        b = np.asarray(b)
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a.astype("float64"), b.astype("float64"), rtol=2e-5,
                                   atol=2e-6, err_msg=name)
