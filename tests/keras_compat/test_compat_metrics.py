"""Metrics against Keras: streaming results, sample weights, reset, names, configs."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

import fastnn  # noqa: E402
from compat_marks import assert_close, cases, deliberate  # noqa: E402

RNG = np.random.default_rng(1)
N, K = 8, 3
PROBS = RNG.dirichlet(np.ones(K), size=N).astype("float32")
IDS = np.array([0, 2, 1, 1, 0, 2, 2, 1])
ONE_HOT = np.eye(K, dtype="float32")[IDS]
BIN_TRUE = np.array([[1], [0], [1], [1], [0], [0], [1], [0]], "float32")
BIN_PRED = np.array([[0.9], [0.2], [0.4], [0.7], [0.6], [0.1], [0.8], [0.3]], "float32")
REG_TRUE = RNG.normal(size=(N, 2)).astype("float32")
REG_PRED = RNG.normal(size=(N, 2)).astype("float32")
WEIGHTS = np.array([1, 0.5, 2, 0, 1.5, 1, 1, 0.25], "float32")

# class name -> (constructor kwargs, y_true, y_pred)
METRICS = {
    "Accuracy": ({}, IDS[:, None].astype("float32"), PROBS.argmax(1)[:, None].astype("float32")),
    "BinaryAccuracy": ({}, BIN_TRUE, BIN_PRED),
    "CategoricalAccuracy": ({}, ONE_HOT, PROBS),
    "SparseCategoricalAccuracy": ({}, IDS, PROBS),
    "TopKCategoricalAccuracy": ({"k": 2}, ONE_HOT, PROBS),
    "Precision": ({}, BIN_TRUE, BIN_PRED),
    "Recall": ({}, BIN_TRUE, BIN_PRED),
    "TruePositives": ({}, BIN_TRUE, BIN_PRED),
    "FalsePositives": ({}, BIN_TRUE, BIN_PRED),
    "TrueNegatives": ({}, BIN_TRUE, BIN_PRED),
    "FalseNegatives": ({}, BIN_TRUE, BIN_PRED),
    "F1Score": ({"average": "macro", "threshold": 0.5}, ONE_HOT, PROBS),
    "FBetaScore": ({"average": "micro", "beta": 2.0, "threshold": 0.4}, ONE_HOT, PROBS),
    "MeanSquaredError": ({}, REG_TRUE, REG_PRED),
    "MeanAbsoluteError": ({}, REG_TRUE, REG_PRED),
    "RootMeanSquaredError": ({}, REG_TRUE, REG_PRED),
    "AUC": ({}, BIN_TRUE, BIN_PRED),
    "AUC_PR": ({"curve": "PR"}, BIN_TRUE, BIN_PRED),
    "MeanAbsolutePercentageError": ({}, np.abs(REG_TRUE) + 1, REG_PRED),
    "CosineSimilarity": ({}, REG_TRUE, REG_PRED),
}
NAMES = sorted(METRICS)
MISSING = {}


def make(lib, name):
    kwargs = METRICS[name][0]
    return getattr(lib.metrics, name.split("_")[0])(**kwargs)


def stream(metric, name, weights=None):
    _, y_true, y_pred = METRICS[name]
    half = N // 2
    for sl in (slice(0, half), slice(half, N)):
        if weights is None:
            metric.update_state(y_true[sl], y_pred[sl])
        else:
            metric.update_state(y_true[sl], y_pred[sl], sample_weight=weights[sl])
    return np.asarray(metric.result())


@pytest.mark.parametrize("name", cases(NAMES, MISSING))
def test_streamed_result(name):
    assert_close(stream(make(fastnn, name), name), stream(make(keras, name), name), atol=1e-5)


@pytest.mark.parametrize("name", cases(NAMES, MISSING))
def test_streamed_result_with_sample_weight(name):
    want = stream(make(keras, name), name, WEIGHTS)
    got = stream(make(fastnn, name), name, WEIGHTS)
    assert_close(got, want, atol=1e-5)


@pytest.mark.parametrize("name", cases(NAMES, MISSING))
def test_reset_state(name):
    k, f = make(keras, name), make(fastnn, name)
    stream(k, name)
    stream(f, name)
    k.reset_state()
    f.reset_state()
    assert_close(f.result(), k.result())


def base_name(name):
    """A name without the ``_<n>`` Keras appends to tell objects apart."""
    stem, _, tail = name.rpartition("_")
    return stem if stem and tail.isdigit() else name


@pytest.mark.parametrize("name", cases(NAMES, MISSING))
def test_default_name(name):
    assert base_name(make(fastnn, name).name) == base_name(make(keras, name).name)


KERAS_ONLY_KEYS = {"dtype"}


@pytest.mark.parametrize("name", cases(NAMES, MISSING))
def test_config_keys(name):
    want = set(make(keras, name).get_config()) - KERAS_ONLY_KEYS
    assert want <= set(make(fastnn, name).get_config())


@pytest.mark.parametrize("name", cases(["Precision", "Recall", "TruePositives"], {}))
def test_several_thresholds(name):
    k = getattr(keras.metrics, name)(thresholds=[0.3, 0.5, 0.7])
    f = getattr(fastnn.metrics, name)(thresholds=[0.3, 0.5, 0.7])
    k.update_state(BIN_TRUE, BIN_PRED)
    f.update_state(BIN_TRUE, BIN_PRED)
    assert np.shape(f.result()) == np.shape(k.result())
    assert_close(f.result(), k.result())


@pytest.mark.parametrize("values", [[1.0, 2.0, 4.0], np.array([[1.0, 3.0], [5.0, 7.0]])],
                         ids=["list", "array"])
@pytest.mark.parametrize("name", cases(["Mean", "Sum"], {}))
def test_mean_and_sum(name, values):
    k, f = getattr(keras.metrics, name)(), getattr(fastnn.metrics, name)()
    k.update_state(values)
    f.update_state(values)
    k.update_state(values, sample_weight=np.full(np.shape(values), 0.5))
    f.update_state(values, sample_weight=np.full(np.shape(values), 0.5))
    assert_close(f.result(), k.result())
    assert f.name == k.name


@pytest.mark.parametrize("name", cases(["F1Score", "FBetaScore"], {}))
@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
def test_f_score_average(name, average):
    k = getattr(keras.metrics, name)(average=average, threshold=0.5)
    f = getattr(fastnn.metrics, name)(average=average, threshold=0.5)
    k.update_state(ONE_HOT, PROBS)
    f.update_state(ONE_HOT, PROBS)
    assert_close(f.result(), k.result())


def test_unknown_metric_string_raises_value_error():
    with pytest.raises(ValueError):
        keras.metrics.get("acuracy")
    with pytest.raises(ValueError):
        fastnn.metrics.get("acuracy")


STABLE_NAMES = deliberate(
    "a metric object's default name does not depend on how many were made before; two "
    "with one name in one compile log as precision and precision_1")


@pytest.mark.parametrize("name", cases(["Precision", "Mean", "AUC"], {
    "Precision": STABLE_NAMES, "AUC": STABLE_NAMES}))
def test_two_objects_get_usable_names(name):
    k1, k2 = getattr(keras.metrics, name)(), getattr(keras.metrics, name)()
    f1, f2 = getattr(fastnn.metrics, name)(), getattr(fastnn.metrics, name)()
    assert (f1.name == f2.name) == (k1.name == k2.name)
    assert base_name(f1.name) == base_name(k1.name)


def test_two_metrics_of_one_class_in_compile_log_under_distinct_names():
    keys = []
    x = np.random.default_rng(3).normal(size=(8, 3)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    for lib in (keras, fastnn):
        m = lib.Sequential([lib.Input((3,)), lib.layers.Dense(1, activation="sigmoid")])
        m.compile(optimizer="sgd", loss="binary_crossentropy",
                  metrics=[lib.metrics.Precision(), lib.metrics.Precision(thresholds=0.7)])
        logs = m.evaluate(x, y, verbose=0, return_dict=True)
        keys.append(len(set(logs)))
    assert keys[0] == keys[1] == 3
