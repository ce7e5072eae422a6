"""Losses against Keras: per-sample functions, Loss objects, reductions, names, configs."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

import fastnn  # noqa: E402
from compat_marks import assert_close, cases, deliberate  # noqa: E402

RNG = np.random.default_rng(0)
N, K = 5, 3
LOGITS = RNG.normal(size=(N, K)).astype("float32")
PROBS = (np.exp(LOGITS) / np.exp(LOGITS).sum(1, keepdims=True)).astype("float32")
IDS = np.array([0, 2, 1, 1, 0])
ONE_HOT = np.eye(K, dtype="float32")[IDS]
BIN_TRUE = (RNG.random((N, K)) > 0.5).astype("float32")
BIN_PRED = (1 / (1 + np.exp(-LOGITS))).astype("float32")
REG_TRUE = RNG.normal(size=(N, K)).astype("float32")
REG_PRED = RNG.normal(size=(N, K)).astype("float32")
POS_TRUE = np.abs(REG_TRUE) + 0.5
POS_PRED = np.abs(REG_PRED) + 0.5
SIGNS = np.where(BIN_TRUE > 0, 1.0, -1.0).astype("float32")
WEIGHTS = np.array([1.0, 0.5, 2.0, 0.0, 1.5], "float32")

# function name, class name, (y_true, y_pred)
LOSSES = {
    "mean_squared_error": ("MeanSquaredError", (REG_TRUE, REG_PRED)),
    "mean_absolute_error": ("MeanAbsoluteError", (REG_TRUE, REG_PRED)),
    "mean_absolute_percentage_error": ("MeanAbsolutePercentageError", (POS_TRUE, POS_PRED)),
    "mean_squared_logarithmic_error": ("MeanSquaredLogarithmicError", (POS_TRUE, POS_PRED)),
    "binary_crossentropy": ("BinaryCrossentropy", (BIN_TRUE, BIN_PRED)),
    "categorical_crossentropy": ("CategoricalCrossentropy", (ONE_HOT, PROBS)),
    "sparse_categorical_crossentropy": ("SparseCategoricalCrossentropy", (IDS, PROBS)),
    "hinge": ("Hinge", (SIGNS, REG_PRED)),
    "squared_hinge": ("SquaredHinge", (SIGNS, REG_PRED)),
    "categorical_hinge": ("CategoricalHinge", (ONE_HOT, REG_PRED)),
    "huber": ("Huber", (REG_TRUE, REG_PRED)),
    "log_cosh": ("LogCosh", (REG_TRUE, REG_PRED)),
    "kl_divergence": ("KLDivergence", (ONE_HOT * 0.8 + 0.05, PROBS)),
    "poisson": ("Poisson", (POS_TRUE, POS_PRED)),
    "cosine_similarity": ("CosineSimilarity", (REG_TRUE, REG_PRED)),
}
FUNCTIONS = sorted(LOSSES)
CLASSES = sorted(v[0] for v in LOSSES.values())
DATA = {cls: data for cls, data in LOSSES.values()}
MISSING_FN = {}
MISSING_CLS = {}


@pytest.mark.parametrize("name", cases(FUNCTIONS, MISSING_FN))
def test_function_is_per_sample(name):
    y_true, y_pred = LOSSES[name][1]
    want = np.asarray(getattr(keras.losses, name)(y_true, y_pred))
    got = np.asarray(getattr(fastnn.losses, name)(y_true, y_pred))
    assert got.shape == want.shape == (N,)
    assert_close(got, want)


@pytest.mark.parametrize("name", cases(CLASSES, MISSING_CLS))
def test_object_mean_value(name):
    y_true, y_pred = DATA[name]
    want = float(getattr(keras.losses, name)()(y_true, y_pred))
    got = float(getattr(fastnn.losses, name)()(y_true, y_pred))
    assert_close(got, want)


@pytest.mark.parametrize("name", cases(CLASSES, MISSING_CLS))
def test_object_with_sample_weight(name):
    y_true, y_pred = DATA[name]
    want = float(getattr(keras.losses, name)()(y_true, y_pred, sample_weight=WEIGHTS))
    got = float(getattr(fastnn.losses, name)()(y_true, y_pred, sample_weight=WEIGHTS))
    assert_close(got, want)


@pytest.mark.parametrize("reduction", ["sum", "none", "sum_over_batch_size", "mean"])
@pytest.mark.parametrize("name", ["MeanSquaredError", "CategoricalCrossentropy",
                                  "BinaryCrossentropy", "Huber", "SparseCategoricalCrossentropy",
                                  "Hinge"])
def test_reduction(name, reduction):
    y_true, y_pred = DATA[name]
    want = np.asarray(getattr(keras.losses, name)(reduction=reduction)(y_true, y_pred))
    got = np.asarray(getattr(fastnn.losses, name)(reduction=reduction)(y_true, y_pred))
    assert got.shape == want.shape
    assert_close(got, want)


@pytest.mark.parametrize("name", cases(CLASSES, MISSING_CLS))
def test_default_name(name):
    assert getattr(fastnn.losses, name)().name == getattr(keras.losses, name)().name


@pytest.mark.parametrize("name", cases(CLASSES, MISSING_CLS))
def test_config_keys(name):
    # axis: only the last axis is supported; ignore_class: not supported (both listed)
    want = set(getattr(keras.losses, name)().get_config()) - {"dtype", "axis", "ignore_class"}
    assert want <= set(getattr(fastnn.losses, name)().get_config())


@pytest.mark.parametrize("name", ["CategoricalCrossentropy", "BinaryCrossentropy",
                                  "SparseCategoricalCrossentropy"])
def test_from_logits(name):
    y_true = {"CategoricalCrossentropy": ONE_HOT, "BinaryCrossentropy": BIN_TRUE,
              "SparseCategoricalCrossentropy": IDS}[name]
    want = float(getattr(keras.losses, name)(from_logits=True)(y_true, LOGITS))
    got = float(getattr(fastnn.losses, name)(from_logits=True)(y_true, LOGITS))
    assert_close(got, want)


@pytest.mark.parametrize("smoothing", [0.1, 0.3])
@pytest.mark.parametrize("name", ["CategoricalCrossentropy", "BinaryCrossentropy"])
def test_label_smoothing(name, smoothing):
    y_true, y_pred = DATA[name]
    want = float(getattr(keras.losses, name)(label_smoothing=smoothing)(y_true, y_pred))
    got = float(getattr(fastnn.losses, name)(label_smoothing=smoothing)(y_true, y_pred))
    assert_close(got, want)


@pytest.mark.parametrize("delta", [0.5, 2.0])
def test_huber_delta(delta):
    want = float(keras.losses.Huber(delta=delta)(REG_TRUE, REG_PRED))
    got = float(fastnn.losses.Huber(delta=delta)(REG_TRUE, REG_PRED))
    assert_close(got, want)


LOSS_OBJECT = deliberate("losses.get(name) returns a Loss object (what compile uses), "
                         "not the per-sample function")


@pytest.mark.parametrize("alias", cases(["mse", "mae", "mape", "msle", "binary_crossentropy",
                                         "categorical_crossentropy", "hinge"],
                                        {a: LOSS_OBJECT for a in (
                                            "mse", "mae", "mape", "msle",
                                            "binary_crossentropy", "categorical_crossentropy",
                                            "hinge")}))
def test_get_by_string_is_per_sample(alias):
    fn = {"mse": "mean_squared_error", "mae": "mean_absolute_error",
          "mape": "mean_absolute_percentage_error", "msle": "mean_squared_logarithmic_error"}
    y_true, y_pred = LOSSES[fn.get(alias, alias)][1]
    want = np.asarray(keras.losses.get(alias)(y_true, y_pred))
    got = np.asarray(fastnn.losses.get(alias)(y_true, y_pred))
    assert got.shape == want.shape
    assert_close(got, want)


def test_unknown_name_raises_value_error():
    with pytest.raises(ValueError):
        keras.losses.get("mean_sqared_error")
    with pytest.raises(ValueError):
        fastnn.losses.get("mean_sqared_error")


def test_loss_object_returns_a_scalar():
    want = keras.losses.MeanSquaredError()(REG_TRUE, REG_PRED)
    got = fastnn.losses.MeanSquaredError()(REG_TRUE, REG_PRED)
    assert np.ndim(got) == np.ndim(want) == 0


@pytest.mark.parametrize("name", ["mean_squared_error", "categorical_crossentropy",
                                  "sparse_categorical_crossentropy", "binary_crossentropy"])
def test_compile_takes_the_function(name):
    out = []
    x = np.eye(3, dtype="float32")
    y = {"sparse_categorical_crossentropy": np.arange(3), "binary_crossentropy": x[:, :1],
         "categorical_crossentropy": x, "mean_squared_error": x}[name]
    for lib in (keras, fastnn):
        width = 1 if name == "binary_crossentropy" else 3
        m = lib.Sequential([lib.Input((3,)), lib.layers.Dense(
            width, activation="sigmoid" if width == 1 else "softmax",
            kernel_initializer="ones")])
        m.compile(optimizer="sgd", loss=getattr(lib.losses, name))
        out.append(m.evaluate(x, y, verbose=0))
    assert_close(out[1], out[0], rtol=1e-5)


@pytest.mark.parametrize("name", ["mean_absolute_percentage_error", "log_cosh", "poisson",
                                  "squared_hinge", "kl_divergence", "cosine_similarity"])
def test_three_steps_with_a_host_loss(name):
    y_true, _ = LOSSES[name][1]
    x = RNG.normal(size=(N, 4)).astype("float32")
    kernel = RNG.uniform(0.1, 0.5, size=(4, K)).astype("float32")
    out = []
    for lib in (keras, fastnn):
        m = lib.Sequential([lib.Input((4,)), lib.layers.Dense(
            K, activation="softmax" if name == "kl_divergence" else "softplus")])
        m.set_weights([kernel, np.zeros(K, "float32")])
        m.compile(optimizer=lib.optimizers.SGD(0.05), loss=name)
        for _ in range(3):
            m.train_on_batch(x, y_true)
        out.append(m.get_weights())
    for g, w in zip(*out):
        assert_close(g, w, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "none",
                                       "mean_with_sample_weight"])
def test_a_user_loss_subclass_reduces_weighted_values_as_keras(reduction):
    class KerasL1(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return keras.ops.mean(keras.ops.abs(y_true - y_pred), axis=-1)

    class OurL1(fastnn.losses.Loss):
        def call(self, y_true, y_pred):
            return fastnn.ops.mean(fastnn.ops.abs(y_true - y_pred), axis=-1)

    want = KerasL1(reduction=reduction)(REG_TRUE, REG_PRED, sample_weight=WEIGHTS)
    got = OurL1(reduction=reduction)(REG_TRUE, REG_PRED, sample_weight=WEIGHTS)
    assert_close(got, np.asarray(want))
