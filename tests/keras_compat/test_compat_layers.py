"""Layers against Keras: outputs from the same weights, weight shapes, configs, errors."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

import fastnn  # noqa: E402
from compat_marks import assert_close, cases  # noqa: E402

RNG = np.random.default_rng(2)
X = RNG.normal(size=(5, 6)).astype("float32")
MEAN = np.linspace(-0.5, 0.5, 6).astype("float32")
VAR = np.linspace(0.5, 2.0, 6).astype("float32")

# id -> (class name, constructor kwargs)
LAYERS = {
    "Dense": ("Dense", dict(units=4)),
    "Dense_relu_nobias": ("Dense", dict(units=4, activation="relu", use_bias=False)),
    "Activation": ("Activation", dict(activation="tanh")),
    "Flatten": ("Flatten", {}),
    "Dropout": ("Dropout", dict(rate=0.3)),
    "BatchNormalization": ("BatchNormalization", {}),
    "BatchNormalization_args": ("BatchNormalization", dict(momentum=0.9, epsilon=1e-2,
                                                           center=False)),
    "LayerNormalization": ("LayerNormalization", {}),
    "LayerNormalization_args": ("LayerNormalization", dict(epsilon=1e-2, scale=False)),
    "ReLU": ("ReLU", dict(max_value=1.0, negative_slope=0.1, threshold=0.2)),
    "LeakyReLU": ("LeakyReLU", dict(negative_slope=0.2)),
    "PReLU": ("PReLU", {}),
    "ELU": ("ELU", dict(alpha=0.7)),
    "Softmax": ("Softmax", {}),
    "Normalization": ("Normalization", dict(mean=MEAN, variance=VAR)),
    "GaussianNoise": ("GaussianNoise", dict(stddev=0.1)),
    "GaussianDropout": ("GaussianDropout", dict(rate=0.2)),
    "AlphaDropout": ("AlphaDropout", dict(rate=0.2)),
    "UnitNormalization": ("UnitNormalization", {}),
    "ActivityRegularization": ("ActivityRegularization", dict(l1=0.01, l2=0.02)),
    "Identity": ("Identity", {}),
}
IDS = sorted(LAYERS)
NEW = ("Normalization", "GaussianNoise", "GaussianDropout", "AlphaDropout",
       "UnitNormalization", "ActivityRegularization", "Identity")
MISSING = {}
# Keys Keras configs carry for features fastnn has no counterpart for.
KERAS_ONLY_KEYS = {"quantization_config", "renorm", "renorm_clipping", "renorm_momentum",
                   "synchronized", "lora_rank", "lora_alpha", "noise_shape", "dtype",
                   "data_format", "rms_scaling"}
CONSTRAINT_KEYS = {"kernel_constraint", "bias_constraint", "beta_constraint",
                   "gamma_constraint", "alpha_constraint"}


def pair(layer_id):
    """The Keras layer and the fastnn layer, built, with the same (non-trivial) weights."""
    cls, kwargs = LAYERS[layer_id]
    k = getattr(keras.layers, cls)(**kwargs)
    f = getattr(fastnn.layers, cls)(**kwargs)
    k.build((None, 6))
    f.build((6,))
    weights = [w + RNG.uniform(0.1, 0.5, size=w.shape).astype(w.dtype) for w in k.get_weights()]
    k.set_weights(weights)
    f.set_weights(weights)
    return k, f


@pytest.mark.parametrize("layer_id", cases(IDS, MISSING))
def test_inference_output(layer_id):
    k, f = pair(layer_id)
    want = np.asarray(k(X, training=False))
    got = f(X)
    assert got.shape == want.shape
    assert_close(got, want, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("layer_id", cases(IDS, MISSING))
def test_weight_shapes(layer_id):
    k, f = pair(layer_id)
    assert [w.shape for w in f.get_weights()] == [w.shape for w in k.get_weights()]


@pytest.mark.parametrize("layer_id", cases(IDS, MISSING))
def test_trainable_split(layer_id):
    k, f = pair(layer_id)
    assert len(f.trainable_weights) == len(k.trainable_weights)
    assert len(f.non_trainable_weights) == len(k.non_trainable_weights)


@pytest.mark.parametrize("layer_id", cases(IDS, MISSING))
def test_count_params(layer_id):
    k, f = pair(layer_id)
    assert f.count_params() == k.count_params()


CONFIG_MARKS = {}


@pytest.mark.parametrize("layer_id", cases(IDS, CONFIG_MARKS))
def test_config_keys(layer_id):
    k, f = pair(layer_id)
    want = set(k.get_config()) - KERAS_ONLY_KEYS
    assert want <= set(f.get_config())


@pytest.mark.parametrize("layer_id", cases(IDS, MISSING))
def test_from_config_round_trip(layer_id):
    _, f = pair(layer_id)
    clone = type(f).from_config(f.get_config())
    assert type(clone) is type(f)
    assert clone.get_config() == f.get_config() or layer_id == "Normalization"


@pytest.mark.parametrize("layer_id", cases(IDS, MISSING))
def test_output_dtype(layer_id):
    k, f = pair(layer_id)
    assert np.asarray(f(X)).dtype == np.asarray(k(X)).dtype


@pytest.mark.parametrize("layer_id", cases(IDS, MISSING))
def test_auto_names_are_unique(layer_id):
    cls, kwargs = LAYERS[layer_id]
    a, b = (getattr(fastnn.layers, cls)(**kwargs) for _ in range(2))
    c = getattr(keras.layers, cls)(**kwargs)
    assert a.name != b.name
    assert a.name.rstrip("0123456789_") == c.name.rstrip("0123456789_")


def test_flatten_of_a_matrix_per_sample():
    x = RNG.normal(size=(4, 2, 3)).astype("float32")
    assert_close(fastnn.layers.Flatten()(x), keras.layers.Flatten()(x))


def test_dropout_in_training_keeps_or_scales():
    x = np.ones((200, 50), "float32")
    got = np.asarray(fastnn.layers.Dropout(0.25)(x, training=True))
    want = np.asarray(keras.layers.Dropout(0.25)(x, training=True))
    assert set(np.unique(got)) == set(np.unique(want))
    assert abs((got == 0).mean() - (want == 0).mean()) < 0.03


def test_normalization_adapt():
    data = RNG.normal(2.0, 3.0, size=(50, 6)).astype("float32")
    k = keras.layers.Normalization()
    k.adapt(data)
    f = fastnn.layers.Normalization()
    f.adapt(data)
    assert_close(f(X), k(X), rtol=1e-4, atol=1e-5)



@pytest.mark.parametrize("call", [
    ("Dense", dict(units=0)), ("Dense", dict(units=-2)), ("Dropout", dict(rate=1.5)),
    ("Dropout", dict(rate=-0.1))], ids=lambda c: f"{c[0]}-{list(c[1].values())[0]}")
def test_bad_hyperparameter_raises_value_error(call):
    cls, kwargs = call
    with pytest.raises(ValueError):
        getattr(keras.layers, cls)(**kwargs)
    with pytest.raises(ValueError):
        getattr(fastnn.layers, cls)(**kwargs)


def test_dense_on_wrong_width_raises_value_error():
    k = keras.layers.Dense(3)
    k.build((None, 6))
    f = fastnn.layers.Dense(3)
    f.build((6,))
    bad = np.ones((2, 5), "float32")
    with pytest.raises(Exception):
        k(bad)
    with pytest.raises(ValueError):
        f(bad)
