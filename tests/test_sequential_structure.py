"""Sequential structure as in Keras' guide: built at construction when the input shape is
known, add after summary, pop, get_layer, weights as variables, activity regularizers."""
import numpy as np
import pytest

import fastnn
from fastnn import layers, regularizers

RNG = np.random.default_rng(1)


@pytest.mark.parametrize("first", [
    lambda: [fastnn.Input((4,)), layers.Dense(3)],
    lambda: [layers.Dense(3, input_shape=(4,))],
    lambda: [layers.Dense(3, input_dim=4)]], ids=["Input", "input_shape", "input_dim"])
def test_built_at_construction(first):
    model = fastnn.Sequential(first() + [layers.Dense(2)])
    assert model.built
    assert [w.shape for w in model.get_weights()] == [(4, 3), (3,), (3, 2), (2,)]
    assert model.layers[0].kernel.shape == (4, 3)


def test_no_input_shape_stays_lazy():
    model = fastnn.Sequential([layers.Dense(3)])
    assert not model.built and model.weights == []
    assert model.predict(np.ones((2, 5), "float32")).shape == (2, 3)


def test_add_after_summary_and_count_params():
    model = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(3)])
    model.summary(print_fn=lambda s: None)
    assert model.count_params() == 15
    model.add(layers.Dense(2))
    assert model.count_params() == 15 + 8
    assert model.output_shape == (None, 2)


def test_add_after_training_keeps_the_trained_weights():
    model = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(RNG.normal(size=(8, 4)), RNG.normal(size=(8, 3)), verbose=0)
    trained = model.get_weights()
    model.add(layers.Dense(1))
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), trained))
    model.fit(RNG.normal(size=(8, 4)), RNG.normal(size=(8, 1)), verbose=0)


def test_a_layer_that_does_not_fit_is_refused_and_the_model_kept():
    model = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(3)])
    before = model.get_weights()
    bad = layers.Dense(2, input_shape=(4,))
    bad.build((7,))
    with pytest.raises(ValueError, match="built for input"):
        model.add(bad)
    assert len(model.layers) == 1 and model.built
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    assert model.predict(np.ones((1, 4), "float32")).shape == (1, 3)


def test_duplicate_layer_names_are_refused():
    model = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(3, name="a")])
    with pytest.raises(ValueError, match="unique"):
        model.add(layers.Dense(2, name="a"))
    assert len(model.layers) == 1


def test_pop_and_get_layer():
    model = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(3, name="hidden"),
                               layers.Dense(2, name="head")])
    assert model.get_layer("head") is model.get_layer(index=1) is model.get_layer(index=-1)
    assert model.pop().name == "head"
    assert model.output_shape == (None, 3) and len(model.weights) == 2
    model.pop()
    assert not model.built
    with pytest.raises(TypeError):
        model.pop()
    with pytest.raises(ValueError, match="No layer named"):
        model.get_layer("head")
    with pytest.raises(ValueError, match="out of range"):
        model.get_layer(index=3)


def test_default_model_names_are_unique():
    assert fastnn.Sequential().name != fastnn.Sequential().name


def test_weights_behave_as_variables():
    model = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(3)])
    kernel = model.weights[0]
    assert (kernel.name, kernel.path, kernel.dtype, kernel.shape, kernel.trainable) == (
        "kernel", model.layers[0].name + "/kernel", "float32", (4, 3), True)
    assert np.asarray(kernel).shape == (4, 3) and kernel.numpy().dtype == np.float32
    kernel.assign(np.full((4, 3), 0.5))
    np.testing.assert_array_equal(model.get_weights()[0], np.full((4, 3), 0.5, "float32"))
    kernel.assign_add(np.ones((4, 3)))
    assert model.predict(np.ones((1, 4), "float32"))[0, 0] == pytest.approx(6.0)
    with pytest.raises(ValueError, match="shape"):
        kernel.assign(np.ones((3, 4)))
    with pytest.raises(ValueError, match="finite"):
        kernel.assign(np.full((4, 3), np.nan))
    np.testing.assert_array_equal(kernel.numpy(), np.full((4, 3), 1.5, "float32"))


def test_assign_reaches_the_flat_buffer_the_optimizer_updates():
    model = fastnn.Sequential([fastnn.Input((2,)), layers.Dense(1, use_bias=False)])
    model.compile(optimizer=fastnn.optimizers.SGD(0.0), loss="mse")
    model.weights[0].assign(np.array([[2.0], [3.0]]))
    model.train_on_batch(np.ones((1, 2)), np.zeros((1, 1)))
    np.testing.assert_array_equal(model.get_weights()[0], [[2.0], [3.0]])


def test_activity_regularizer_gradient_matches_finite_differences():
    """The training step's gradient (read off one SGD step with learning rate 1) against
    central differences of the evaluated loss, which includes the activity penalty."""
    f64 = {"dtype": "float64"}
    model = fastnn.Sequential([
        fastnn.Input((3,), dtype="float64"),
        layers.Dense(4, activation="tanh", activity_regularizer=regularizers.L1L2(0.05, 0.1),
                     **f64),
        layers.Dense(2, activity_regularizer="l2", **f64)])
    model.compile(optimizer=fastnn.optimizers.SGD(1.0), loss="mse")
    x = RNG.uniform(0.2, 1.0, size=(5, 3))
    y = RNG.normal(size=(5, 2))
    start = model.get_weights()
    model.train_on_batch(x, y)
    analytic = [a - b for a, b in zip(start, model.get_weights())]
    model.set_weights(start)
    eps = 1e-6
    for i, w in enumerate(start):
        numeric = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            for sign in (1, -1):
                shifted = [v.copy() for v in start]
                shifted[i][idx] += sign * eps
                model.set_weights(shifted)
                numeric[idx] += sign * model.test_on_batch(x, y) / (2 * eps)
        np.testing.assert_allclose(analytic[i], numeric, rtol=1e-5, atol=1e-8)


def test_activity_penalty_is_in_the_reported_loss():
    model = fastnn.Sequential([fastnn.Input((2,)), layers.Dense(
        1, use_bias=False, kernel_initializer="ones", activity_regularizer=regularizers.l1(0.5))])
    model.compile(optimizer="sgd", loss="mse")
    x = np.array([[1.0, 2.0], [3.0, -1.0]], "float32")
    outputs = x.sum(axis=1)  # 3 and 2
    want = np.mean(outputs ** 2) + 0.5 * np.abs(outputs).sum() / 2
    assert model.evaluate(x, np.zeros((2, 1)), verbose=0) == pytest.approx(want, rel=1e-6)


def test_model_base_class_and_functional_api_error():
    model = fastnn.Sequential([fastnn.Input((2,)), layers.Dense(1)])
    assert isinstance(model, fastnn.Model) and fastnn.models.Model is fastnn.Model
    with pytest.raises(NotImplementedError, match="Sequential"):
        fastnn.Model(inputs=None, outputs=None)


def test_from_config_to_json_and_clone_make_fresh_models():
    model = fastnn.Sequential([fastnn.Input((3,)), layers.Dense(4, activation="relu"),
                               layers.Dropout(0.2), layers.Dense(2)], name="net")
    for clone in (fastnn.Sequential.from_config(model.get_config()),
                  fastnn.models.model_from_json(model.to_json()),
                  fastnn.models.clone_model(model)):
        assert clone is not model and clone.built and clone.name == "net"
        assert [type(layer) for layer in clone.layers] == [type(layer) for layer in model.layers]
        assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
        assert all(a is not b for a, b in zip(clone.weights, model.weights))


@pytest.mark.parametrize("text", ["not json", '{"class_name": "os.system", "config": {}}',
                                  '{"class_name": "Sequential", "config": {"layers": '
                                  '[{"class_name": "Eval", "config": {}}]}}'])
def test_model_from_json_refuses_what_it_cannot_read(text):
    with pytest.raises(ValueError):
        fastnn.models.model_from_json(text)


def test_dense_maps_the_last_axis_of_sequences_and_maxout_refuses_them():
    model = fastnn.Sequential([fastnn.Input((4, 3)), layers.Dense(5, activation="relu"),
                               layers.Flatten(), layers.Dense(2)])
    assert model.layers[0].output_shape == (4, 5) and model.output_shape == (None, 2)
    x = RNG.normal(size=(6, 4, 3)).astype("float32")
    per_step = np.maximum(x @ model.layers[0].get_weights()[0] + model.layers[0].get_weights()[1],
                          0)
    np.testing.assert_allclose(layers.Flatten()(model.layers[0](x)), per_step.reshape(6, -1),
                               rtol=1e-5, atol=1e-6)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, RNG.normal(size=(6, 2)), verbose=0)
    np.testing.assert_allclose(model.compile_for_inference().predict(x), model.predict(x),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="Flatten"):
        fastnn.Sequential([fastnn.Input((4, 3)), layers.Maxout(2)])
