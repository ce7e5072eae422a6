"""The Sequential API end to end: building, training, inference, weights, bad input."""
import importlib.util

import numpy as np
import pytest

import fastnn
from fastnn import layers, optimizers
from fastnn.backend import use_backend



def blobs(n=240, d=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (k, d))
    y = rng.integers(0, k, n)
    x = centers[y] + rng.normal(0, 1, (n, d))
    return x.astype("float32"), y


def small_model(d=8, k=3, activation="softmax"):
    return fastnn.Sequential([
        layers.Dense(16, activation="relu", input_shape=(d,)),
        layers.Dense(k, activation=activation),
    ])


def compiled(loss="sparse_categorical_crossentropy", **kwargs):
    model = small_model(**kwargs)
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss=loss,
                  metrics=["accuracy"])
    return model


def test_default_backend_is_cpu():
    assert fastnn.backend.get_backend() == "cpu"
    assert type(fastnn.backend.get_ops()).__name__ == "CpuOps"


def test_design_snippet_trains_and_reports_history():
    fastnn.utils.set_random_seed(1)
    x, y = blobs()
    model = fastnn.Sequential([
        fastnn.Input(shape=(8,)),
        layers.Dense(32, activation="relu"),
        layers.BatchNormalization(),
        layers.Dropout(0.2),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=optimizers.Adam(learning_rate=1e-2),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=8, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 8
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc > 0.9
    proba = model.predict(x)
    assert proba.shape == (240, 3) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)


def test_validation_data_and_no_shuffle_are_used():
    x, y = blobs()
    model = compiled()
    hist = model.fit(x[:200], y[:200], epochs=2, validation_data=(x[200:], y[200:]),
                     shuffle=False, verbose=0)
    expected = model.evaluate(x[200:], y[200:])
    assert hist.history["val_loss"][-1] == pytest.approx(expected[0], rel=1e-5)


def test_train_on_batch_changes_weights_and_test_on_batch_does_not():
    x, y = blobs(n=32)
    model = compiled()
    model.build()
    before = model.get_weights()
    loss_test = model.test_on_batch(x, y)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    loss_train = model.train_on_batch(x, y)
    assert loss_train[0] == pytest.approx(loss_test[0], rel=1e-5)  # loss before the step
    assert not np.array_equal(before[0], model.get_weights()[0])
    after = model.test_on_batch(x, y)
    assert after[0] < loss_test[0]


def test_inference_paths_agree():
    x, _ = blobs(n=70)
    model = compiled()
    a = model.predict(x, batch_size=16)
    np.testing.assert_allclose(model.predict_on_batch(x), a, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model(x), a, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model(x, training=True), a, rtol=1e-6, atol=1e-7)


def test_call_training_applies_dropout():
    x = np.ones((4, 50), dtype="float32")
    model = fastnn.Sequential([layers.Dropout(0.5, input_shape=(50,))])
    np.testing.assert_array_equal(model(x), x)
    dropped = model(x, training=True)
    assert set(np.unique(dropped)) <= {0.0, 2.0} and (dropped == 0).any()


def test_weights_follow_keras_layout_and_round_trip():
    model = small_model()
    model.build()
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(8, 16), (16,), (16, 3), (3,)]
    assert model.count_params() == 8 * 16 + 16 + 16 * 3 + 3
    new = [np.full(s, i + 1, dtype="float32") for i, s in enumerate(shapes)]
    model.set_weights(new)
    for got, want in zip(model.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    # A layer's weights are views into the model's one flat buffer.
    assert np.shares_memory(model.layers[0].kernel.value, model._store.params)


def test_summary_lists_layers_and_counts(capsys):
    small_model().summary()
    out = capsys.readouterr().out
    assert "Dense" in out and "Total params: 195" in out


@pytest.mark.parametrize("loss,y_form,act", [
    ("sparse_categorical_crossentropy", "sparse", "softmax"),
    ("categorical_crossentropy", "onehot", "softmax"),
    ("mse", "onehot", "linear"),
])
def test_losses_train(loss, y_form, act):
    fastnn.utils.set_random_seed(3)
    x, y = blobs()
    target = y if y_form == "sparse" else fastnn.utils.to_categorical(y, 3)
    model = compiled(loss=loss, activation=act)
    hist = model.fit(x, target, epochs=5, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]


def test_binary_head_uses_binary_accuracy():
    fastnn.utils.set_random_seed(0)
    x, y = blobs(k=2)
    model = small_model(k=1, activation="sigmoid")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=10, verbose=0)
    assert type(model.compiled_metrics[0]).__name__ == "BinaryAccuracy"
    assert model.evaluate(x, y)[1] > 0.9


def test_from_logits_matches_softmax_head():
    x, y = blobs(n=64)
    a = small_model(activation="softmax")
    b = small_model(activation=None)
    a.build()
    b.build()
    b.set_weights(a.get_weights())
    a.compile(optimizer=optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    b.compile(optimizer=optimizers.SGD(0.1),
              loss=fastnn.losses.SparseCategoricalCrossentropy(from_logits=True))
    for _ in range(3):
        la, lb = a.train_on_batch(x, y), b.train_on_batch(x, y)
        assert la == pytest.approx(lb, rel=1e-5)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-6)


def test_cpu_and_numpy_backends_train_identically():
    x, y = blobs(n=96)
    results = []
    for name in ("numpy", "cpu"):
        with use_backend(name):
            fastnn.utils.set_random_seed(7)
            model = compiled()
            model.fit(x, y, epochs=3, batch_size=16, verbose=0)
            results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_seed_makes_runs_repeat():
    x, y = blobs()
    runs = []
    for _ in range(2):
        fastnn.utils.set_random_seed(11)
        model = fastnn.Sequential([layers.Dense(8, activation="relu", input_shape=(8,)),
                                   layers.Dropout(0.3), layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=2, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_frozen_first_layer_still_lets_the_rest_learn():
    x, y = blobs()
    model = compiled()
    model.build()
    model.layers[0].trainable = False
    first = model.layers[0].get_weights()
    model.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(first, model.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(model.trainable_weights) == 2


def test_digits_example_reaches_097(repo_root):
    spec = importlib.util.spec_from_file_location("digits_example", repo_root / "examples/digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main() >= 0.97


# ---------------------------------------------------------------------- bad input
def assert_unchanged(model, before):
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.fixture
def trained():
    x, y = blobs()
    model = compiled()
    model.fit(x, y, epochs=1, verbose=0)
    return model, x, y, model.get_weights()


@pytest.mark.parametrize("call", ["fit", "evaluate", "train_on_batch"])
@pytest.mark.parametrize("case,exc,match", [
    ("features", ValueError, "features"),
    ("lengths", ValueError, "different lengths"),
    ("nan_x", ValueError, "NaN"),
    ("inf_y", ValueError, "NaN or infinite"),
    ("strings", TypeError, "numbers"),
    ("label_high", ValueError, "outside"),
    ("label_negative", ValueError, "outside"),
    ("one_d_x", ValueError, "shape"),
])
def test_bad_input_is_refused_and_model_unchanged(trained, call, case, exc, match):
    model, x, y, before = trained
    x_bad, y_bad = x.copy(), y.copy().astype("float32")
    if case == "features":
        x_bad = x[:, :5]
    elif case == "lengths":
        y_bad = y_bad[:-1]
    elif case == "nan_x":
        x_bad[3, 2] = np.nan
    elif case == "inf_y":
        y_bad[0] = np.inf
    elif case == "strings":
        x_bad = np.array([["a"] * 8] * len(x))
    elif case == "label_high":
        y_bad[0] = 3
    elif case == "label_negative":
        y_bad[0] = -1
    elif case == "one_d_x":
        x_bad = x[0]
    with pytest.raises(exc, match=match):
        getattr(model, call)(x_bad, y_bad)
    assert_unchanged(model, before)


def test_predict_checks_features_and_nan(trained):
    model, x, _, before = trained
    with pytest.raises(ValueError, match="expects 8"):
        model.predict(x[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        model.predict(np.full((2, 8), np.nan))
    assert_unchanged(model, before)


def test_onehot_of_wrong_width_is_refused(trained):
    x, y = blobs()
    model = compiled(loss="categorical_crossentropy")
    with pytest.raises(ValueError, match=r"\(4,\)"):
        model.fit(x, fastnn.utils.to_categorical(y, 4), verbose=0)


def test_fit_before_compile_is_refused():
    x, y = blobs()
    model = small_model()
    for call in (model.fit, model.evaluate, model.train_on_batch):
        with pytest.raises(ValueError, match="compile"):
            call(x, y)


@pytest.mark.parametrize("kind,kwargs", [
    ("activation", {"activation": "relux"}),
])
def test_unknown_activation_lists_known(kind, kwargs):
    with pytest.raises(ValueError, match="Known activations: .*relu"):
        layers.Dense(3, **kwargs)


@pytest.mark.parametrize("arg,value,match", [
    ("loss", "cross_entropy", "Known losses"),
    ("optimizer", "adamm", "Known optimizers"),
    ("metrics", ["acuracy"], "Known metrics|known metrics"),
])
def test_unknown_compile_names_list_known(arg, value, match):
    model = small_model()
    kwargs = {"optimizer": "adam", "loss": "mse", arg: value}
    with pytest.raises(ValueError, match=match):
        model.compile(**kwargs)
    assert model.loss is None  # compile left the model as it was


def test_bad_fit_arguments():
    x, y = blobs()
    model = compiled()
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(x, y, batch_size=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=1.5)
    with pytest.raises(ValueError, match="epochs"):
        model.fit(x, y, epochs=-1)


def test_per_class_metric_is_logged_as_an_array():
    x, y = blobs()
    model = small_model()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["f1_score"])
    hist = model.fit(x, fastnn.utils.to_categorical(y, 3), epochs=2, verbose=0)
    assert np.shape(hist.history["f1_score"][-1]) == (3,)


def test_stop_training_in_a_batch_hook_stops_after_that_batch():
    x, y = blobs()
    model = compiled()
    seen = []

    def stop_at_third(batch, logs):
        seen.append(batch)
        if batch == 2:
            model.stop_training = True

    stopper = fastnn.callbacks.LambdaCallback(on_train_batch_end=stop_at_third)
    model.fit(x, y, batch_size=16, epochs=3, callbacks=[stopper], verbose=0)
    assert seen == [0, 1, 2]


def test_mc_dropout_predict_averages_dropout_passes():
    fastnn.utils.set_random_seed(2)
    model = fastnn.Sequential([layers.Dense(64, input_shape=(8,)), layers.BatchNormalization(),
                               layers.Dropout(0.5), layers.Dense(3)])
    x, _ = blobs(n=16)
    model.build()
    moving = [w.copy() for w in model.layers[1].get_weights()]
    plain = model.predict(x)
    one = model.predict(x, mc_samples=1)
    assert not np.allclose(one, plain)  # dropout was active
    # A linear net's expectation under inverted dropout is the deterministic output.
    mean = model.predict(x, mc_samples=3000, batch_size=8)
    np.testing.assert_allclose(mean, plain, atol=0.05 * np.abs(plain).max())
    for a, b in zip(moving, model.layers[1].get_weights()):
        np.testing.assert_array_equal(a, b)  # batch norm stayed in inference mode
    with pytest.raises(ValueError, match="mc_samples"):
        model.predict(x, mc_samples=0)


# ---------------------------------------------------------------------- edge cases of the API
def test_empty_batches_are_refused_and_model_unchanged():
    x, y = blobs()
    model = fastnn.Sequential([layers.Dense(5, input_shape=(8,)), layers.BatchNormalization(),
                               layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.build()
    before = model.get_weights()
    for call in (model.train_on_batch, model.test_on_batch, model.evaluate):
        with pytest.raises(ValueError, match="no samples"):
            call(x[:0], y[:0])
    with pytest.raises(ValueError, match="no samples"):
        model.fit(x, y, validation_data=(x[:0], y[:0]), verbose=0)
    assert_unchanged(model, before)
    assert np.isfinite(model.predict(x[:2])).all()
    plain = compiled()
    with pytest.raises(ValueError, match="no samples"):
        plain.train_on_batch(x[:0], y[:0])


def test_class_weight_does_not_weight_the_validation_split():
    x, y = blobs(n=60)
    model = compiled()
    model.compile(optimizer=optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    hist = model.fit(x, y, validation_split=0.5, class_weight={0: 10.0, 1: 1.0, 2: 1.0},
                     verbose=0)
    assert hist.history["val_loss"][0] == pytest.approx(model.evaluate(x[30:], y[30:]),
                                                        rel=1e-5)


def test_a_failed_deferred_build_leaves_the_model_buildable():
    model = fastnn.Sequential([layers.Dense(2, activation="relu"), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="reshape"):
        model.fit(rng.random(10), rng.random(10), verbose=0)
    with pytest.raises(ValueError):
        model.fit(rng.random((10, 3, 2)), rng.random(10), verbose=0)
    assert not model.built
    model.fit(rng.random((10, 3)), rng.random(10), verbose=0)
    assert model.layers[0].kernel.shape == (3, 2)


def test_accuracy_with_mse_on_several_outputs_is_categorical():
    x, y = blobs()
    model = compiled(loss="mse")
    model.fit(x, fastnn.utils.to_categorical(y, 3), epochs=5, verbose=0)
    assert type(model.compiled_metrics[0]).__name__ == "CategoricalAccuracy"
    proba = model.predict(x)
    acc = model.evaluate(x, fastnn.utils.to_categorical(y, 3))[1]
    assert acc == pytest.approx((proba.argmax(1) == y).mean())


def test_model_trainable_false_freezes_every_layer():
    x, y = blobs()
    model = compiled()
    model.build()
    before = model.get_weights()
    model.trainable = False
    assert model.trainable is False and model.trainable_weights == []
    model.fit(x, y, epochs=1, verbose=0)
    assert_unchanged(model, before)
    model.trainable = True
    assert len(model.trainable_weights) == 4


def test_numpy_scalars_and_complex_input():
    x, y = blobs()
    model = compiled()
    model.fit(x, y, epochs=np.int64(2), initial_epoch=np.int64(1),
              validation_split=np.float32(0.2), verbose=0)
    with pytest.raises(TypeError, match="real numbers"):
        model.predict(x.astype(np.complex64))
    hinge = small_model(k=1, activation="tanh")
    hinge.compile(optimizer="adam", loss="hinge")
    with pytest.raises(ValueError, match="class ids"):  # -1/1 hinge labels are not class ids
        hinge.fit(x, np.where(y == 0, -1.0, 1.0), class_weight={0: 2.0}, verbose=0)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("plain", [True, False])
def test_call_and_predict_on_batch_refuse_nan(backend, plain):
    """A compiled inference program scans x itself; other programs (a HOST stage first)
    scan it in Python."""
    extra = [] if plain else [layers.GaussianNoise(0.1)]
    with use_backend(backend):
        model = fastnn.Sequential([*extra, layers.Dense(4), layers.Dense(2)])
        model.build((None, 3))
        assert model._inference_executor().scans_input == (plain and backend == "cpu")
        x = np.ones((5, 3), dtype="float32")
        x[1, 2], x[4, 0] = np.nan, np.inf
        for call in (model, model.predict_on_batch):
            with pytest.raises(ValueError, match="2 NaN or infinite"):
                call(x)
            with pytest.raises(ValueError, match="1 NaN or infinite"):
                call(x[1:2])


def test_model_form_input_skips_the_python_checks(monkeypatch):
    """A float32, C-contiguous (n, features) array goes straight to the compiled stack
    (the serving hot path); anything else still takes check_x, and both agree."""
    from fastnn.models import data
    model = fastnn.Sequential([layers.Dense(4, activation="relu", input_shape=(3,)),
                               layers.Dense(2, activation="softmax")])
    model.build()
    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    want = model.predict_on_batch(x.astype("float64"))  # converted by check_x
    calls = []
    real = data.check_x
    monkeypatch.setattr(data, "check_x", lambda *a, **k: calls.append(1) or real(*a, **k))
    np.testing.assert_allclose(model.predict_on_batch(x), want, rtol=1e-6)
    assert calls == []
    model.predict_on_batch(np.asfortranarray(x))
    assert calls == [1]
    with pytest.raises(ValueError, match="4 features per sample but the model expects 3"):
        model.predict_on_batch(np.ones((2, 4), dtype="float32"))


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_fit_batches_are_the_shuffled_rows(backend, monkeypatch):
    """fit gathers each batch's x, y and sample weights by the epoch's permutation into
    reused buffers: the same steps as train_on_batch on the fancy-indexed rows."""
    x, y = blobs(n=50)
    sw = np.linspace(0.5, 2.0, len(x)).astype("float32")
    with use_backend(backend):
        a, b = compiled(), compiled()
        a.build()
        b.build()
        b.set_weights(a.get_weights())
        fastnn.utils.set_random_seed(7)
        a.fit(x, y, sample_weight=sw, batch_size=16, epochs=2, shuffle=True, verbose=0)
        fastnn.utils.set_random_seed(7)
        rng = fastnn.utils.random.get_rng()
        for _ in range(2):
            order = rng.permutation(len(x))
            for start in range(0, len(x), 16):
                idx = order[start:start + 16]
                b.train_on_batch(x[idx], y[idx], sample_weight=sw[idx])
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)
