"""Normalization (adapt), noise layers, UnitNormalization, ActivityRegularization and
Identity: values, statistics, errors, configs and saving. Backward passes are checked in
test_gradients.py; the Keras comparison is in tests/keras_compat/."""
import numpy as np
import pytest

import fastnn
from fastnn import layers
from fastnn.backend import use_backend
from fastnn.models import load_model

RNG = np.random.default_rng(7)
DATA = RNG.normal(3.0, 2.0, size=(200, 4)).astype("float32")


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_normalization_adapt_standardises(backend):
    with use_backend(backend):
        norm = layers.Normalization()
        norm.adapt(DATA)
        out = norm(DATA)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-4)
    assert [w.name for w in norm.weights] == ["mean", "variance", "count"]
    assert norm.trainable_weights == []


def test_normalization_invert_undoes_it():
    norm = layers.Normalization(mean=[1.0, 2.0], variance=[4.0, 9.0])
    back = layers.Normalization(mean=[1.0, 2.0], variance=[4.0, 9.0], invert=True)
    x = RNG.normal(size=(3, 2)).astype("float32")
    np.testing.assert_allclose(back(norm(x)), x, rtol=1e-6, atol=1e-6)


def test_normalization_errors():
    with pytest.raises(ValueError, match="both"):
        layers.Normalization(mean=1.0)
    with pytest.raises(ValueError, match="NaN"):
        layers.Normalization().adapt(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="adapt is for"):
        layers.Normalization(mean=0.0, variance=1.0).adapt(DATA)
    with pytest.raises(ValueError, match="axis"):
        layers.Normalization(axis=0)


def test_adapted_normalization_trains_and_saves(tmp_path):
    norm = layers.Normalization()
    norm.adapt(DATA)
    model = fastnn.Sequential([fastnn.Input((4,)), norm, layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(DATA, DATA[:, :1], epochs=1, verbose=0)
    np.testing.assert_allclose(norm.get_weights()[0], DATA.mean(axis=0), rtol=1e-5)
    model.save(tmp_path / "m.fastnn")
    loaded = load_model(tmp_path / "m.fastnn")
    np.testing.assert_allclose(loaded.predict(DATA[:5]), model.predict(DATA[:5]), rtol=1e-6)


@pytest.mark.parametrize("make", [lambda: layers.GaussianNoise(0.5, seed=1),
                                  lambda: layers.GaussianDropout(0.3, seed=1)],
                         ids=["GaussianNoise", "GaussianDropout"])
def test_noise_is_identity_at_inference_and_random_in_training(make):
    layer = make()
    x = np.ones((500, 20), "float32")
    np.testing.assert_array_equal(layer(x), x)
    noisy = np.asarray(layer(x, training=True))
    assert not np.array_equal(noisy, x)
    assert abs(noisy.mean() - 1.0) < 0.05  # each keeps the mean of a unit input


def test_alpha_dropout_keeps_selu_statistics():
    x = np.asarray(fastnn.activations.selu(RNG.normal(size=(4000, 50)).astype("float32")))
    out = np.asarray(layers.AlphaDropout(0.2, seed=4)(x, training=True))
    assert abs(out.mean() - x.mean()) < 0.02 and abs(out.std() - x.std()) < 0.03


def test_seeded_noise_repeats():
    a, b = layers.GaussianNoise(1.0, seed=5), layers.GaussianNoise(1.0, seed=5)
    x = np.zeros((3, 4), "float32")
    np.testing.assert_array_equal(a(x, training=True), b(x, training=True))


@pytest.mark.parametrize("bad", [lambda: layers.GaussianDropout(1.0),
                                 lambda: layers.GaussianNoise(-1.0),
                                 lambda: layers.AlphaDropout(0.1, noise_shape=(1, 4))])
def test_noise_bad_arguments(bad):
    with pytest.raises(ValueError):
        bad()


def test_unit_normalization_and_identity():
    x = RNG.normal(size=(5, 3)).astype("float32")
    np.testing.assert_allclose(np.linalg.norm(layers.UnitNormalization()(x), axis=1), 1,
                               rtol=1e-6)
    np.testing.assert_array_equal(layers.Identity()(x), x)
    assert np.all(layers.UnitNormalization()(np.zeros((1, 3), "float32")) == 0)


def test_activity_regularization_penalises_the_loss():
    x = np.array([[1.0, -2.0]], "float32")
    model = fastnn.Sequential([fastnn.Input((2,)), layers.ActivityRegularization(l1=0.1,
                                                                                 l2=0.5)])
    model.compile(optimizer="sgd", loss="mse")
    assert model.evaluate(x, x, verbose=0) == pytest.approx(0.1 * 3 + 0.5 * 5)


@pytest.mark.parametrize("make", [
    lambda: layers.Normalization(mean=[1.0, 2.0], variance=[3.0, 4.0], invert=True),
    lambda: layers.GaussianNoise(0.2, seed=3), lambda: layers.GaussianDropout(0.1),
    lambda: layers.AlphaDropout(0.2, seed=1), lambda: layers.UnitNormalization(),
    lambda: layers.ActivityRegularization(l1=0.2), lambda: layers.Identity()])
def test_config_round_trip(make):
    layer = make()
    again = layers.deserialize(layers.serialize(layer))
    config, other = layer.get_config(), again.get_config()
    config.pop("name"), other.pop("name")
    assert type(again) is type(layer) and other == config


def test_unit_normalization_refuses_axis_1_when_it_is_not_the_last():
    """Keras would normalise over axis 1 of (n, t, d) samples; we support the last axis only."""
    with pytest.raises(ValueError, match="only the last axis"):
        fastnn.Sequential([fastnn.Input((3, 4)), layers.UnitNormalization(axis=1)])
    assert layers.UnitNormalization(axis=1).get_config()["axis"] == 1  # kept as given
