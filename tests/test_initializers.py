"""Initializers against their Keras definitions (statistically), names, configs, seeds."""
import json
import math

import numpy as np
import pytest

import fastnn
from fastnn import initializers, layers

SHAPE = (300, 200)  # fan_in 300, fan_out 200: 60,000 draws
FAN_IN, FAN_OUT = SHAPE


def draw(name_or_init, shape=SHAPE, dtype="float32"):
    init = initializers.get(name_or_init)
    w = init(shape, dtype)
    assert w.shape == tuple(shape) and w.dtype == np.dtype(dtype)
    return w.astype("float64")


UNIFORM_LIMITS = {
    "glorot_uniform": math.sqrt(6 / (FAN_IN + FAN_OUT)),
    "he_uniform": math.sqrt(6 / FAN_IN),
    "lecun_uniform": math.sqrt(3 / FAN_IN),
}
NORMAL_STDS = {  # the std of the (truncated) draws, which Keras keeps at sqrt(scale / n)
    "glorot_normal": math.sqrt(2 / (FAN_IN + FAN_OUT)),
    "he_normal": math.sqrt(2 / FAN_IN),
    "lecun_normal": math.sqrt(1 / FAN_IN),
}
TRUNCATED_STD = 0.87962566103423978  # std of a standard normal truncated at +-2


@pytest.mark.parametrize("name", sorted(UNIFORM_LIMITS))
def test_uniform_variance_scaling_limits(name):
    limit = UNIFORM_LIMITS[name]
    w = draw(name)
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.99 * limit           # the whole range is used
    assert w.var() == pytest.approx(limit ** 2 / 3, rel=0.03)
    assert abs(w.mean()) < 0.02 * limit


@pytest.mark.parametrize("name", sorted(NORMAL_STDS))
def test_truncated_normal_variance_scaling_std_and_truncation(name):
    std = NORMAL_STDS[name]
    w = draw(name)
    assert w.std() == pytest.approx(std, rel=0.03)
    bound = 2 * std / TRUNCATED_STD  # two std of the underlying (rescaled) normal
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.98 * bound


def test_variance_scaling_modes_and_untruncated_normal():
    fan_out = initializers.VarianceScaling(scale=3.0, mode="fan_out", distribution="uniform")
    assert np.abs(fan_out(SHAPE)).max() <= math.sqrt(9 / FAN_OUT)
    assert np.abs(fan_out(SHAPE)).max() > 0.99 * math.sqrt(9 / FAN_OUT)
    plain = initializers.VarianceScaling(scale=2.0, distribution="untruncated_normal")
    w = plain(SHAPE).astype("float64")
    assert w.std() == pytest.approx(math.sqrt(2 / FAN_IN), rel=0.03)
    assert np.abs(w).max() > 3.5 * math.sqrt(2 / FAN_IN)  # tails beyond the truncation


def test_fans_of_convolution_kernels_use_the_receptive_field():
    # (3, 3, 16, 32): fan_in = 3*3*16, fan_out = 3*3*32, as in Keras.
    w = draw("he_uniform", (3, 3, 16, 32))
    assert np.abs(w).max() <= math.sqrt(6 / 144)
    assert np.abs(w).max() > 0.98 * math.sqrt(6 / 144)


def test_random_normal_uniform_truncated_and_constants():
    w = draw(initializers.RandomNormal(mean=1.0, stddev=0.5))
    assert w.mean() == pytest.approx(1.0, abs=0.01) and w.std() == pytest.approx(0.5, rel=0.02)
    u = draw(initializers.RandomUniform(minval=-0.2, maxval=0.6))
    assert u.min() >= -0.2 and u.max() < 0.6 and u.mean() == pytest.approx(0.2, abs=0.01)
    t = draw(initializers.TruncatedNormal(mean=0.5, stddev=0.1))
    assert np.abs(t - 0.5).max() <= 0.2 and np.abs(t - 0.5).max() > 0.19
    np.testing.assert_array_equal(draw("zeros", (3, 2)), np.zeros((3, 2)))
    np.testing.assert_array_equal(draw("ones", (3,)), np.ones(3))
    np.testing.assert_array_equal(draw(initializers.Constant(0.25), (2, 2)), np.full((2, 2), .25))


def test_keras_defaults():
    assert initializers.RandomNormal().get_config() == {"mean": 0.0, "stddev": 0.05, "seed": None}
    assert initializers.RandomUniform().get_config() == \
        {"minval": -0.05, "maxval": 0.05, "seed": None}
    assert initializers.VarianceScaling().get_config() == \
        {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal", "seed": None}


KERAS_NAMES = {
    "zeros": initializers.Zeros, "ones": initializers.Ones, "constant": initializers.Constant,
    "random_normal": initializers.RandomNormal, "random_uniform": initializers.RandomUniform,
    "truncated_normal": initializers.TruncatedNormal, "uniform": initializers.RandomUniform,
    "normal": initializers.RandomNormal, "variance_scaling": initializers.VarianceScaling,
    "glorot_uniform": initializers.GlorotUniform, "glorot_normal": initializers.GlorotNormal,
    "he_normal": initializers.HeNormal, "he_uniform": initializers.HeUniform,
    "lecun_normal": initializers.LecunNormal, "lecun_uniform": initializers.LecunUniform,
    "GlorotUniform": initializers.GlorotUniform, "HeNormal": initializers.HeNormal,
}


@pytest.mark.parametrize("name", sorted(KERAS_NAMES))
def test_keras_strings_and_config_round_trip(name):
    init = initializers.get(name)
    assert type(init) is KERAS_NAMES[name]
    data = json.loads(json.dumps(initializers.serialize(init)))
    clone = initializers.get(data)
    assert type(clone) is type(init) and clone.get_config() == init.get_config()


def test_seeded_initializers_repeat_and_differ_by_seed():
    a = initializers.GlorotUniform(seed=3)
    np.testing.assert_array_equal(a((4, 5)), initializers.GlorotUniform(seed=3)((4, 5)))
    np.testing.assert_array_equal(a((4, 5)), a((4, 5)))  # Keras 3: same values each call
    assert not np.array_equal(a((4, 5)), initializers.GlorotUniform(seed=4)((4, 5)))
    clone = initializers.get(initializers.serialize(initializers.HeNormal(seed=7)))
    np.testing.assert_array_equal(clone((3, 3)), initializers.HeNormal(seed=7)((3, 3)))


def test_unseeded_initializers_follow_set_random_seed():
    fastnn.utils.set_random_seed(11)
    first = [initializers.get("he_normal")((4, 4)), initializers.get("random_uniform")((3,))]
    fastnn.utils.set_random_seed(11)
    again = [initializers.get("he_normal")((4, 4)), initializers.get("random_uniform")((3,))]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], initializers.get("he_normal")((4, 4)))


def test_layers_use_their_initializers():
    layer = layers.Dense(64, kernel_initializer="he_uniform", bias_initializer="ones")
    layer.build((100,))
    kernel, bias = layer.get_weights()
    assert np.abs(kernel).max() <= math.sqrt(6 / 100)
    np.testing.assert_array_equal(bias, np.ones(64))


@pytest.mark.parametrize("make, message", [
    (lambda: initializers.get("glorot"), "Unknown initializer 'glorot'.*glorot_uniform"),
    (lambda: initializers.get(3), "Cannot use 3 as an initializer"),
    (lambda: initializers.RandomUniform(minval=1, maxval=0), "minval <= maxval"),
    (lambda: initializers.RandomNormal(stddev=-1), "stddev"),
    (lambda: initializers.TruncatedNormal(stddev=-0.1), "stddev"),
    (lambda: initializers.VarianceScaling(scale=0), "scale"),
    (lambda: initializers.VarianceScaling(mode="fan_max"), "mode"),
    (lambda: initializers.VarianceScaling(distribution="normal"), "distribution"),
    (lambda: initializers.HeNormal(seed="x"), "seed"),
])
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (3, 2, 5)])
def test_orthogonal_has_orthonormal_columns_or_rows(shape):
    w = initializers.Orthogonal(gain=2.0, seed=1)(shape, "float64")
    flat = w.reshape(-1, shape[-1]) / 2.0
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=1e-12)
    np.testing.assert_array_equal(w, initializers.Orthogonal(gain=2.0, seed=1)(shape, "float64"))


def test_identity_initializer_and_errors():
    np.testing.assert_array_equal(initializers.get("identity")((2, 3)), np.eye(2, 3))
    with pytest.raises(ValueError, match="2-D"):
        initializers.Identity()((2, 3, 4))
    with pytest.raises(ValueError, match="rank"):
        initializers.Orthogonal()((5,))
