"""Weight constraints: formulas on both CPU backends, errors, configs, and their use
after each optimizer step (the Keras comparison lives in tests/keras_compat/)."""
import numpy as np
import pytest

import fastnn
from fastnn import constraints, layers
from fastnn.backend import use_backend

RNG = np.random.default_rng(0)
W = RNG.normal(size=(5, 4)).astype("float32")


def norms(w, axis=0):
    return np.sqrt((w.astype("float64") ** 2).sum(axis=axis, keepdims=True))


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_max_norm_caps_each_unit(backend):
    with use_backend(backend):
        out = constraints.MaxNorm(1.0)(W)
    n = norms(W)
    want = W * np.minimum(n, 1.0) / (1e-7 + n)
    np.testing.assert_allclose(out, want, rtol=1e-6)
    assert (norms(out) <= 1.0 + 1e-6).all()


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_unit_non_neg_and_min_max(backend):
    with use_backend(backend):
        np.testing.assert_allclose(norms(constraints.UnitNorm(axis=1)(W), 1), 1.0, rtol=1e-6)
        assert (constraints.NonNeg()(W) >= 0).all()
        out = constraints.MinMaxNorm(0.5, 0.8, rate=1.0)(W)
    assert ((norms(out) >= 0.5 - 1e-6) & (norms(out) <= 0.8 + 1e-6)).all()


@pytest.mark.parametrize("bad", [dict(max_value=-1), dict(max_value="2"), dict(axis=1.5)])
def test_bad_arguments_raise(bad):
    with pytest.raises(ValueError):
        constraints.MaxNorm(**bad)


def test_min_above_max_raises():
    with pytest.raises(ValueError, match="below"):
        constraints.MinMaxNorm(min_value=2, max_value=1)


@pytest.mark.parametrize("name", ["max_norm", "MaxNorm", "non_neg", "unit_norm",
                                  "min_max_norm"])
def test_get_by_name_and_config_round_trip(name):
    c = constraints.get(name)
    again = constraints.get(constraints.serialize(c))
    assert type(again) is type(c) and again.get_config() == c.get_config()


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="max_norm"):
        constraints.get("maxnorm2")


@pytest.mark.parametrize("fast", [True, False])
def test_kernel_max_norm_holds_after_every_step(fast):
    # fast: the compiled Dense stack; not fast: a BatchNormalization forces the layer path
    extra = [] if fast else [layers.BatchNormalization()]
    model = fastnn.Sequential([fastnn.Input((6,)),
                               layers.Dense(4, kernel_constraint=constraints.MaxNorm(0.3),
                                            bias_constraint="non_neg"), *extra,
                               layers.Dense(2)])
    model.compile(optimizer=fastnn.optimizers.SGD(0.5), loss="mse")
    x = RNG.normal(size=(32, 6)).astype("float32")
    y = 5 * RNG.normal(size=(32, 2)).astype("float32")
    for _ in range(3):
        model.train_on_batch(x, y)
        kernel, bias = model.layers[0].get_weights()
        assert (norms(kernel) <= 0.3 + 1e-6).all()
        assert (bias >= 0).all()


def test_dense_config_round_trip_keeps_constraints():
    layer = layers.Dense(3, kernel_constraint=constraints.MaxNorm(2.0, axis=1))
    clone = layers.Dense.from_config(layer.get_config())
    assert clone.kernel_constraint.get_config() == {"max_value": 2.0, "axis": 1}


def test_orthogonal_regularizer_is_zero_on_orthogonal_rows_and_checks_its_input():
    from fastnn import regularizers
    reg = regularizers.OrthogonalRegularizer(factor=1.0)
    assert reg(np.eye(3, 4)) == pytest.approx(0.0)
    assert reg(np.ones((3, 4))) == pytest.approx(1.0)  # every pair has cosine 1
    with pytest.raises(ValueError, match="2-D"):
        reg(np.ones(4))
    with pytest.raises(ValueError, match="mode"):
        regularizers.OrthogonalRegularizer(mode="diagonal")
    again = regularizers.get(regularizers.serialize(regularizers.OrthogonalRegularizer(
        0.2, "columns")))
    assert again.get_config() == {"factor": 0.2, "mode": "columns"}


def test_a_user_constraint_with_only_call_is_applied_in_fit():
    """A constraint written the Keras way defines only __call__(w)."""
    class Clip(fastnn.constraints.Constraint):
        def __call__(self, w):
            return fastnn.ops.clip(w, -0.01, 0.01)

    model = fastnn.Sequential([fastnn.Input((4,)),
                               fastnn.layers.Dense(3, kernel_constraint=Clip())])
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    model.fit(x, np.ones((16, 3), "float32"), epochs=1, verbose=0)
    assert np.abs(model.layers[0].kernel.numpy()).max() <= 0.01 + 1e-7
