"""Activations against Keras: values, layer use by string, serialization, arguments."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

import fastnn  # noqa: E402
from compat_marks import assert_close, cases  # noqa: E402

X = np.linspace(-3.7, 3.3, 24, dtype="float32").reshape(4, 6)  # no exact kinks

NAMES = ["linear", "relu", "sigmoid", "tanh", "softplus", "softsign", "selu", "elu", "gelu",
         "silu", "swish", "softmax", "log_softmax", "relu6", "hard_sigmoid", "hard_silu",
         "hard_swish", "exponential", "mish", "leaky_relu"]
MISSING = {}


@pytest.mark.parametrize("name", cases(NAMES, MISSING))
def test_function_values(name):
    want = getattr(keras.activations, name)(X)
    got = getattr(fastnn.activations, name)(X)
    assert np.asarray(got).dtype == np.float32
    assert_close(got, want)


@pytest.mark.parametrize("name", cases(NAMES, MISSING))
def test_name_in_activation_layer(name):
    want = keras.layers.Activation(name)(X)
    got = fastnn.layers.Activation(name)(X)
    assert_close(got, want)


@pytest.mark.parametrize("name", cases(NAMES, MISSING))
def test_dense_activation_string(name):
    kernel = np.linspace(-1, 1, 18, dtype="float32").reshape(6, 3)
    bias = np.array([0.1, -0.2, 0.3], "float32")
    k = keras.layers.Dense(3, activation=name)
    k.build((None, 6))
    k.set_weights([kernel, bias])
    f = fastnn.layers.Dense(3, activation=name)
    f.build((6,))
    f.set_weights([kernel, bias])
    assert_close(f(X), k(X))


@pytest.mark.parametrize("name", cases(NAMES, MISSING))
def test_serialize_get_round_trip(name):
    want = keras.activations.serialize(keras.activations.get(name))
    got = fastnn.activations.serialize(fastnn.activations.get(name))
    assert got == want


RELU_ARGS = [dict(negative_slope=0.1), dict(max_value=2.0), dict(threshold=0.5),
             dict(negative_slope=0.2, max_value=1.5, threshold=0.3), dict(max_value=6.0)]


@pytest.mark.parametrize("kwargs", RELU_ARGS, ids=lambda k: "-".join(k))
def test_relu_arguments(kwargs):
    assert_close(fastnn.activations.relu(X, **kwargs), keras.activations.relu(X, **kwargs))


@pytest.mark.parametrize("call", [
    ("leaky_relu", dict(negative_slope=0.1)), ("elu", dict(alpha=0.5)),
    ("gelu", dict(approximate=True)), ("gelu", dict(approximate=False)),
    ("softmax", dict(axis=-1)), ("log_softmax", dict(axis=-1))],
    ids=lambda c: c[0] + "-" + "-".join(c[1]))
def test_keyword_arguments(call):
    name, kwargs = call
    want = getattr(keras.activations, name)(X, **kwargs)
    got = getattr(fastnn.activations, name)(X, **kwargs)
    assert_close(got, want)


def test_unknown_name_raises_value_error():
    with pytest.raises(ValueError):
        keras.activations.get("relux")
    with pytest.raises(ValueError):
        fastnn.activations.get("relux")


def test_float64_input_keeps_its_dtype():
    x64 = X.astype("float64")
    assert np.asarray(fastnn.activations.relu(x64)).dtype == np.asarray(
        keras.activations.relu(x64)).dtype or keras.config.floatx() == "float32"
