"""A call that fails never changes the model: metrics that cannot work, values that
overflow float32, and arguments of the wrong kind are refused by name, up front."""
import numpy as np
import pytest

import fastnn
from fastnn import layers
from fastnn.utils import set_random_seed


def _model(outputs=3, activation="softmax"):
    set_random_seed(0)
    return fastnn.Sequential([layers.Dense(8, activation="relu", input_shape=(4,)),
                              layers.Dense(outputs, activation=activation)])


def _data(n=16):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype("float32"), rng.integers(0, 3, n)


def _state(model):
    return [w.copy() for w in model.get_weights()], model.optimizer.iterations


def _assert_unchanged(model, state):
    weights, iterations = state
    assert model.optimizer.iterations == iterations
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("call", ["fit", "train_on_batch"])
def test_a_metric_that_cannot_work_fails_before_the_optimizer_steps(call):
    """An unbuilt model cannot check its metrics at compile; the first step checks them
    before anything changes (the build from x is undone too)."""
    set_random_seed(0)
    model = fastnn.Sequential([layers.Dense(8, activation="relu"),
                               layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["mse"])
    x, y = _data()
    with pytest.raises(ValueError, match="Metric 'mse' cannot be computed for loss "
                                         "SparseCategoricalCrossentropy"):
        if call == "fit":
            model.fit(x, y, epochs=1, verbose=0)
        else:
            model.train_on_batch(x, y)
    assert model.optimizer.iterations == 0
    assert not model.built


def test_a_built_model_checks_metrics_at_compile_and_keeps_its_old_compile():
    model = _model()
    model.build()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    with pytest.raises(ValueError, match="Metric 'mse'"):
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["mse"])
    assert model.metrics_names == ["loss", "accuracy"]
    assert type(model.optimizer).__name__ == "Adam"
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)


def test_compatible_metrics_still_compile():
    model = _model()
    model.build()
    model.compile("adam", "categorical_crossentropy",
                  metrics=["accuracy", "mse", "mae", fastnn.metrics.Precision()])
    x, y = _data()
    logs = model.fit(x, fastnn.utils.to_categorical(y, 3), epochs=1, verbose=0).history
    assert set(logs) == {"loss", "accuracy", "mse", "mae", "precision"}


@pytest.mark.parametrize("where", ["x", "y", "sample_weight", "validation x"])
def test_float64_beyond_float32_range_is_refused_in_fit(where):
    model = _model(outputs=1, activation=None)
    model.compile("sgd", "mse")
    model.build()
    model.optimizer.build(model._store)
    state = _state(model)
    x, y = _data()
    x, y, sw = x.astype("float64"), y.astype("float64"), np.ones(len(y))
    val = (x[:4].copy(), y[:4])
    if where == "x":
        x[3, 1] = 1e39
    elif where == "y":
        y[2] = -1e39
    elif where == "sample_weight":
        sw[0] = 1e39
    else:
        val[0][0, 0] = 1e39
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.fit(x, y, sample_weight=sw, validation_data=val, epochs=1, verbose=0)
    _assert_unchanged(model, state)


def test_float64_beyond_float32_range_is_refused_in_evaluate_and_predict():
    model = _model()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = _data(64)
    x = x.astype("float64")
    x[40, 0] = 1e39
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.evaluate(x, y, verbose=0)
    for predict in (model.predict, model, model.predict_on_batch,
                    lambda a: model.predict(a, batch_size=8)):
        with pytest.raises(ValueError, match="NaN or infinite"):
            predict(x)


def test_set_weights_refuses_values_that_overflow_the_weight_dtype():
    model = _model()
    model.build()
    before = [w.copy() for w in model.get_weights()]
    weights = [w.astype("float64") for w in before]
    weights[0][0, 0] = 1e39
    with pytest.raises(ValueError, match="finite"):
        model.set_weights(weights)
    with pytest.raises(ValueError, match="finite"):
        model.layers[0].set_weights(weights[:2])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"callbacks": 5}, TypeError, "callbacks must be a list"),
    ({"callbacks": [object()]}, TypeError, r"callbacks\[0\] is not a callback"),
    ({"verbose": "loud"}, ValueError, "verbose must be one of 'auto', 0, 1, 2, got 'loud'"),
    ({"verbose": 7}, ValueError, "verbose must be one of"),
])
def test_fit_arguments_of_the_wrong_kind_are_named(kwargs, exc, match):
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.build()
    model.optimizer.build(model._store)
    state = _state(model)
    x, y = _data()
    with pytest.raises(exc, match=match):
        model.fit(x, y, epochs=1, **kwargs)
    _assert_unchanged(model, state)


def test_compile_metrics_of_the_wrong_kind_are_named():
    model = _model()
    with pytest.raises(TypeError, match="metrics must be a list of metric names or Metric "
                                        "objects, got 5"):
        model.compile("adam", "sparse_categorical_crossentropy", metrics=5)
    assert model.loss is None


def test_duck_typed_callbacks_and_verbose_values_still_work():
    class Recorder:
        def __init__(self):
            self.epochs = []

        def set_model(self, model):
            pass

        def set_params(self, params):
            pass

        def __getattr__(self, hook):  # every other hook does nothing
            return lambda *args: None

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append(epoch)

        def on_train_begin(self, logs=None):
            pass

    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = _data()
    recorder = Recorder()
    model.fit(x, y, epochs=2, verbose=0, callbacks=(recorder,))
    assert recorder.epochs == [0, 1]
    for verbose in ("auto", 0, 2, np.int64(0)):
        model.fit(x, y, epochs=1, verbose=verbose)


def test_a_user_loss_gets_targets_checked_after_the_cast():
    """float64 targets beyond float32's range become inf in the cast: refused by name."""
    def l2(y_true, y_pred):
        return fastnn.ops.mean(fastnn.ops.square(y_true - y_pred), axis=-1)

    model = _model(activation=None)
    model.compile("sgd", loss=l2)
    x = np.ones((4, 4), "float32")
    y = np.full((4, 3), 1e39)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.fit(x, y, epochs=1, verbose=0)
