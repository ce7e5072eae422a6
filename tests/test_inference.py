"""compile_for_inference: folded plans equal the unfolded model and leave it untouched."""
import numpy
import pytest

import fastnn
from fastnn import layers
from fastnn.models.inference import InferencePlan
from fastnn.utils import set_random_seed


def _trained(layer_list, n_in=8):
    set_random_seed(0)
    model = fastnn.Sequential(layer_list)
    model.compile("adam", "mse")
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(64, n_in)).astype("float32") * 3 + 1
    model.build((n_in,))
    y = rng.normal(size=(64,) + tuple(model.layers[-1].output_shape)).astype("float32")
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)  # moves the batch-norm statistics
    return model, x


ARCHITECTURES = {
    "bn_after_linear_dense": lambda: [
        layers.Dense(12, input_shape=(8,)), layers.BatchNormalization(),
        layers.Activation("relu"), layers.Dense(3)],
    "bn_after_relu_dense_then_dropout": lambda: [
        layers.Dense(12, activation="relu", input_shape=(8,)), layers.BatchNormalization(),
        layers.Dropout(0.5), layers.Dense(3, activation="softmax")],
    "bn_first_and_last": lambda: [
        layers.BatchNormalization(input_shape=(8,)), layers.Dense(6, activation="tanh"),
        layers.BatchNormalization()],
    "no_bias_and_layer_norm": lambda: [
        layers.Dense(10, use_bias=False, input_shape=(8,)), layers.BatchNormalization(),
        layers.LayerNormalization(), layers.Dense(4, activation="sigmoid")],
    "activation_first": lambda: [
        layers.Activation("tanh", input_shape=(8,)), layers.Dense(5), layers.Dropout(0.1),
        layers.Dense(2)],
}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_plan_matches_the_unfolded_model(name):
    model, x = _trained(ARCHITECTURES[name]())
    before = [w.copy() for w in model.get_weights()]
    plan = model.compile_for_inference()
    numpy.testing.assert_allclose(plan(x), model.predict(x), rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(plan.predict(x, batch_size=7), model.predict(x),
                                  rtol=1e-5, atol=1e-5)
    for a, b in zip(before, model.get_weights()):
        numpy.testing.assert_array_equal(a, b)


def test_batch_norm_and_dropout_are_folded_away():
    model, _ = _trained(ARCHITECTURES["bn_after_relu_dense_then_dropout"]())
    assert repr(model.compile_for_inference()) == "<InferencePlan DENSE -> DENSE>"
    model, _ = _trained(ARCHITECTURES["bn_after_linear_dense"]())
    assert repr(model.compile_for_inference()) == "<InferencePlan DENSE -> DENSE>"


def test_plan_is_a_snapshot_until_refreshed():
    model, x = _trained(ARCHITECTURES["bn_after_linear_dense"]())
    plan = model.compile_for_inference()
    old = plan(x)
    model.set_weights([w * 1.5 for w in model.get_weights()])
    numpy.testing.assert_array_equal(plan(x), old)
    plan.refresh()
    numpy.testing.assert_allclose(plan(x), model.predict(x), rtol=1e-5, atol=1e-5)
    assert not numpy.allclose(plan(x), old)


def test_plan_checks_its_input():
    model, _ = _trained(ARCHITECTURES["bn_after_linear_dense"]())
    plan = model.compile_for_inference()
    assert isinstance(plan, InferencePlan)
    with pytest.raises(ValueError, match="features"):
        plan(numpy.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match="NaN"):
        plan(numpy.full((2, 8), numpy.nan, "float32"))


@pytest.mark.parametrize("kwargs", [{"center": False}, {"scale": False},
                                    {"center": False, "scale": False}])
def test_plan_folds_batch_norm_without_gamma_or_beta(kwargs):
    set_random_seed(4)
    model = fastnn.Sequential([layers.Dense(6, input_shape=(4,)),
                               layers.BatchNormalization(**kwargs), layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    x = numpy.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    model.fit(x, numpy.zeros((32, 3), "float32"), epochs=2, verbose=0)
    plan = model.compile_for_inference()
    numpy.testing.assert_allclose(plan(x), model.predict(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="batch_size"):
        plan.predict(x, batch_size=0)
