"""Layers written as Keras users write them (``build`` + ``call`` with ``fastnn.ops``, and
``Lambda``) train next to built-in layers: gradients equal finite differences in float64
on the "numpy" and "cpu" backends, inference records nothing, and one SGD step matches
real Keras."""
import numpy as np
import pytest

import fastnn
from fastnn import layers, ops, utils
from fastnn.backend import use_backend
from fastnn.ops import Tensor

BACKENDS = ["numpy", "cpu"]


class Linear(fastnn.layers.Layer):
    """The Keras guide's first custom layer, import changed only."""

    def __init__(self, units=32, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal",
                                 trainable=True)

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b


class GatedResidual(fastnn.layers.Layer):
    """Uses a weight twice, broadcasting, an activation, a reduction and ``training``."""

    def build(self, input_shape):
        d = input_shape[-1]
        self.gate = self.add_weight(shape=(d,), initializer="ones", name="gate")
        self.scale = self.add_weight(shape=(1, d), initializer="random_normal", name="scale")

    def call(self, inputs, training=None):
        g = ops.sigmoid(self.gate * inputs)
        centered = inputs - ops.mean(inputs, axis=-1, keepdims=True)
        return g * ops.tanh(centered * self.scale) + (1 - g) * inputs + self.gate


def _model(custom, dtype="float64"):
    return fastnn.Sequential([
        fastnn.Input(shape=(5,)),
        layers.Dense(6, activation="tanh", dtype=dtype),
        custom,
        layers.Dense(3, dtype=dtype)])


def _data(n=7):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 5)), rng.normal(size=(n, 3))


CUSTOM = {
    "linear": lambda: Linear(4, dtype="float64"),
    "gated": lambda: GatedResidual(dtype="float64"),
    "lambda": lambda: layers.Lambda(lambda x: ops.softplus(x) * ops.sin(x) + x ** 2,
                                    dtype="float64"),
    "lambda_reshape": lambda: layers.Lambda(
        lambda x: ops.reshape(ops.stack([x, ops.square(x)], axis=-1), (-1, 12)),
        dtype="float64"),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CUSTOM))
def test_custom_layer_gradients_equal_numerical_gradients(name, backend):
    with use_backend(backend):
        model = _model(CUSTOM[name]())
        x, y = _data()
        report = utils.gradient_check(model, x)
        assert report.max_error < 1e-7, str(report)
        assert any(key.startswith(model.layers[1].name) for key in report.errors) or \
            not model.layers[1].weights
        report = utils.gradient_check(model, x, y, loss="mse")
        assert report.max_error < 1e-7, str(report)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_check_of_a_custom_layer_alone(backend):
    with use_backend(backend):
        layer = GatedResidual(dtype="float64")
        report = utils.gradient_check(layer, np.random.default_rng(1).normal(size=(4, 3)))
        assert set(report.errors) == {"x", "gated_residual/gate", "gated_residual/scale"} or \
            len(report.errors) == 3
        assert report.max_error < 1e-7, str(report)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_check_in_inference_mode_replays_the_call(backend):
    with use_backend(backend):
        model = _model(CUSTOM["gated"]())
        report = utils.gradient_check(model, _data()[0], training=False)
        assert report.max_error < 1e-7, str(report)


def test_a_wrong_vjp_is_caught_by_the_gradient_check():
    class Wrong(fastnn.layers.Layer):
        def call(self, inputs):
            return ops.stop_gradient(ops.exp(inputs)) * inputs  # hides a dependence
    model = _model(Wrong(dtype="float64"))
    assert utils.gradient_check(model, _data()[0]).max_error > 1e-2


@pytest.mark.parametrize("backend", BACKENDS)
def test_custom_layers_train_next_to_builtin_layers(backend):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(256, 5)).astype("float32")
    y = np.sin(x[:, :3]) + 0.1 * x[:, 3:4]
    with use_backend(backend):
        fastnn.utils.set_random_seed(0)
        model = fastnn.Sequential([fastnn.Input(shape=(5,)),
                                   layers.Dense(16, activation="relu"),
                                   Linear(16), layers.Lambda(lambda t: ops.relu(t)),
                                   GatedResidual(), layers.Dense(3)])
        model.compile(optimizer="adam", loss="mse")
        before = model.evaluate(x, y, verbose=0)
        model.fit(x, y, epochs=15, batch_size=32, verbose=0)
        after = model.evaluate(x, y, verbose=0)
        assert after < 0.5 * before
        assert model.layers[1].output_shape == (16,)
        assert model.predict(x[:4]).shape == (4, 3)


def test_inference_records_nothing():
    seen = []

    class Spy(fastnn.layers.Layer):
        def call(self, inputs):
            seen.append(type(inputs))
            return inputs * 2.0

    model = _model(Spy(dtype="float64"))
    x, y = _data()
    model.predict(x)
    _, cache = model.layers[1].forward(x, training=False)
    assert cache is x  # only the input, kept for a replay; no tape
    assert Tensor not in seen
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(x, y)
    assert seen[-1] is Tensor


def test_builtin_layers_keep_their_own_backward(monkeypatch):
    from fastnn.layers.core import Dense
    calls = []
    original = Dense.backward

    def spy(self, dy, cache, need_dx=True, **kwargs):
        calls.append(self.name)
        return original(self, dy, cache, need_dx, **kwargs)

    monkeypatch.setattr(Dense, "backward", spy)
    model = _model(Linear(4, dtype="float64"))
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(*_data())
    assert len(calls) == 2


def test_weights_are_keras_variables_in_expressions():
    layer = Linear(2, name="linear")
    layer.build((3,))
    x = np.ones((1, 3), "float32")
    np.testing.assert_allclose(x @ layer.w + layer.b, layer(x), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(layer.w), layer.w.numpy())
    assert [w.name for w in layer.weights] == ["variable", "variable_1"]  # Keras: short names
    assert [w.path for w in layer.weights] == ["linear/variable", "linear/variable_1"]


def test_lambda_arguments_and_output_shape():
    layer = layers.Lambda(lambda x, k: x[:, :k], arguments={"k": 2}, output_shape=(2,))
    layer.build((5,))
    assert layer.output_shape == (2,)
    np.testing.assert_array_equal(layer(np.arange(10.0).reshape(2, 5)), [[0, 1], [5, 6]])
    with pytest.raises(TypeError, match="callable"):
        layers.Lambda(3)
    config = layer.get_config()
    assert config["function"].endswith("<lambda>")
    with pytest.raises(ValueError, match="Python code"):
        layers.Lambda.from_config(config)


def test_a_layer_without_call_or_forward_says_so():
    class Empty(fastnn.layers.Layer):
        pass
    with pytest.raises(NotImplementedError, match="call"):
        Empty()(np.ones((2, 3), "float32"))


def test_one_sgd_step_matches_keras():
    pytest.importorskip("jax")
    import os
    os.environ["KERAS_BACKEND"] = "jax"
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("keras was imported with another backend")

    def build(lib, lin_cls):
        return lib.Sequential([lib.Input(shape=(5,)), lib.layers.Dense(4, activation="tanh"),
                               lin_cls(3),
                               lib.layers.Lambda(lambda t: lib.ops.softplus(t) * 2.0),
                               lib.layers.Dense(2)])

    class KerasLinear(keras.layers.Layer):
        def __init__(self, units):
            super().__init__()
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                     initializer="random_normal")
            self.b = self.add_weight(shape=(self.units,), initializer="random_normal")

        def call(self, inputs):
            return keras.ops.matmul(inputs, self.w) + self.b

    def loss_for(lib):
        def my_loss(y_true, y_pred):
            return lib.ops.mean(lib.ops.square(y_true - y_pred), axis=-1)
        return my_loss

    ours = build(fastnn, Linear)
    theirs = build(keras, KerasLinear)
    ours.build((None, 5))
    theirs.set_weights(ours.get_weights())
    x, y = (a.astype("float32") for a in _data(8))
    y = y[:, :2]
    ours.compile(optimizer=fastnn.optimizers.SGD(0.1), loss=loss_for(fastnn))
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss_for(keras))
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)
    loss_ours = ours.train_on_batch(x, y)
    loss_theirs = theirs.train_on_batch(x, y)
    np.testing.assert_allclose(loss_ours, float(loss_theirs), rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-6)


class MLPBlock(fastnn.layers.Layer):
    """The Keras guide's nested layers, import changed only (and Dense inside)."""

    def __init__(self, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.act = fastnn.activations.get(activation)
        self.linear_1 = Linear(8, dtype=self.dtype)
        self.linear_2 = Linear(8, dtype=self.dtype)
        self.dense = layers.Dense(3, activation="tanh", dtype=self.dtype)

    def call(self, inputs):
        x = self.linear_1(inputs)
        x = self.act(x)
        x = self.linear_2(x)
        x = fastnn.activations.relu(x * 0.0 + 1.0) * self.act(x)
        return self.dense(x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nested_layers_train_and_check(backend):
    with use_backend(backend):
        block = MLPBlock("softplus", dtype="float64")  # smooth: no kink to straddle
        model = _model(block)
        x, y = _data()
        report = utils.gradient_check(model, x, y, loss="mse")
        assert report.max_error < 1e-7, str(report)
        assert len(block.weights) == 6 and len(block.trainable_weights) == 6
        assert len(model.weights) == 4 + 6
        names = {w.path for w in block.weights}
        assert any(name.startswith(block.dense.name) for name in names)
        block.trainable = False
        assert block.trainable_weights == [] and len(block.non_trainable_weights) == 6


def test_nested_registered_layer_saves_and_loads(tmp_path):
    @fastnn.saving.register_keras_serializable(package="TestNested")
    class Block(MLPBlock):
        pass

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 5)).astype("float32")
    model = fastnn.Sequential([fastnn.Input(shape=(5,)), Block(), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, rng.normal(size=(32, 2)), epochs=2, verbose=0)
    model.save(tmp_path / "nested.fastnn")
    loaded = fastnn.models.load_model(tmp_path / "nested.fastnn")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_nested_layer_called_twice_accumulates_its_gradients(backend):
    class Twice(fastnn.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(5, activation="tanh", dtype=self.dtype)
            self.linear = Linear(5, dtype=self.dtype)

        def call(self, inputs):
            return self.dense(self.dense(inputs)) + self.linear(self.linear(inputs) * 0.5)

    with use_backend(backend):
        model = fastnn.Sequential([fastnn.Input(shape=(5,)), Twice(dtype="float64")])
        report = utils.gradient_check(model, _data()[0])
        assert report.max_error < 1e-7, str(report)


class ActivityRegularization(fastnn.layers.Layer):
    """The Keras guide's add_loss example, import changed only."""

    def __init__(self, rate=1e-2, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def call(self, inputs):
        self.add_loss(self.rate * ops.mean(ops.square(inputs)))
        return inputs


@pytest.mark.parametrize("backend", BACKENDS)
def test_add_loss_joins_the_loss_and_its_gradient(backend):
    with use_backend(backend):
        model = _model(ActivityRegularization(0.5, dtype="float64"))
        x, y = _data()
        report = utils.gradient_check(model, x, y, loss="mse")
        assert report.max_error < 1e-7, str(report)
        model.compile(optimizer="sgd", loss="mse")
        hidden = model.layers[0](x)
        expected = float(np.mean((model.predict(x) - y) ** 2)) + 0.5 * float(
            np.mean(hidden ** 2))
        assert model.test_on_batch(x, y) == pytest.approx(expected, rel=1e-10)
        assert model.layers[1].losses and float(model.layers[1].losses[0]) > 0


def test_add_loss_outside_call_is_refused():
    with pytest.raises(RuntimeError, match="add_loss"):
        ActivityRegularization().add_loss(1.0)


def test_user_build_and_compute_output_shape_get_keras_shapes():
    seen = []

    class Affine(fastnn.layers.Layer):
        def build(self, input_shape):
            seen.append(input_shape)
            self.scale = self.add_weight(shape=input_shape[1:], initializer="ones")
            super().build(input_shape)

        def call(self, inputs):
            return ops.concatenate([inputs * self.scale, inputs], axis=-1)

        def compute_output_shape(self, input_shape):
            seen.append(input_shape)
            return input_shape[:-1] + (2 * input_shape[-1],)

    model = fastnn.Sequential([fastnn.Input(shape=(3,)), Affine(), layers.Dense(2)])
    model.build()
    assert seen == [(None, 3), (None, 3)]
    assert model.layers[0].weights[0].shape == (3,)
    assert model.layers[0].output_shape == (6,)
    assert model.predict(np.ones((2, 3), "float32")).shape == (2, 2)
