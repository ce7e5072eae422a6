"""Saving and loading models with user classes: a class registered with
``fastnn.saving.register_keras_serializable`` round-trips; anything else is refused, and
loading never imports a module a file names."""
import json
import sys
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import layers, ops
from fastnn.models.saving import InvalidModelFileError
from fastnn.saving import get_registered_name, register_keras_serializable


@register_keras_serializable(package="TestCustom")
class ScaledLinear(fastnn.layers.Layer):
    def __init__(self, units=4, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.scale = scale

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                 initializer="glorot_uniform", name="w")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="b")

    def call(self, inputs):
        return ops.tanh(ops.matmul(inputs, self.w) * self.scale + self.b)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "scale": self.scale})
        return config


@register_keras_serializable(package="TestCustom", name="smooth_l1")
def smooth_l1(y_true, y_pred):
    d = ops.abs(y_true - y_pred)
    return ops.mean(ops.where(d < 1.0, 0.5 * d * d, d - 0.5), axis=-1)


class Unregistered(fastnn.layers.Layer):
    def call(self, inputs):
        return inputs * 2.0


def _trained(custom, loss="mse"):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype("float32")
    y = rng.normal(size=(64, 2)).astype("float32")
    model = fastnn.Sequential([fastnn.Input(shape=(5,)), layers.Dense(6, activation="relu"),
                               custom, layers.Dense(2)])
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, epochs=2, verbose=0)
    return model, x, y


def test_registered_names_follow_keras():
    assert get_registered_name(ScaledLinear) == "TestCustom>ScaledLinear"
    assert get_registered_name(smooth_l1) == "TestCustom>smooth_l1"
    assert get_registered_name(Unregistered) == "Unregistered"


def test_a_registered_custom_layer_and_loss_save_and_load(tmp_path):
    model, x, y = _trained(ScaledLinear(3, scale=0.5), loss=smooth_l1)
    path = tmp_path / "custom.fastnn"
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("config.json"))
    entry = config["model"]["layers"][1]
    assert entry["registered_name"] == "TestCustom>ScaledLinear"
    loaded = fastnn.models.load_model(path)
    assert isinstance(loaded.layers[1], ScaledLinear)
    assert (loaded.layers[1].units, loaded.layers[1].scale) == (3, 0.5)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.loss.fn is smooth_l1
    # Training resumes identically from the loaded state.
    a = model.train_on_batch(x, y)
    b = loaded.train_on_batch(x, y)
    assert a == pytest.approx(b, rel=1e-6)


def test_an_unregistered_custom_layer_is_refused_on_save(tmp_path):
    model, _, _ = _trained(Unregistered())
    with pytest.raises(ValueError, match="register_keras_serializable"):
        model.save(tmp_path / "x.fastnn")
    assert not (tmp_path / "x.fastnn").exists()


def test_a_lambda_layer_is_refused_on_save(tmp_path):
    model, _, _ = _trained(layers.Lambda(lambda t: t * 2.0))
    with pytest.raises(ValueError, match="Lambda"):
        model.save(tmp_path / "x.fastnn")


def _rewrite(path, edit):
    with zipfile.ZipFile(path) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(entries["config.json"])
    edit(config)
    entries["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def test_a_class_not_registered_when_loading_is_refused(tmp_path, monkeypatch):
    model, _, _ = _trained(ScaledLinear(3))
    path = tmp_path / "custom.fastnn"
    model.save(path)
    monkeypatch.delitem(fastnn.saving.get_custom_objects(), "TestCustom>ScaledLinear")
    with pytest.raises(InvalidModelFileError, match="TestCustom>ScaledLinear"):
        fastnn.models.load_model(path)


def test_loading_never_imports_what_a_file_names(tmp_path):
    model, _, _ = _trained(ScaledLinear(3))
    path = tmp_path / "custom.fastnn"
    model.save(path)
    module = "fastnn_test_module_that_must_not_be_imported"

    def hostile(config):
        entry = config["model"]["layers"][1]
        entry["registered_name"] = f"{module}>ScaledLinear"
        entry["module"] = module
    _rewrite(path, hostile)
    with pytest.raises(InvalidModelFileError, match="unknown custom layer"):
        fastnn.models.load_model(path)
    assert module not in sys.modules

    def builtin_name(config):
        config["model"]["layers"][1].pop("registered_name")
    model.save(path)
    _rewrite(path, builtin_name)
    with pytest.raises(InvalidModelFileError, match="ScaledLinear"):
        fastnn.models.load_model(path)


def test_an_unregistered_loss_function_loads_only_without_compile(tmp_path):
    def my_loss(y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1)
    model, x, _ = _trained(ScaledLinear(3), loss=my_loss)
    path = tmp_path / "custom.fastnn"
    model.save(path)
    with pytest.raises(InvalidModelFileError, match="my_loss"):
        fastnn.models.load_model(path)
    loaded = fastnn.models.load_model(path, compile=False)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_register_checks_its_arguments():
    with pytest.raises(ValueError, match="package"):
        register_keras_serializable(package="a>b")
    with pytest.raises(ValueError, match="get_config"):
        register_keras_serializable()(type("NoConfig", (), {}))


def test_custom_objects_resolve_only_within_their_scope(tmp_path, monkeypatch):
    model, x, _ = _trained(ScaledLinear(3))
    path = tmp_path / "custom.fastnn"
    model.save(path)
    monkeypatch.delitem(fastnn.saving.get_custom_objects(), "TestCustom>ScaledLinear")
    loaded = fastnn.saving.load_model(path, custom_objects={"ScaledLinear": ScaledLinear})
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    with fastnn.saving.custom_object_scope({"TestCustom>ScaledLinear": ScaledLinear}):
        assert fastnn.models.load_model(path).layers[1].units == 3
    with pytest.raises(InvalidModelFileError):
        fastnn.models.load_model(path)


def test_saving_signatures_match_keras():
    import inspect
    import os
    os.environ["KERAS_BACKEND"] = "jax"
    keras = pytest.importorskip("keras")
    for name in ("register_keras_serializable", "get_registered_name",
                 "get_registered_object", "load_model", "get_custom_objects"):
        assert inspect.signature(getattr(fastnn.saving, name)) == \
            inspect.signature(getattr(keras.saving, name)), name
