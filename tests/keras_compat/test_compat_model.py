"""The Sequential model against Keras: building, the guide's add/summary/pop/get_layer,
weights as variables, configs, cloning, saving weights, errors."""
import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import fastnn  # noqa: E402
from compat_marks import assert_close, deliberate  # noqa: E402

RNG = np.random.default_rng(4)
X = RNG.normal(size=(6, 4)).astype("float32")


def declared(lib, how):
    """A two-layer model whose input shape is declared the way ``how`` says."""
    L = lib.layers
    if how == "Input":
        return lib.Sequential([lib.Input(shape=(4,)), L.Dense(3, activation="relu"),
                               L.Dense(2)])
    if how == "input_shape":
        return lib.Sequential([L.Dense(3, activation="relu", input_shape=(4,)), L.Dense(2)])
    return lib.Sequential([L.Dense(3, activation="relu", input_dim=4), L.Dense(2)])


HOWS = ["Input", "input_shape", "input_dim"]


@pytest.fixture(autouse=True)
def _quiet_keras_warnings():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------- built at construction
@pytest.mark.parametrize("how", HOWS)
def test_built_flag(how):
    assert declared(fastnn, how).built == declared(keras, how).built


@pytest.mark.parametrize("how", HOWS)
def test_get_weights_before_training(how):
    want = [w.shape for w in declared(keras, how).get_weights()]
    assert [w.shape for w in declared(fastnn, how).get_weights()] == want


@pytest.mark.parametrize("how", HOWS)
def test_model_weights_before_training(how):
    assert len(declared(fastnn, how).weights) == len(declared(keras, how).weights) == 4


@pytest.mark.parametrize("how", HOWS)
def test_layer_kernel_before_training(how):
    k, f = declared(keras, how), declared(fastnn, how)
    assert tuple(f.layers[0].kernel.shape) == tuple(k.layers[0].kernel.shape)


@pytest.mark.parametrize("how", HOWS)
def test_set_weights_before_training_then_predict(how):
    k, f = declared(keras, how), declared(fastnn, how)
    weights = [RNG.normal(size=w.shape).astype("float32") for w in k.get_weights()]
    k.set_weights(weights)
    f.set_weights(weights)
    assert_close(f.predict(X, verbose=0), k.predict(X, verbose=0))


@pytest.mark.parametrize("how", HOWS)
def test_layer_set_weights_before_training(how):
    k, f = declared(keras, how), declared(fastnn, how)
    kernel = np.ones((4, 3), "float32")
    k.layers[0].set_weights([kernel, np.zeros(3, "float32")])
    f.layers[0].set_weights([kernel, np.zeros(3, "float32")])
    assert_close(f.layers[0].get_weights()[0], k.layers[0].get_weights()[0])


@pytest.mark.parametrize("how", HOWS)
def test_count_params_and_output_shape(how):
    k, f = declared(keras, how), declared(fastnn, how)
    assert f.count_params() == k.count_params() == 4 * 3 + 3 + 3 * 2 + 2
    assert tuple(f.output_shape) == tuple(k.output_shape)


@pytest.mark.parametrize("how", HOWS)
def test_input_shape(how):
    k, f = declared(keras, how), declared(fastnn, how)
    assert tuple(f.input_shape) == tuple(k.input_shape)


def test_model_without_input_shape_is_not_built():
    k = keras.Sequential([keras.layers.Dense(3)])
    f = fastnn.Sequential([fastnn.layers.Dense(3)])
    assert f.built == k.built is False
    assert f.weights == [] and len(k.weights) == 0


def test_layers_list_leaves_out_the_input():
    assert len(declared(fastnn, "Input").layers) == len(declared(keras, "Input").layers) == 2


def test_build_with_batch_shape():
    k = keras.Sequential([keras.layers.Dense(3)])
    f = fastnn.Sequential([fastnn.layers.Dense(3)])
    k.build((None, 5))
    f.build((None, 5))
    assert [w.shape for w in f.get_weights()] == [w.shape for w in k.get_weights()]


# ---------------------------------------------------------------- the Sequential guide
def guide_model(lib):
    model = lib.Sequential()
    model.add(lib.Input(shape=(4,)))
    model.add(lib.layers.Dense(3, activation="relu", name="first"))
    return model


def test_add_after_summary():
    counts = []
    for lib in (keras, fastnn):
        model = guide_model(lib)
        model.summary(print_fn=lambda *a, **k: None)
        model.add(lib.layers.Dense(2))
        counts.append(model.count_params())
    assert counts[0] == counts[1] == 4 * 3 + 3 + 3 * 2 + 2


def test_add_after_count_params():
    counts = []
    for lib in (keras, fastnn):
        model = guide_model(lib)
        model.count_params()
        model.add(lib.layers.Dense(2))
        counts.append(len(model.layers))
    assert counts == [2, 2]


def test_pop():
    out = []
    for lib in (keras, fastnn):
        model = guide_model(lib)
        model.add(lib.layers.Dense(2))
        model.pop()
        out.append((len(model.layers), tuple(model.output_shape)))
    assert out[0] == out[1]


def test_get_layer_by_name():
    assert guide_model(fastnn).get_layer("first").name == guide_model(keras).get_layer(
        "first").name


def test_get_layer_by_index():
    assert guide_model(fastnn).get_layer(index=0).name == guide_model(keras).get_layer(
        index=0).name


def test_get_layer_unknown_name_raises_value_error():
    with pytest.raises(ValueError):
        guide_model(keras).get_layer("nope")
    with pytest.raises(ValueError):
        guide_model(fastnn).get_layer("nope")


def test_summary_mentions_totals():
    lines = {}
    for lib in (keras, fastnn):
        out = []
        model = declared(lib, "Input")
        model.summary(print_fn=lambda s, *a, **k: out.append(str(s)))
        lines[lib.__name__] = "\n".join(out)
    for text in lines.values():
        assert "Total params" in text and "Trainable params" in text


def test_summary_returns_none():
    assert declared(fastnn, "Input").summary(print_fn=lambda *a, **k: None) is None
    assert declared(keras, "Input").summary(print_fn=lambda *a, **k: None) is None


def test_model_names_are_unique():
    k1, k2 = keras.Sequential(), keras.Sequential()
    f1, f2 = fastnn.Sequential(), fastnn.Sequential()
    assert (f1.name == f2.name) == (k1.name == k2.name)



def test_explicit_layer_name_kept():
    k = keras.layers.Dense(2, name="head")
    f = fastnn.layers.Dense(2, name="head")
    assert f.name == k.name


def test_layers_with_the_same_name_raise():
    with pytest.raises(ValueError):
        keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="a"),
                          keras.layers.Dense(2, name="a")])
    with pytest.raises(ValueError):
        fastnn.Sequential([fastnn.Input((3,)), fastnn.layers.Dense(2, name="a"),
                           fastnn.layers.Dense(2, name="a")])



# ---------------------------------------------------------------- weights as variables
def first_weight(lib):
    return declared(lib, "Input").weights[0]


@pytest.mark.parametrize("attr", ["shape", "dtype", "name", "trainable"])
def test_variable_attributes(attr):
    k, f = first_weight(keras), first_weight(fastnn)
    want = getattr(k, attr)
    got = getattr(f, attr)
    assert (tuple(got) if attr == "shape" else str(got)) == (
        tuple(want) if attr == "shape" else str(want))


def test_variable_as_numpy_array():
    k, f = first_weight(keras), first_weight(fastnn)
    assert np.asarray(f).shape == np.asarray(k).shape
    assert np.asarray(f).dtype == np.asarray(k).dtype


def test_variable_numpy_method():
    assert first_weight(fastnn).numpy().shape == first_weight(keras).numpy().shape


def test_variable_assign():
    values = np.full((4, 3), 0.5, "float32")
    out = []
    for lib in (keras, fastnn):
        model = declared(lib, "Input")
        model.weights[0].assign(values)
        out.append(model.get_weights()[0])
    assert_close(out[1], out[0])


def test_variable_path():
    assert first_weight(fastnn).path.split("/")[-1] == first_weight(keras).path.split("/")[-1]


def test_trainable_and_non_trainable_weights():
    def counts(lib):
        model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3),
                                lib.layers.BatchNormalization()])
        model.build((None, 4)) if not model.built else None
        return len(model.trainable_weights), len(model.non_trainable_weights)
    assert counts(fastnn) == counts(keras)


def test_freezing_moves_weights_to_non_trainable():
    def counts(lib):
        model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3), lib.layers.Dense(2)])
        model.build((None, 4)) if not model.built else None
        model.layers[0].trainable = False
        return len(model.trainable_weights), len(model.non_trainable_weights)
    assert counts(fastnn) == counts(keras)


# ---------------------------------------------------------------- Model, configs, cloning
def test_isinstance_model():
    assert isinstance(declared(keras, "Input"), keras.Model)
    assert isinstance(declared(fastnn, "Input"), fastnn.Model)


def test_models_namespace_has_model_and_sequential():
    for lib in (keras, fastnn):
        assert lib.models.Sequential is lib.Sequential
        assert lib.models.Model is lib.Model


def test_from_config_round_trip():
    out = []
    for lib in (keras, fastnn):
        model = declared(lib, "Input")
        clone = lib.Sequential.from_config(model.get_config())
        out.append([w.shape for w in clone.get_weights()])
    assert out[0] == out[1]


def test_to_json_and_model_from_json():
    out = []
    for lib in (keras, fastnn):
        text = declared(lib, "Input").to_json()
        assert isinstance(text, str) and json.loads(text)
        clone = lib.models.model_from_json(text)
        out.append([type(layer).__name__ for layer in clone.layers])
    assert out[0] == out[1]


def test_clone_model_has_fresh_weights_of_the_same_shapes():
    out = []
    for lib in (keras, fastnn):
        model = declared(lib, "Input")
        clone = lib.models.clone_model(model)
        assert clone is not model and clone.weights[0] is not model.weights[0]
        out.append([w.shape for w in clone.get_weights()])
    assert out[0] == out[1]


def test_config_names_layers_by_class():
    k = declared(keras, "Input").get_config()
    f = declared(fastnn, "Input").get_config()
    kn = [layer["class_name"] for layer in k["layers"] if layer["class_name"] != "InputLayer"]
    fn = [layer["class_name"] for layer in f["layers"] if layer["class_name"] != "InputLayer"]
    assert kn == fn


def test_save_weights_and_load_weights(tmp_path):
    out = []
    for lib in (keras, fastnn):
        model = declared(lib, "input_shape")
        model.build((None, 4)) if not model.built else None
        path = str(tmp_path / f"{lib.__name__}.weights.h5")
        model.save_weights(path)
        saved = model.get_weights()
        model.set_weights([w * 0 for w in saved])
        model.load_weights(path)
        out.append(all(np.array_equal(a, b) for a, b in zip(model.get_weights(), saved)))
    assert out == [True, True]


# ---------------------------------------------------------------- predict and errors
def test_predict_returns_float32_numpy_array():
    k, f = declared(keras, "Input"), declared(fastnn, "Input")
    kp, fp = k.predict(X, verbose=0), f.predict(X, verbose=0)
    assert type(fp) is type(kp) is np.ndarray
    assert fp.dtype == kp.dtype and fp.shape == kp.shape


def test_predict_on_batch_returns_numpy_array():
    k, f = declared(keras, "Input"), declared(fastnn, "Input")
    assert type(f.predict_on_batch(X)) is type(k.predict_on_batch(X)) is np.ndarray


@pytest.mark.parametrize("bad", [
    pytest.param("loss", marks=deliberate("an unknown loss name raises at compile, not at fit")),
    "optimizer"])
def test_compile_with_unknown_name_raises_value_error(bad):
    for lib in (keras, fastnn):
        kwargs = {"optimizer": "adam", "loss": "mse", bad: "nonsense"}
        with pytest.raises(ValueError):
            declared(lib, "Input").compile(**kwargs)


def test_set_weights_with_wrong_count_raises_value_error():
    for lib in (keras, fastnn):
        with pytest.raises(ValueError):
            declared(lib, "input_shape").set_weights([np.zeros((4, 3), "float32")])


def test_set_weights_with_wrong_shape_raises_value_error():
    for lib in (keras, fastnn):
        model = declared(lib, "input_shape")
        model.build((None, 4)) if not model.built else None
        shapes = [w.shape for w in model.get_weights()]
        with pytest.raises(ValueError):
            model.set_weights([np.zeros(s[::-1] + (1,), "float32") for s in shapes])


def test_fit_before_compile_raises():
    kinds = []
    for lib in (keras, fastnn):
        model = declared(lib, "Input")
        with pytest.raises(Exception) as info:
            model.fit(X, X[:, :2], verbose=0)
        kinds.append(info.value)
    assert isinstance(kinds[1], type(kinds[0]))


def test_predict_on_wrong_width_raises_value_error():
    for lib in (keras, fastnn):
        with pytest.raises(ValueError):
            declared(lib, "Input").predict(np.ones((3, 5), "float32"), verbose=0)


def test_save_and_load_model_round_trip(tmp_path):
    out = []
    for lib in (keras, fastnn):
        model = declared(lib, "Input")
        model.compile(optimizer="adam", loss="mse")
        path = str(tmp_path / f"{lib.__name__}.keras")
        model.save(path)
        loaded = lib.models.load_model(path)
        assert_close(loaded.predict(X, verbose=0), model.predict(X, verbose=0))
        out.append((type(loaded.optimizer).__name__, [type(layer).__name__
                                                      for layer in loaded.layers]))
    assert out[0] == out[1]


def test_summary_totals_match():
    import re
    totals = []
    for lib in (keras, fastnn):
        model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3),
                                lib.layers.BatchNormalization(), lib.layers.Dense(2)])
        lines = []
        model.summary(print_fn=lambda s, *a, **k: lines.append(str(s)))
        text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(lines))
        totals.append([int(re.search(rf"{kind} params: ([\d,]+)", text).group(1)
                           .replace(",", "")) for kind in ("Total", "Trainable",
                                                           "Non-trainable")])
    assert totals[0] == totals[1] == [15 + 12 + 8, 15 + 6 + 8, 6]


def test_model_trainable_false_freezes_everything():
    out = []
    for lib in (keras, fastnn):
        model = declared(lib, "Input")
        model.trainable = False
        out.append((len(model.trainable_weights), len(model.non_trainable_weights)))
    assert out[0] == out[1] == (0, 4)


def test_freezing_all_but_the_last_layer():
    out = []
    for lib in (keras, fastnn):
        model = declared(lib, "Input")
        for layer in model.layers[:-1]:
            layer.trainable = False
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss="mse")
        before = model.get_weights()
        model.train_on_batch(X, X[:, :2])
        out.append([not np.array_equal(a, b) for a, b in zip(before, model.get_weights())])
    assert out[0] == out[1] == [False, False, True, True]


def test_named_input_and_layers():
    for lib in (keras, fastnn):
        model = lib.Sequential([lib.Input((4,), name="pixels"),
                                lib.layers.Dense(2, name="logits")])
        assert [layer.name for layer in model.layers] == ["logits"]
