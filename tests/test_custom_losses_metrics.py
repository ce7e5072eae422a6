"""Losses and metrics written by users: a function of (y_true, y_pred), a Loss subclass with
``call``, a metric function, a Metric with ``add_variable``. Loss gradients equal finite
differences in float64 on "numpy" and "cpu"; values match real Keras."""
import numpy as np
import pytest

import fastnn
from fastnn import layers, losses, metrics, ops, utils
from fastnn.backend import get_ops, use_backend

BACKENDS = ["numpy", "cpu"]


def my_mse(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


def log_cosh(y_true, y_pred):
    d = y_pred - y_true
    return ops.mean(d + ops.softplus(-2.0 * d) - np.log(2.0), axis=-1)


class FocalLike(losses.Loss):
    """A Loss subclass: a softmax cross-entropy weighted by (1 - p)**gamma."""

    def __init__(self, gamma=2.0, **kwargs):
        super().__init__(**kwargs)
        self.gamma = gamma

    def call(self, y_true, y_pred):
        p = ops.softmax(y_pred)
        ce = -ops.sum(y_true * ops.log_softmax(y_pred), axis=-1)
        p_true = ops.sum(y_true * p, axis=-1)
        return ce * (1.0 - p_true) ** self.gamma


def _model():
    return fastnn.Sequential([fastnn.Input(shape=(4,)),
                              layers.Dense(5, activation="tanh", dtype="float64"),
                              layers.Dense(3, dtype="float64")])


def _data(n=6):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 4))
    y = np.eye(3)[rng.integers(0, 3, size=n)]
    return x, y


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loss", [my_mse, log_cosh, FocalLike(), FocalLike(reduction="sum"),
                                  lambda t, p: ops.sparse_categorical_crossentropy(
                                      ops.argmax(t, axis=-1), p, from_logits=True)],
                         ids=["function", "log_cosh", "subclass", "subclass_sum", "sparse"])
def test_custom_loss_gradients_equal_numerical_gradients(loss, backend):
    with use_backend(backend):
        model = _model()
        x, y = _data()
        report = utils.gradient_check(model, x, y, loss=loss)
        assert report.max_error < 1e-7, str(report)


@pytest.mark.parametrize("backend", BACKENDS)
def test_loss_function_equals_the_builtin_loss_with_sample_weights(backend):
    rng = np.random.default_rng(4)
    pred, true = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    w = rng.uniform(0.1, 2.0, size=5)
    with use_backend(backend):
        o = get_ops()
        g_custom, g_builtin = np.empty_like(pred), np.empty_like(pred)
        v_custom = losses.get(my_mse).value_and_grad(o, pred, true, g_custom, w)
        v_builtin = losses.MeanSquaredError().value_and_grad(o, pred, true, g_builtin, w)
    assert v_custom == pytest.approx(v_builtin, rel=1e-12)
    np.testing.assert_allclose(g_custom, g_builtin, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_with_custom_loss_and_metrics(backend):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 4)).astype("float32")
    y = (x[:, :1] - 2 * x[:, 1:2]).astype("float32")

    def my_mae(y_true, y_pred):
        return ops.mean(ops.abs(y_true - y_pred), axis=-1)

    with use_backend(backend):
        fastnn.utils.set_random_seed(1)
        model = fastnn.Sequential([fastnn.Input(shape=(4,)), layers.Dense(8, activation="relu"),
                                   layers.Dense(1)])
        model.compile(optimizer=fastnn.optimizers.Adam(0.02), loss=my_mse,
                      metrics=[my_mae, "mae"])
        history = model.fit(x, y, epochs=20, batch_size=32, verbose=0)
    logs = history.history
    assert logs["loss"][-1] < 0.3 * logs["loss"][0]
    np.testing.assert_allclose(logs["my_mae"], logs["mae"], rtol=1e-5)
    assert model.loss.name == "my_mse"


class BinaryTruePositives(metrics.Metric):
    """The Keras guide's stateful metric, import changed only."""

    def __init__(self, name="binary_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), initializer="zeros", name="tp")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "bool")
        y_pred = ops.cast(y_pred > 0.5, "bool")
        values = ops.logical_and(ops.equal(y_true, True), ops.equal(y_pred, True))
        values = ops.cast(values, "float32")
        if sample_weight is not None:
            sample_weight = ops.cast(sample_weight, "float32")
            sample_weight = ops.broadcast_to(sample_weight, ops.shape(values))
            values = ops.multiply(values, sample_weight)
        self.true_positives.assign_add(ops.sum(values))

    def result(self):
        return self.true_positives

    def reset_state(self):
        self.true_positives.assign(0)


def test_stateful_metric_in_fit_resets_every_epoch():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = fastnn.Sequential([fastnn.Input(shape=(3,)), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy",
                  metrics=[BinaryTruePositives(), "true_positives"])
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    np.testing.assert_array_equal(history.history["binary_true_positives"],
                                  history.history["true_positives"])
    m = BinaryTruePositives()
    m.update_state(np.array([1, 1, 0]), np.array([0.9, 0.2, 0.8]))
    assert float(m.result()) == 1.0
    m.reset_state()
    assert float(m.result()) == 0.0


def test_values_match_keras():
    import os
    os.environ["KERAS_BACKEND"] = "jax"
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("keras was imported with another backend")
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(6, 3)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 6)]
    w = rng.uniform(0.2, 1.5, 6).astype("float32")

    class KerasFocal(keras.losses.Loss):
        def call(self, y_true, y_pred):
            p = keras.ops.softmax(y_pred)
            ce = -keras.ops.sum(y_true * keras.ops.log_softmax(y_pred), axis=-1)
            return ce * (1.0 - keras.ops.sum(y_true * p, axis=-1)) ** 2.0

    for reduction in ("sum_over_batch_size", "sum"):
        ours = FocalLike(reduction=reduction)(y, logits, sample_weight=w)
        theirs = KerasFocal(reduction=reduction)(y, logits, sample_weight=w)
        assert float(ours) == pytest.approx(float(theirs), rel=1e-5)
    ours = losses.get(log_cosh)(y, logits)
    theirs = keras.losses.LogCosh()(y, logits)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)
    # A one-column model: y (n,) against predictions (n, 1), as Keras squeezes/expands.
    col = logits[:, :1]
    target = y[:, 0]
    ours = losses.get(my_mse)(target, col)
    theirs = keras.losses.MeanSquaredError()(target, col)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-6)
    m_ours, m_theirs = BinaryTruePositives(), keras.metrics.TruePositives()
    probs = 1 / (1 + np.exp(-logits[:, :1]))
    m_ours.update_state(y[:, :1], probs, w[:, None])
    m_theirs.update_state(y[:, :1], probs, w[:, None])
    assert float(m_ours.result()) == pytest.approx(float(m_theirs.result()), rel=1e-6)


def test_compile_refuses_what_is_not_a_loss():
    model = _model()
    with pytest.raises(ValueError, match="Cannot use 3"):
        model.compile(loss=3)
    with pytest.raises(ValueError, match="reduction"):
        FocalLike(reduction="median")
