"""Keras' loop arguments: steps, validation options, evaluate/predict callbacks, hook
aliases, weighted metrics, loss weights and compile's execution options."""
import numpy as np
import pytest

import fastnn
from fastnn import callbacks, layers

RNG = np.random.default_rng(2)
X = RNG.normal(size=(10, 3)).astype("float32")
Y = RNG.normal(size=(10, 2)).astype("float32")


def model(**compile_kwargs):
    m = fastnn.Sequential([fastnn.Input((3,)), layers.Dense(2, kernel_initializer="ones")])
    m.compile(optimizer=fastnn.optimizers.SGD(0.01), loss="mse", metrics=["mae"],
              **compile_kwargs)
    return m


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            return lambda *args, **kwargs: self.events.append(name)
        return super().__getattribute__(name)


def test_steps_per_epoch_runs_on_through_the_data():
    rec = Recorder()
    h = model().fit(X, Y, batch_size=4, epochs=3, steps_per_epoch=2, shuffle=False,
                    verbose=0, callbacks=[rec])
    assert h.params["steps"] == 2 and rec.events.count("on_train_batch_end") == 6


def test_validation_freq_and_steps():
    h = model().fit(X, Y, epochs=4, validation_data=(X, Y), validation_freq=2, verbose=0)
    assert len(h.history["loss"]) == 4 and len(h.history["val_loss"]) == 2
    h = model().fit(X, Y, epochs=3, validation_data=(X, Y), validation_freq=[1, 3], verbose=0)
    assert len(h.history["val_loss"]) == 2
    rec = Recorder()
    model().fit(X, Y, batch_size=10, epochs=1, validation_data=(X, Y), validation_steps=2,
                validation_batch_size=3, verbose=0, callbacks=[rec])
    assert rec.events.count("on_test_batch_end") == 2
    with pytest.raises(ValueError, match="validation_freq"):
        model().fit(X, Y, validation_data=(X, Y), validation_freq=0, verbose=0)


def test_evaluate_steps_and_hooks():
    m = model()
    first = m.evaluate(X[:4], Y[:4], verbose=0)
    rec = Recorder()
    assert m.evaluate(X, Y, batch_size=4, steps=1, verbose=0, callbacks=[rec]) == \
        pytest.approx(first)
    assert rec.events[0] == "on_test_begin" and rec.events[-1] == "on_test_end"
    assert rec.events.count("on_test_batch_begin") == 1


def test_predict_steps_and_hooks():
    rec = Recorder()
    out = model().predict(X, batch_size=4, steps=2, callbacks=[rec])
    assert out.shape == (8, 2)
    assert rec.events == ["on_predict_begin"] + [
        "on_predict_batch_begin", "on_predict_batch_end"] * 2 + ["on_predict_end"]
    np.testing.assert_allclose(out, model().predict(X[:8]), rtol=1e-6)


def test_batch_aliases():
    class Alias(callbacks.Callback):
        seen = 0

        def on_batch_end(self, batch, logs=None):
            Alias.seen += 1
    model().fit(X, Y, batch_size=5, epochs=1, verbose=0, callbacks=[Alias()])
    assert Alias.seen == 2


def test_metrics_ignore_sample_weight_and_weighted_metrics_use_it():
    w = np.linspace(0, 2, 10).astype("float32")
    logs = model(weighted_metrics=["mae"]).evaluate(X, Y, sample_weight=w, verbose=0,
                                                    return_dict=True)
    err = np.abs(X @ np.ones((3, 2)) - Y).mean(axis=1)
    assert logs["mae"] == pytest.approx(err.mean(), rel=1e-5)
    assert logs["weighted_mae"] == pytest.approx((err * w).sum() / w.sum(), rel=1e-5)


def test_loss_weights_scale_loss_and_gradient():
    plain, double = model(), model(loss_weights=2.0)
    assert double.evaluate(X, Y, verbose=0)[0] == pytest.approx(
        2 * plain.evaluate(X, Y, verbose=0)[0], rel=1e-6)
    before = plain.get_weights()[0]
    plain.train_on_batch(X, Y)
    double.train_on_batch(X, Y)
    np.testing.assert_allclose(double.get_weights()[0] - before,
                               2 * (plain.get_weights()[0] - before), rtol=1e-4)
    with pytest.raises(ValueError, match="loss_weights"):
        model(loss_weights=[1.0, 2.0])


def test_execution_options_are_accepted_and_unknown_ones_refused():
    m = model(run_eagerly=True, jit_compile=False, steps_per_execution=4)
    assert m.compiled
    with pytest.raises(TypeError, match="unexpected"):
        model(run_eagerli=True)
    assert not fastnn.Sequential([layers.Dense(1)]).compiled


def test_evaluate_prints_its_result_by_default(capsys):
    model().evaluate(X, Y)
    out = capsys.readouterr().out
    assert "loss:" in out and "mae:" in out
    model().evaluate(X, Y, verbose=0)
    assert capsys.readouterr().out == ""


def test_two_metrics_with_one_name_log_separately():
    m = fastnn.Sequential([fastnn.Input((3,)), layers.Dense(1, activation="sigmoid")])
    m.compile(optimizer="sgd", loss="binary_crossentropy",
              metrics=[fastnn.metrics.Precision(), fastnn.metrics.Precision(thresholds=0.9)],
              weighted_metrics=[fastnn.metrics.Precision()])
    logs = m.evaluate(X, (X[:, :1] > 0).astype("float32"), verbose=0, return_dict=True)
    assert list(logs) == ["loss", "precision", "precision_1", "weighted_precision"]
