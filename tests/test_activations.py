"""Activations: Keras names, values against NumPy formulas on both CPU backends, configs."""
import json
import math

import numpy as np
import pytest
from scipy.special import erf

from fastnn import activations, layers
from fastnn.backend import use_backend

X = np.linspace(-4, 4, 41).reshape(-1, 1) * np.ones((1, 3))  # includes exact 0
X += np.arange(3) * 0.013  # distinct columns
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


REFERENCE = {
    "linear": lambda x: x,
    "step": lambda x: (x >= 0).astype(float),
    "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)),
    "sigmoid": sigmoid,
    "tanh": np.tanh,
    "softplus": lambda x: np.log1p(np.exp(x)),
    "gelu": lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2))),
    "silu": lambda x: x * sigmoid(x),
    "swish": lambda x: x * sigmoid(x),
    "softmax": softmax,
    "relu6": lambda x: np.clip(x, 0, 6),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "hard_silu": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    "hard_swish": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    "exponential": np.exp,
    "mish": lambda x: x * np.tanh(np.log1p(np.exp(x))),
    "log_softmax": lambda x: np.log(softmax(x)),
}


def test_every_registered_activation_has_a_reference():
    assert set(activations.names()) == set(REFERENCE)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_values_match_the_formula(backend, name):
    with use_backend(backend):
        for dtype, rtol in (("float64", 1e-12), ("float32", 2e-6)):
            y = activations.get(name)(X.astype(dtype))
            assert y.dtype == np.dtype(dtype)
            np.testing.assert_allclose(y, REFERENCE[name](X), rtol=rtol, atol=rtol)


def test_keras_strings_and_objects():
    assert activations.get(None) is activations.linear
    assert activations.get("ReLU") is activations.relu
    assert activations.get("swish") is activations.silu
    assert activations.get(activations.tanh) is activations.tanh
    assert layers.Dense(2, activation="sigmoid").activation is activations.sigmoid


def test_parametrised_activation_config_round_trip():
    custom = activations.get({"name": "leaky_relu", "alpha": 0.05})
    config = json.loads(json.dumps(activations.serialize(custom)))
    assert config == {"name": "leaky_relu", "alpha": 0.05}
    clone = activations.get(config)
    np.testing.assert_allclose(clone(X), np.where(X > 0, X, 0.05 * X))
    assert activations.serialize(activations.relu) == "relu"
    layer = layers.Dense(2, activation=custom)
    assert layers.Dense.from_config(layer.get_config()).activation.params == {"alpha": 0.05}


def test_call_time_parameters_override_defaults():
    np.testing.assert_allclose(activations.elu(X, alpha=0.5), np.where(X > 0, X, 0.5 * np.expm1(X)))


def test_unknown_names_and_plain_functions_are_refused():
    with pytest.raises(ValueError, match="Unknown activation 'rleu'.*relu.*sigmoid"):
        activations.get("rleu")
    with pytest.raises(ValueError, match="no backward pass"):
        activations.get(np.tanh)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("kwargs", [dict(negative_slope=0.1), dict(max_value=6.0),
                                    dict(threshold=0.5, max_value=2.0, negative_slope=0.2)])
def test_relu_keyword_arguments(backend, kwargs):
    t, m, s = kwargs.get("threshold", 0.0), kwargs.get("max_value"), kwargs.get(
        "negative_slope", 0.0)
    want = np.where(X >= t, X, s * (X - t))
    want = want if m is None else np.minimum(want, m)
    with use_backend(backend):
        np.testing.assert_allclose(activations.relu(X, **kwargs), want, rtol=1e-12)


def test_gelu_approximate_and_leaky_slope():
    tanh_form = 0.5 * X * (1 + np.tanh(math.sqrt(2 / math.pi) * (X + 0.044715 * X ** 3)))
    # 1 + tanh(...) cancels for negative x: a last-bit difference in tanh (the "cpu"
    # kernel's libm call vs NumPy's) grows to ~1e-12 relative there.
    np.testing.assert_allclose(activations.gelu(X, approximate=True), tanh_form, rtol=1e-10)
    np.testing.assert_allclose(activations.leaky_relu(X, negative_slope=0.1),
                               np.where(X > 0, X, 0.1 * X), rtol=1e-12)
    with pytest.raises(ValueError, match="last axis"):
        activations.softmax(X, axis=0)
