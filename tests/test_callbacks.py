"""Callbacks inside real (small, fast) fits."""
import csv
import io

import numpy
import pytest

import fastnn
from fastnn import callbacks, layers, optimizers
from fastnn.callbacks import CallbackList


def _data(n=120, seed=0):
    rng = numpy.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x @ numpy.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=n)).astype("float32")
    return x, y[:, None]


def _model(lr=0.01, optimizer=None):
    fastnn.utils.set_random_seed(0)
    model = fastnn.Sequential([layers.Dense(6, activation="tanh", input_shape=(4,)),
                               layers.Dense(1)])
    model.compile(optimizer=optimizer or optimizers.SGD(lr), loss="mse", metrics=["mae"])
    return model


def _flat(model):
    return numpy.concatenate([w.ravel() for w in model.get_weights()])


class ScriptedLoss(callbacks.Callback):
    """Overwrites logs[key] with scripted values, to drive monitors deterministically."""

    def __init__(self, values, key="val_loss"):
        super().__init__()
        self.values, self.key = values, key

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


# ----------------------------------------------------------------------------- EarlyStopping
def test_early_stopping_restores_the_best_epochs_weights():
    x, y = _data()
    model = _model()
    val_losses = [5.0, 3.0, 1.0, 2.0, 4.0, 6.0, 7.0, 8.0]
    weights = []
    record = callbacks.LambdaCallback(on_epoch_end=lambda e, logs: weights.append(_flat(model)))
    stop = callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=8, verbose=0,
                        callbacks=[record, ScriptedLoss(val_losses), stop])
    assert len(history.history["loss"]) == 5  # best at epoch 2, two more without improvement
    assert stop.stopped_epoch == 4 and stop.best_epoch == 2 and stop.best == 1.0
    numpy.testing.assert_array_equal(_flat(model), weights[2])


def test_early_stopping_restores_best_weights_when_training_just_ends():
    x, y = _data()
    model = _model()
    weights = []
    record = callbacks.LambdaCallback(on_epoch_end=lambda e, logs: weights.append(_flat(model)))
    stop = callbacks.EarlyStopping(patience=10, restore_best_weights=True)
    model.fit(x, y, epochs=4, verbose=0,
              callbacks=[record, ScriptedLoss([3.0, 1.0, 2.0, 2.5]), stop])
    assert stop.stopped_epoch == 0
    numpy.testing.assert_array_equal(_flat(model), weights[1])


def _run_monitor(cb, values, key="val_loss", metrics=("mae",)):
    x, y = _data(40)
    model = _model()
    model.compile(optimizer=optimizers.SGD(0.01), loss="mse", metrics=list(metrics))
    history = model.fit(x, y, epochs=len(values), verbose=0, callbacks=[ScriptedLoss(values,
                                                                                      key), cb])
    return model, history


def test_early_stopping_min_delta_mode_max_baseline_and_start_epoch():
    stop = callbacks.EarlyStopping(monitor="val_mae", mode="max", min_delta=0.5, patience=1)
    _, history = _run_monitor(stop, [1.0, 1.4, 1.45, 3.0, 3.0], key="val_mae")
    assert len(history.history["loss"]) == 2  # +0.4 is not an improvement with min_delta=0.5
    # Keras 3: epochs that improve but miss the baseline still count towards patience.
    values = [0.9, 0.8, 0.85, 0.85, 0.4]
    _, history = _run_monitor(callbacks.EarlyStopping(patience=2, baseline=0.5), values)
    assert len(history.history["loss"]) == 3
    _, history = _run_monitor(callbacks.EarlyStopping(patience=2), values)
    assert len(history.history["loss"]) == 4
    late = callbacks.EarlyStopping(patience=1, start_from_epoch=3)
    _, history = _run_monitor(late, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert len(history.history["loss"]) == 5


def test_early_stopping_auto_mode_reads_the_metric_direction():
    stop = callbacks.EarlyStopping(monitor="val_precision", patience=1)
    _, history = _run_monitor(stop, [0.1, 0.2, 0.3, 0.1, 0.1], key="val_precision",
                              metrics=("precision",))
    assert len(history.history["loss"]) == 4  # higher is better for precision
    with pytest.raises(ValueError, match="mode"):
        _run_monitor(callbacks.EarlyStopping(monitor="val_thing"), [1.0, 2.0], key="val_thing")
    with pytest.raises(ValueError):
        callbacks.EarlyStopping(mode="maximum")


# ----------------------------------------------------------------------------- ModelCheckpoint
def test_model_checkpoint_best_file_reloads_to_the_same_predictions(tmp_path):
    x, y = _data()
    model = _model(lr=0.05)
    predictions = []
    record = callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: predictions.append(model.predict(x[:10])))
    path = str(tmp_path / "best.fastnn")
    ckpt = callbacks.ModelCheckpoint(path, save_best_only=True)
    val = [4.0, 2.0, 3.0, 5.0]
    model.fit(x, y, epochs=4, verbose=0, callbacks=[record, ScriptedLoss(val), ckpt])
    loaded = fastnn.models.load_model(path)
    numpy.testing.assert_allclose(loaded.predict(x[:10]), predictions[1], rtol=1e-6)
    assert not numpy.allclose(predictions[1], predictions[3])


def test_model_checkpoint_filename_template_and_weights_only(tmp_path):
    x, y = _data()
    model = _model()
    template = str(tmp_path / "ckpt" / "{epoch:02d}-{val_loss:.2f}.weights.fastnn")
    ckpt = callbacks.ModelCheckpoint(template, save_weights_only=True)
    model.fit(x, y, epochs=2, verbose=0, validation_split=0.25, callbacks=[ckpt])
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    losses = model.history.history["val_loss"]
    assert names == [f"{i + 1:02d}-{v:.2f}.weights.fastnn" for i, v in enumerate(losses)]
    other = _model()
    other.load_weights(str(tmp_path / "ckpt" / names[-1]))
    numpy.testing.assert_array_equal(_flat(other), _flat(model))


def test_model_checkpoint_unknown_template_name_is_a_clear_error(tmp_path):
    x, y = _data(40)
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "{val_acc}.fastnn"))
    with pytest.raises(ValueError, match="val_acc"):
        _model().fit(x, y, epochs=1, verbose=0, callbacks=[ckpt])


# ----------------------------------------------------------------------------- learning rate
def test_learning_rate_scheduler_sets_and_logs_the_rate():
    x, y = _data(40)
    model = _model(lr=0.1)
    seen = []
    record = callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: seen.append(model.optimizer.learning_rate))
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr)
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[sched, record])
    assert seen == pytest.approx([0.1, 0.05, 0.025])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])
    one_arg = callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[one_arg])
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.02])
    with pytest.raises(ValueError, match="number"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[callbacks.LearningRateScheduler(lambda e, lr: "fast")])


def test_reduce_lr_on_plateau_lowers_the_rate_with_cooldown_and_floor():
    flat = [1.0] * 7
    # Logged: the rate each epoch ran with. No improvement after epoch 0: reduce after
    # epoch 1, then (Keras 3) the cooldown counts down before the wait counts up again.
    reduce = callbacks.ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2, min_lr=0.003)
    model, history = _run_monitor(reduce, flat)
    assert history.history["learning_rate"] == pytest.approx(
        [0.01, 0.01, 0.005, 0.005, 0.003, 0.003, 0.003])
    assert model.optimizer.learning_rate == pytest.approx(0.003)
    _, history = _run_monitor(callbacks.ReduceLROnPlateau(factor=0.5, patience=1), flat)
    assert history.history["learning_rate"] == pytest.approx(
        [0.01 * 0.5 ** max(e - 1, 0) for e in range(7)])
    _, history = _run_monitor(callbacks.ReduceLROnPlateau(patience=1),
                              [1.0, 0.9, 0.8, 0.7, 0.6])
    assert history.history["learning_rate"] == pytest.approx([0.01] * 5)
    with pytest.raises(ValueError, match="factor"):
        callbacks.ReduceLROnPlateau(factor=1.0)


# ----------------------------------------------------------------------------- CSVLogger
def test_csv_logger_writes_and_appends(tmp_path):
    x, y = _data(60)
    model = _model()
    path = tmp_path / "log.csv"
    history = model.fit(x, y, epochs=2, verbose=0, validation_split=0.25,
                        callbacks=[callbacks.CSVLogger(str(path))])
    rows = list(csv.DictReader(open(path)))
    assert list(rows[0]) == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert [float(r["val_loss"]) for r in rows] == pytest.approx(history.history["val_loss"])
    model.fit(x, y, epochs=1, verbose=0, validation_split=0.25,
              callbacks=[callbacks.CSVLogger(str(path), append=True)])
    text = path.read_text().splitlines()
    assert len(text) == 4 and text.count(text[0]) == 1  # one header, three rows
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(str(path), ";")])
    assert path.read_text().splitlines()[0] == "epoch;loss;mae;val_loss;val_mae"
    assert path.read_text().splitlines()[1].endswith(";NA;NA")


# ----------------------------------------------------------------------------- TerminateOnNaN
def test_terminate_on_nan_stops_a_diverging_fit():
    x, y = _data()
    model = _model(lr=1e6)
    with numpy.errstate(all="ignore"):
        history = model.fit(x, y, epochs=20, verbose=0, batch_size=8,
                            callbacks=[callbacks.TerminateOnNaN()])
    assert len(history.history["loss"]) < 20
    assert not numpy.isfinite(history.history["loss"][-1])


# ----------------------------------------------------------------------------- Lambda / protocol
def test_lambda_callback_calls_its_functions_with_logs():
    x, y = _data(40)
    calls = []
    cb = callbacks.LambdaCallback(
        on_train_begin=lambda logs: calls.append("begin"),
        on_epoch_end=lambda epoch, logs: calls.append(("epoch", epoch, sorted(logs))),
        on_batch_end=lambda batch, logs: calls.append("batch"),
        on_train_end=lambda logs: calls.append("end"))
    _model().fit(x, y, epochs=2, batch_size=20, verbose=0, callbacks=[cb])
    assert calls == ["begin", "batch", "batch", ("epoch", 0, ["loss", "mae"]), "batch",
                     "batch", ("epoch", 1, ["loss", "mae"]), "end"]
    with pytest.raises(TypeError):
        callbacks.LambdaCallback(on_epoch_end=3)


def test_batch_hooks_only_when_some_callback_wants_them():
    epoch_only = callbacks.LambdaCallback(on_epoch_end=lambda e, logs: None)
    assert not CallbackList([epoch_only, callbacks.History()], None, {}).wants_batch_hooks
    assert CallbackList([callbacks.TerminateOnNaN()], None, {}).wants_batch_hooks


# ----------------------------------------------------------------------------- progress output
class FakeStream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def _progress(verbose, tty, steps=4):
    stream = FakeStream(tty)
    bar = callbacks.ProgbarLogger(verbose, stream=stream)
    bar.set_params({"epochs": 2, "steps": steps})
    for epoch in range(2):
        bar.on_epoch_begin(epoch)
        for step in range(steps):
            bar._last_draw = -1.0  # draw every step
            bar.on_train_batch_end(step, {"loss": 1.0 / (step + 1)})
        bar.on_epoch_end(epoch, {"loss": 0.25, "val_loss": 0.5, "learning_rate": 1e-5})
    return stream.getvalue()


def test_progress_bar_redraws_in_place_on_a_terminal():
    out = _progress(1, tty=True)
    assert out.startswith("Epoch 1/2\n")
    assert out.count("\r") == 2 * (4 + 1)  # every step redrawn, then the final line
    assert "ETA" in out and "2/4 [" in out and "loss: 0.5000" in out
    assert "val_loss: 0.5000" in out and "learning_rate: 1.0000e-05" in out


def test_progress_bar_prints_one_finished_bar_per_epoch_elsewhere():
    out = _progress(1, tty=False)
    lines = out.splitlines()
    assert "\r" not in out and "ETA" not in out
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert lines[1].startswith("4/4 [" + "=" * 30 + "]") and "val_loss: 0.5000" in lines[1]


def test_verbose_2_prints_one_line_per_epoch():
    out = _progress(2, tty=True)
    lines = out.splitlines()
    assert len(lines) == 2 and "\r" not in out and "[" not in out
    assert lines[0].startswith("Epoch 1/2 - ") and "loss: 0.2500" in lines[0]


def test_fit_verbose_writes_progress(capsys):
    x, y = _data(40)
    _model().fit(x, y, epochs=2, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].startswith("Epoch 2/2")
