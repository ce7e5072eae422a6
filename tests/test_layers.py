"""The layer catalog: Keras names, defaults and configs, hyperparameter checks, forward
math against NumPy, freezing, and batch-norm statistics."""
import json

import numpy as np
import pytest

import fastnn
from fastnn import layers, regularizers
from fastnn.layers.base import Layer

RNG = np.random.default_rng(0)
X = RNG.normal(size=(6, 5)).astype("float32")

# One instance of every public layer, with non-default hyperparameters where it has any.
EXAMPLES = {
    "Dense": lambda: layers.Dense(4, activation="tanh", use_bias=False,
                                  kernel_initializer="he_normal",
                                  kernel_regularizer=regularizers.L2(0.1), input_shape=(5,)),
    "Activation": lambda: layers.Activation("sigmoid"),
    "ReLU": lambda: layers.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.5),
    "LeakyReLU": lambda: layers.LeakyReLU(negative_slope=0.05),
    "PReLU": lambda: layers.PReLU(alpha_initializer="ones", alpha_regularizer="l2",
                                  shared_axes=[1]),
    "ELU": lambda: layers.ELU(alpha=0.5),
    "Softmax": lambda: layers.Softmax(axis=-1),
    "Maxout": lambda: layers.Maxout(3, pieces=4, bias_initializer="ones"),
    "Dropout": lambda: layers.Dropout(0.25, seed=3),
    "DropConnect": lambda: layers.DropConnect(4, rate=0.2, activation="relu", seed=9),
    "BatchNormalization": lambda: layers.BatchNormalization(
        momentum=0.9, epsilon=1e-4, center=False, gamma_initializer="he_normal",
        gamma_regularizer="l2", gamma_constraint="non_neg", moving_variance_initializer="ones"),
    "LayerNormalization": lambda: layers.LayerNormalization(
        epsilon=1e-5, scale=False, beta_initializer="ones", beta_constraint="max_norm"),
    "Flatten": lambda: layers.Flatten(),
    "InputLayer": lambda: layers.InputLayer(shape=(5,)),
    "Normalization": lambda: layers.Normalization(mean=[0.0] * 5, variance=[2.0] * 5),
    "UnitNormalization": lambda: layers.UnitNormalization(),
    "GaussianNoise": lambda: layers.GaussianNoise(0.2, seed=1),
    "GaussianDropout": lambda: layers.GaussianDropout(0.3, seed=2),
    "AlphaDropout": lambda: layers.AlphaDropout(0.1, seed=3),
    "ActivityRegularization": lambda: layers.ActivityRegularization(l1=0.01, l2=0.02),
    "Identity": lambda: layers.Identity(),
}


def test_every_public_layer_has_an_example_and_is_registered():
    public = {name for name in layers.__all__
              if isinstance(getattr(layers, name), type)
              and issubclass(getattr(layers, name), Layer) and name != "Layer"}
    public.discard("Lambda")  # holds Python code: never loadable from a file (tested apart)
    assert public == set(EXAMPLES)
    for name in public:
        assert layers.get(name) is getattr(layers, name)
        assert layers.get(name.lower()) is getattr(layers, name)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_config_round_trips_through_json(name):
    layer = EXAMPLES[name]()
    config = layer.get_config()
    data = json.loads(json.dumps(layers.serialize(layer)))
    clone = layers.deserialize(data)
    assert type(clone) is type(layer)
    assert clone.get_config() == config
    if name == "InputLayer":
        return
    layer.build(X.shape[1:])
    clone.build(X.shape[1:])
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(X), layer(X))


def test_deserialize_refuses_unknown_classes():
    with pytest.raises(ValueError, match="Unknown layer 'Lambda'.*dense"):
        layers.deserialize({"class_name": "Lambda", "config": {}})
    with pytest.raises(ValueError, match="class_name"):
        layers.deserialize(["Dense"])


def test_keras_defaults():
    assert layers.LeakyReLU().negative_slope == 0.3
    relu = layers.ReLU()
    assert (relu.max_value, relu.negative_slope, relu.threshold) == (None, 0.0, 0.0)
    assert layers.ELU().alpha == 1.0
    assert layers.Softmax().axis == -1
    assert layers.Maxout(2).pieces == 2
    bn = layers.BatchNormalization()
    assert (bn.momentum, bn.epsilon, bn.center, bn.scale) == (0.99, 1e-3, True, True)
    prelu = layers.PReLU()
    prelu.build((4,))
    np.testing.assert_array_equal(prelu.get_weights()[0], np.zeros(4))


BAD = [
    (lambda: layers.Dropout(-0.1), "Dropout rate"),
    (lambda: layers.Dropout(1.0), "Dropout rate"),
    (lambda: layers.Dropout("0.5"), "Dropout rate"),
    (lambda: layers.DropConnect(3, rate=1.5), "DropConnect rate"),
    (lambda: layers.BatchNormalization(momentum=1.0), "momentum"),
    (lambda: layers.BatchNormalization(momentum=-0.1), "momentum"),
    (lambda: layers.BatchNormalization(epsilon=0), "epsilon"),
    (lambda: layers.LayerNormalization(epsilon=-1), "epsilon"),
    (lambda: layers.Dense(-3), "Dense units"),
    (lambda: layers.Dense(0), "Dense units"),
    (lambda: layers.Dense(2.5), "Dense units"),
    (lambda: layers.Maxout(-1), "Maxout units"),
    (lambda: layers.Maxout(3, pieces=0), "Maxout pieces"),
    (lambda: layers.Maxout(3, activation="relu"), "activation"),
    (lambda: layers.DropConnect(-2), "DropConnect units"),
    (lambda: layers.Dense(3, activation="relux"), "Unknown activation 'relux'.*relu"),
    (lambda: layers.Dense(3, kernel_initializer="glorot"), "glorot_uniform"),
    (lambda: layers.Dense(3, kernel_regularizer="l3"), "l1_l2"),
    (lambda: layers.ReLU(negative_slope=-1), "negative_slope"),
    (lambda: layers.ReLU(max_value=-1), "max_value"),
    (lambda: layers.ReLU(threshold=-0.5), "threshold"),
    (lambda: layers.LeakyReLU(negative_slope=-0.1), "negative_slope"),
    (lambda: layers.ELU(alpha="one"), "alpha"),
    (lambda: layers.PReLU(shared_axes=[0]), "shared_axes"),
    (lambda: layers.Dropout(0.5, seed="x"), "seed"),
    (lambda: layers.Softmax(axis="last"), "axis"),
]


@pytest.mark.parametrize("make, message", BAD, ids=[m for _, m in BAD])
def test_bad_hyperparameters_fail_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_shape_errors_at_build():
    with pytest.raises(ValueError, match="only the last axis"):
        layers.Softmax(axis=0).build((5,))
    with pytest.raises(ValueError, match="shared axis 2"):
        layers.PReLU(shared_axes=[2]).build((5,))
    with pytest.raises(ValueError, match="Flatten"):
        layers.BatchNormalization().build((2, 3))


# ---------------------------------------------------------------- forward math
def test_relu_follows_the_keras_definition():
    x = np.array([[-2.0, 0.0, 0.3, 0.5, 1.0, 2.0, 3.0]], dtype="float32")
    y = layers.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.5)(x)
    np.testing.assert_allclose(y, [[-0.25, -0.05, -0.02, 0.5, 1.0, 2.0, 2.0]], rtol=1e-6)
    np.testing.assert_array_equal(layers.ReLU()(x), np.maximum(x, 0))


def test_leaky_relu_elu_and_softmax_values():
    np.testing.assert_allclose(layers.LeakyReLU()(X), np.where(X > 0, X, 0.3 * X), rtol=1e-6)
    np.testing.assert_allclose(layers.ELU(alpha=0.5)(X),
                               np.where(X > 0, X, 0.5 * np.expm1(X)), rtol=1e-5, atol=1e-7)
    e = np.exp(X - X.max(axis=1, keepdims=True))
    np.testing.assert_allclose(layers.Softmax()(X), e / e.sum(axis=1, keepdims=True),
                               rtol=1e-5)


def test_prelu_uses_one_slope_per_unit():
    layer = layers.PReLU()
    layer.build((5,))
    alpha = np.linspace(0.1, 0.5, 5).astype("float32")
    layer.set_weights([alpha])
    np.testing.assert_allclose(layer(X), np.where(X > 0, X, alpha * X), rtol=1e-6)


def test_maxout_is_the_max_over_adjacent_pieces():
    layer = layers.Maxout(3, pieces=2)
    layer.build((5,))
    kernel, bias = layer.get_weights()
    bias = RNG.normal(size=bias.shape).astype("float32")
    layer.set_weights([kernel, bias])
    z = X @ kernel + bias
    expected = np.maximum(z[:, 0::2], z[:, 1::2])
    np.testing.assert_allclose(layer(X), expected, rtol=1e-5, atol=1e-6)
    assert layer.kernel.shape == (5, 6) and layer.output_shape == (3,)


def test_dropconnect_uses_the_full_kernel_at_inference():
    layer = layers.DropConnect(4, rate=0.5, seed=1)
    layer.build((5,))
    kernel, bias = layer.get_weights()
    np.testing.assert_allclose(layer(X), X @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_dropconnect_drops_kernel_entries_in_training_with_inverted_scaling():
    layer = layers.DropConnect(200, rate=0.3, seed=1, use_bias=False)
    layer.build((50,))
    eye = np.eye(50, dtype="float32")  # rows of the output are rows of the masked kernel
    masked = layer(eye, training=True)
    kernel = layer.get_weights()[0]
    kept = masked != 0
    assert abs(1 - kept.mean() - 0.3) < 0.02
    np.testing.assert_allclose(masked[kept], kernel[kept] / 0.7, rtol=1e-5)
    assert not np.array_equal(layer(eye, training=True), masked)  # a new mask per call


def test_seeded_masks_repeat_across_fresh_layers():
    a, b = layers.Dropout(0.5, seed=4), layers.Dropout(0.5, seed=4)
    np.testing.assert_array_equal(a(X, training=True), b(X, training=True))
    assert not np.array_equal(a(X, training=True), layers.Dropout(0.5, seed=5)(X, training=True))


# ---------------------------------------------------------------- inside a model
def blobs(n=120, d=5, k=3):
    rng = np.random.default_rng(1)
    y = rng.integers(0, k, n)
    return (rng.normal(0, 3, (k, d))[y] + rng.normal(size=(n, d))).astype("float32"), y


@pytest.mark.parametrize("first", [
    lambda: layers.Dense(8, activation="relu", input_shape=(5,)),
    lambda: layers.PReLU(alpha_initializer="random_uniform", input_shape=(5,)),
    lambda: layers.Maxout(8, input_shape=(5,)),
    lambda: layers.DropConnect(8, rate=0.3, activation="relu", input_shape=(5,)),
], ids=["dense", "prelu", "maxout", "dropconnect"])
def test_freezing_the_first_layer_keeps_its_weights_bit_identical(first):
    x, y = blobs()
    frozen = first()
    model = fastnn.Sequential([frozen, layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.build((5,))
    frozen.trainable = False
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    after = model.get_weights()
    n_frozen = len(frozen.weights)
    for a, b in zip(before[:n_frozen], after[:n_frozen]):
        np.testing.assert_array_equal(a, b)
    assert all(not np.array_equal(a, b) for a, b in zip(before[n_frozen:], after[n_frozen:]))


def test_every_parametrised_layer_trains_inside_a_sequential():
    x, y = blobs()
    model = fastnn.Sequential([
        layers.DropConnect(16, rate=0.2, input_shape=(5,)),
        layers.PReLU(alpha_initializer="constant"),
        layers.BatchNormalization(),
        layers.Maxout(8, pieces=3),
        layers.LayerNormalization(),
        layers.Dense(3),
        layers.Softmax(),
    ])
    model.compile(fastnn.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.evaluate(x, y, verbose=0)[1] > 0.8


# ---------------------------------------------------------------- batch normalization
def test_batchnorm_moving_statistics_are_non_trainable_weights():
    bn = layers.BatchNormalization()
    bn.build((5,))
    assert [w.name.split("/")[-1] for w in bn.trainable_weights] == ["gamma", "beta"]
    assert [w.name.split("/")[-1] for w in bn.non_trainable_weights] == \
        ["moving_mean", "moving_variance"]
    model = fastnn.Sequential([layers.Dense(5, input_shape=(5,)), bn])
    model.build()
    assert model._store.size == 5 * 5 + 5 + 5 + 5  # flat buffer: no moving statistics


def test_batchnorm_updates_moving_statistics_only_in_training():
    bn = layers.BatchNormalization(momentum=0.8)
    bn(X)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), np.zeros(5))
    bn(X, training=True)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.2 * X.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.8 + 0.2 * X.var(axis=0),
                               rtol=1e-5)


def test_frozen_batchnorm_runs_in_inference_mode_as_in_keras():
    bn = layers.BatchNormalization()
    bn.build((5,))
    bn.trainable = False
    np.testing.assert_array_equal(bn(X, training=True), bn(X, training=False))
    np.testing.assert_array_equal(bn.moving_mean.numpy(), np.zeros(5))


def test_batchnorm_without_scale_or_center_has_no_such_weight():
    bn = layers.BatchNormalization(scale=False)
    bn.build((5,))
    assert [w.name.split("/")[-1] for w in bn.weights] == \
        ["beta", "moving_mean", "moving_variance"]
    y = bn(X, training=True)
    np.testing.assert_allclose(y.std(axis=0), np.sqrt(X.var(axis=0) / (X.var(axis=0) + 1e-3)),
                               rtol=1e-4)


# ---------------------------------------------------------------- regularizers
@pytest.mark.parametrize("name, cls", [("l1", regularizers.L1), ("l2", regularizers.L2),
                                       ("l1_l2", regularizers.L1L2), ("L1L2", regularizers.L1L2)])
def test_regularizers_from_keras_strings(name, cls):
    assert type(regularizers.get(name)) is cls


@pytest.mark.parametrize("reg", [regularizers.L1(0.3), regularizers.L2(0.2),
                                 regularizers.L1L2(l1=0.1, l2=0.4)])
def test_regularizer_config_round_trip_and_penalty(reg):
    clone = regularizers.get(json.loads(json.dumps(regularizers.serialize(reg))))
    assert type(clone) is type(reg) and clone.get_config() == reg.get_config()
    w = np.array([[1.0, -2.0], [0.5, 0.0]], dtype="float32")
    expected = reg.l1 * np.abs(w).sum() + reg.l2 * (w ** 2).sum()
    assert clone(w) == pytest.approx(expected, rel=1e-6)


def test_regularizer_defaults_and_bad_values():
    assert regularizers.L1().l1 == 0.01 and regularizers.L2().l2 == 0.01
    with pytest.raises(ValueError, match="l2"):
        regularizers.L2(-1)
    with pytest.raises(ValueError, match="Unknown regularizer"):
        regularizers.get("l3")
