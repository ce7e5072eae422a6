"""compile / fit / evaluate / predict against Keras: logs, history, callback hooks,
return types, arguments and default output."""
import functools

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import fastnn  # noqa: E402
from compat_marks import assert_close, deliberate  # noqa: E402

RNG = np.random.default_rng(5)
X = RNG.normal(size=(8, 3)).astype("float32")
Y = RNG.normal(size=(8, 2)).astype("float32")
KERNEL = RNG.normal(size=(3, 2)).astype("float32")
BIAS = np.array([0.1, -0.2], "float32")
HOOKS = ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
         "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
         "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
         "on_predict_batch_begin", "on_predict_batch_end"]


def recorder(lib):
    """A callback recording (hook, sorted logs keys) for every hook it is given."""
    class Recorder(lib.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.events = []

    def hook(name):
        def record(self, *args, logs=None):
            logs = args[-1] if args and isinstance(args[-1], dict) else logs
            self.events.append((name, sorted(logs or {})))
        return record

    for name in HOOKS:
        setattr(Recorder, name, hook(name))
    return Recorder()


def model(lib, metrics=("mae",), **compile_kwargs):
    m = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
    if not m.built:
        m.build((None, 3))
    m.set_weights([KERNEL, BIAS])
    m.compile(optimizer=lib.optimizers.SGD(0.05), loss="mse", metrics=list(metrics),
              **compile_kwargs)
    return m


def freeze(kwargs):
    return tuple(sorted(kwargs.items()))


@functools.lru_cache(maxsize=None)
def fitted(lib, frozen=()):
    """(model, history, recorded events) of one fit with the given extra arguments
    (``"XY"`` stands for the tuple (X, Y), which cannot be a cache key)."""
    kwargs = {key: (X, Y) if value == "XY" else value for key, value in frozen}
    m = model(lib)
    rec = recorder(lib)
    args = dict(batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[rec])
    args.update(kwargs)
    history = m.fit(X, Y, **args)
    return m, history, rec.events


VAL = freeze(dict(validation_data="XY"))


def both(frozen=()):
    return fitted(keras, frozen), fitted(fastnn, frozen)


# ---------------------------------------------------------------- fit
def test_history_keys_without_validation():
    (_, k, _), (_, f, _) = both()
    assert list(f.history) == list(k.history)


def test_history_keys_with_validation():
    (_, k, _), (_, f, _) = both(VAL)
    assert list(f.history) == list(k.history)


def test_history_values_from_fixed_weights():
    (_, k, _), (_, f, _) = both(VAL)
    for key in k.history:
        assert_close(f.history[key], k.history[key], rtol=1e-5)


def test_history_epoch_list():
    (_, k, _), (_, f, _) = both()
    assert f.epoch == k.epoch


def test_history_params():
    (_, k, _), (_, f, _) = both()
    assert {key: f.params[key] for key in k.params} == k.params


def test_fit_returns_history_and_sets_model_history():
    (km, k, _), (fm, f, _) = both()
    assert type(f).__name__ == type(k).__name__ == "History"
    assert f.model is fm and k.model is km


def test_trained_weights_from_fixed_weights():
    (km, _, _), (fm, _, _) = both()
    for g, w in zip(fm.get_weights(), km.get_weights()):
        assert_close(g, w, rtol=1e-5)


def train_hooks(events):
    return [e for e in events if not e[0].startswith(("on_test_batch", "on_predict"))]


def test_hook_order_of_fit():
    (_, _, k), (_, _, f) = both()
    assert [e[0] for e in f] == [e[0] for e in k]


def test_logs_keys_in_fit_hooks():
    (_, _, k), (_, _, f) = both()
    assert f == k


def test_hook_order_of_fit_with_validation_without_test_batches():
    (_, _, k), (_, _, f) = both(VAL)
    assert [e[0] for e in train_hooks(f)] == [e[0] for e in train_hooks(k)]


def test_hook_order_of_fit_with_validation():
    (_, _, k), (_, _, f) = both(VAL)
    assert [e[0] for e in f] == [e[0] for e in k]


def test_logs_keys_of_fit_with_validation():
    (_, _, k), (_, _, f) = both(VAL)
    assert f == k


def test_epoch_end_logs_with_validation():
    (_, _, k), (_, _, f) = both(VAL)
    pick = lambda ev: [e for e in ev if e[0] == "on_epoch_end"]  # noqa: E731
    assert pick(f) == pick(k)


def test_on_batch_aliases_are_called():
    counts = []
    for lib in (keras, fastnn):
        class Alias(lib.callbacks.Callback):
            calls = []

            def on_batch_begin(self, batch, logs=None):
                self.calls.append("begin")

            def on_batch_end(self, batch, logs=None):
                self.calls.append("end")
        cb = Alias()
        model(lib).fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[cb])
        counts.append(cb.calls)
    assert counts[1] == counts[0]



def test_stop_training_from_a_callback():
    out = []
    for lib in (keras, fastnn):
        class Stop(lib.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                self.model.stop_training = True
        out.append(len(model(lib).fit(X, Y, epochs=5, verbose=0, callbacks=[Stop()]).epoch))
    assert out[0] == out[1] == 1


def test_callback_sees_params_and_model():
    seen = []
    for lib in (keras, fastnn):
        class Look(lib.callbacks.Callback):
            def on_train_begin(self, logs=None):
                seen.append((sorted(self.params), self.model is not None))
        model(lib).fit(X, Y, epochs=1, verbose=0, callbacks=[Look()])
    assert seen[1][1] and set(seen[0][0]) <= set(seen[1][0])


def test_lambda_callback():
    out = []
    for lib in (keras, fastnn):
        ends = []
        cb = lib.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: ends.append(e))
        model(lib).fit(X, Y, epochs=3, verbose=0, callbacks=[cb])
        out.append(ends)
    assert out[0] == out[1] == [0, 1, 2]


def test_early_stopping_on_a_rising_loss():
    out = []
    for lib in (keras, fastnn):
        m = model(lib)
        m.optimizer.learning_rate = 5.0  # diverges: the loss rises every epoch
        stop = lib.callbacks.EarlyStopping(monitor="loss", patience=1)
        out.append(len(m.fit(X, Y, epochs=6, batch_size=8, verbose=0, callbacks=[stop]).epoch))
    assert out[0] == out[1]


def test_validation_split_keys():
    out = []
    for lib in (keras, fastnn):
        out.append(list(model(lib).fit(X, Y, epochs=1, verbose=0,
                                       validation_split=0.25).history))
    assert out[0] == out[1]


def test_sample_and_class_weight_accepted():
    out = []
    for lib in (keras, fastnn):
        h = model(lib).fit(X, Y, epochs=1, batch_size=8, shuffle=False, verbose=0,
                           sample_weight=np.linspace(0.5, 1.5, 8).astype("float32"))
        out.append(h.history["loss"][0])
    assert_close(out[1], out[0], rtol=1e-5)


@pytest.mark.parametrize("setup", [("mae", "mse"), ("mse", "mse"),
                                   ("accuracy", "binary_crossentropy"),
                                   ("binary_accuracy", "binary_crossentropy"),
                                   ("accuracy", "sparse_categorical_crossentropy"),
                                   ("accuracy", "categorical_crossentropy")],
                         ids=lambda s: "-".join(s))
def test_metric_string_gives_the_same_logs_key(setup):
    metric, loss = setup
    keys = []
    for lib in (keras, fastnn):
        width = 1 if loss == "binary_crossentropy" else 3
        m = lib.Sequential([lib.Input((3,)), lib.layers.Dense(width, activation=(
            "sigmoid" if width == 1 else "softmax"))])
        m.compile(optimizer="sgd", loss=loss, metrics=[metric])
        y = {"binary_crossentropy": (X[:, :1] > 0).astype("float32"),
             "sparse_categorical_crossentropy": np.arange(8) % 3,
             "categorical_crossentropy": np.eye(3, dtype="float32")[np.arange(8) % 3],
             "mse": np.eye(3, dtype="float32")[np.arange(8) % 3]}[loss]
        keys.append(sorted(m.evaluate(X, y, verbose=0, return_dict=True)))
    assert keys[1] == keys[0]


def test_validation_freq():
    (_, k, _), (_, f, _) = both(freeze(dict(validation_data="XY", validation_freq=2,
                                            epochs=3)))
    assert {key: len(v) for key, v in f.history.items()} == {
        key: len(v) for key, v in k.history.items()}


def test_validation_batch_size():
    (_, k, _), (_, f, _) = both(freeze(dict(validation_data="XY", validation_batch_size=2)))
    assert_close(f.history["val_loss"], k.history["val_loss"], rtol=1e-5)


def test_steps_per_epoch():
    (_, k, ke), (_, f, fe) = both(freeze(dict(steps_per_epoch=1)))
    assert f.params["steps"] == k.params["steps"]
    assert [e[0] for e in fe] == [e[0] for e in ke]


def test_validation_steps():
    (_, k, _), (_, f, _) = both(freeze(dict(validation_data="XY", validation_steps=1)))
    assert_close(f.history["val_loss"], k.history["val_loss"], rtol=1e-5)


# ---------------------------------------------------------------- evaluate and predict
def test_evaluate_with_metrics_returns_a_list():
    k, f = model(keras).evaluate(X, Y, verbose=0), model(fastnn).evaluate(X, Y, verbose=0)
    assert type(f) is type(k) is list
    assert_close(f, k)


def test_evaluate_without_metrics_returns_a_float():
    k = model(keras, metrics=()).evaluate(X, Y, verbose=0)
    f = model(fastnn, metrics=()).evaluate(X, Y, verbose=0)
    assert isinstance(f, float) and isinstance(k, float)
    assert_close(f, k)


def test_evaluate_return_dict():
    k = model(keras).evaluate(X, Y, verbose=0, return_dict=True)
    f = model(fastnn).evaluate(X, Y, verbose=0, return_dict=True)
    assert list(f) == list(k)


def test_evaluate_with_batch_size_and_sample_weight():
    w = np.linspace(0.2, 2, 8).astype("float32")
    k = model(keras).evaluate(X, Y, batch_size=3, sample_weight=w, verbose=0)
    f = model(fastnn).evaluate(X, Y, batch_size=3, sample_weight=w, verbose=0)
    assert_close(f, k, rtol=1e-5)


def test_evaluate_callbacks_hooks():
    out = []
    for lib in (keras, fastnn):
        rec = recorder(lib)
        model(lib).evaluate(X, Y, batch_size=4, verbose=0, callbacks=[rec])
        out.append(rec.events)
    assert out[1] == out[0]


def test_predict_callbacks_hooks():
    out = []
    for lib in (keras, fastnn):
        rec = recorder(lib)
        model(lib).predict(X, batch_size=4, verbose=0, callbacks=[rec])
        out.append(rec.events)
    assert out[1] == out[0]


def test_evaluate_steps():
    k = model(keras).evaluate(X, Y, batch_size=4, steps=1, verbose=0)
    f = model(fastnn).evaluate(X, Y, batch_size=4, steps=1, verbose=0)
    assert_close(f, k)


def test_predict_steps():
    k = model(keras).predict(X, batch_size=4, steps=1, verbose=0)
    f = model(fastnn).predict(X, batch_size=4, steps=1, verbose=0)
    assert f.shape == k.shape


def test_train_on_batch_returns_list_and_dict():
    k, f = model(keras), model(fastnn)
    kr, fr = k.train_on_batch(X, Y), f.train_on_batch(X, Y)
    assert type(fr) is type(kr) is list
    assert_close(fr, kr, rtol=1e-5)
    assert list(f.train_on_batch(X, Y, return_dict=True)) == list(
        k.train_on_batch(X, Y, return_dict=True))


def test_test_on_batch_values():
    k, f = model(keras), model(fastnn)
    assert_close(f.test_on_batch(X, Y), k.test_on_batch(X, Y), rtol=1e-5)


def test_train_on_batch_without_metrics_returns_a_float():
    k, f = model(keras, metrics=()), model(fastnn, metrics=())
    kr, fr = k.train_on_batch(X, Y), f.train_on_batch(X, Y)
    assert isinstance(fr, float) and isinstance(kr, float)


def test_metrics_names_after_evaluate():
    k, f = model(keras), model(fastnn)
    k.evaluate(X, Y, verbose=0)
    f.evaluate(X, Y, verbose=0)
    assert f.metrics_names == k.metrics_names


test_metrics_names_after_evaluate = deliberate(
    "metrics_names lists each metric's name, not Keras 3's ['loss', 'compile_metrics']")(
    test_metrics_names_after_evaluate)


# ---------------------------------------------------------------- compile arguments
def test_weighted_metrics():
    keys = []
    for lib in (keras, fastnn):
        m = model(lib, weighted_metrics=["mse"])
        keys.append(sorted(m.evaluate(X, Y, verbose=0, return_dict=True,
                                      sample_weight=np.ones(8, "float32"))))
    assert keys[1] == keys[0]


def test_loss_weights_scale_the_loss():
    out = [model(lib, loss_weights=2.0).evaluate(X, Y, verbose=0) for lib in (keras, fastnn)]
    assert_close(out[1], out[0], rtol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(run_eagerly=True), dict(jit_compile=False),
                                    dict(steps_per_execution=1)], ids=lambda k: list(k)[0])
def test_compile_execution_arguments_accepted(kwargs):
    out = [model(lib, **kwargs).evaluate(X, Y, verbose=0) for lib in (keras, fastnn)]
    assert_close(out[1], out[0], rtol=1e-5)


def test_compiled_flag():
    out = []
    for lib in (keras, fastnn):
        m = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
        before = m.compiled
        m.compile(optimizer="sgd", loss="mse")
        out.append((before, m.compiled))
    assert out[0] == out[1] == (False, True)


# ---------------------------------------------------------------- default output
@pytest.mark.parametrize("call", [
    "evaluate", "fit",
    pytest.param("predict", marks=deliberate(
        "predict prints nothing by default: it is the serving path, called from threads"))])
def test_default_verbosity_prints_progress(call, capsys):
    printed = []
    for lib in (keras, fastnn):
        m = model(lib)
        args = (X,) if call == "predict" else (X, Y)
        getattr(m, call)(*args)
        printed.append(bool(capsys.readouterr().out.strip()))
    assert printed == [True, True]


@pytest.mark.parametrize("call", ["evaluate", "predict", "fit"])
def test_verbose_0_prints_nothing(call, capsys):
    printed = []
    for lib in (keras, fastnn):
        args = (X,) if call == "predict" else (X, Y)
        getattr(model(lib), call)(*args, verbose=0)
        printed.append(capsys.readouterr().out.strip())
    assert printed == ["", ""]
