"""Metrics against scikit-learn on random predictions, streaming vs one-shot, config."""
import json

import numpy
import pytest
from sklearn import metrics as skm

import fastnn
from fastnn import layers, metrics

RNG = numpy.random.default_rng(0)


def _binary(n=200, positive_rate=0.3, seed=0):
    rng = numpy.random.default_rng(seed)
    y = (rng.random(n) < positive_rate).astype("float32")
    p = numpy.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    return y, p.astype("float32")


def _multiclass(n=300, k=4, seed=1, imbalanced=True):
    rng = numpy.random.default_rng(seed)
    prior = [0.6, 0.25, 0.1, 0.05][:k] if imbalanced else None
    ids = rng.choice(k, size=n, p=prior)
    scores = rng.random((n, k)) + 0.6 * numpy.eye(k)[ids]
    return ids, scores / scores.sum(axis=1, keepdims=True)


def _streamed(metric, y, p, w=None, batches=5):
    metric.reset_state()
    for idx in numpy.array_split(numpy.arange(len(y)), batches):
        metric.update_state(y[idx], p[idx], None if w is None else w[idx])
    return metric.result()


# ----------------------------------------------------------------------------- binary
@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.8])
def test_precision_recall_f1_binary_match_sklearn(threshold):
    y, p = _binary()
    hard = (p > threshold).astype(int)
    assert metrics.Precision(thresholds=threshold)(y, p) == pytest.approx(
        skm.precision_score(y, hard, zero_division=0))
    assert metrics.Recall(thresholds=threshold)(y, p) == pytest.approx(
        skm.recall_score(y, hard, zero_division=0))
    f1 = metrics.F1Score(threshold=threshold)(y[:, None], p[:, None])
    assert f1.shape == (1,)
    assert f1[0] == pytest.approx(skm.f1_score(y, hard), rel=1e-5)


def test_confusion_counts_match_sklearn_with_weights():
    y, p = _binary()
    w = RNG.random(len(y))
    hard = (p > 0.5).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, hard, sample_weight=w).ravel()
    for cls, want in [(metrics.TruePositives, tp), (metrics.FalsePositives, fp),
                      (metrics.TrueNegatives, tn), (metrics.FalseNegatives, fn)]:
        assert cls()(y, p, w) == pytest.approx(want)
        assert _streamed(cls(), y, p, w) == pytest.approx(want)


def test_list_of_thresholds_gives_one_value_each():
    y, p = _binary()
    thresholds = [0.2, 0.5, 0.9]
    tp = metrics.TruePositives(thresholds=thresholds)(y, p)
    precision = metrics.Precision(thresholds=thresholds)(y, p)
    assert tp.shape == precision.shape == (3,)
    for i, t in enumerate(thresholds):
        hard = (p > t).astype(int)
        assert tp[i] == skm.confusion_matrix(y, hard).ravel()[3]
        assert precision[i] == pytest.approx(skm.precision_score(y, hard, zero_division=0))


def test_precision_is_zero_without_predicted_positives():
    assert metrics.Precision()([1, 0, 1], [0.1, 0.2, 0.3]) == 0.0
    assert metrics.Recall()([0, 0, 0], [0.9, 0.2, 0.3]) == 0.0


# ----------------------------------------------------------------------------- multi-class
@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
@pytest.mark.parametrize("imbalanced", [True, False])
def test_f1_averages_match_sklearn(average, imbalanced):
    ids, p = _multiclass(imbalanced=imbalanced)
    want = skm.f1_score(ids, p.argmax(axis=1), average=average)
    one_hot = numpy.eye(p.shape[1])[ids]
    assert metrics.F1Score(average=average)(one_hot, p) == pytest.approx(want, rel=1e-5)
    assert _streamed(metrics.F1Score(average=average), one_hot, p) == pytest.approx(want,
                                                                                   rel=1e-5)
    # integer class ids are one-hot encoded for you
    assert metrics.F1Score(average=average)(ids, p) == pytest.approx(want, rel=1e-5)


def test_f1_per_class_and_fbeta_match_sklearn():
    ids, p = _multiclass()
    one_hot = numpy.eye(p.shape[1])[ids]
    numpy.testing.assert_allclose(metrics.F1Score()(one_hot, p),
                                  skm.f1_score(ids, p.argmax(axis=1), average=None), rtol=1e-5)
    numpy.testing.assert_allclose(
        metrics.FBetaScore(average="macro", beta=2.0)(one_hot, p),
        skm.fbeta_score(ids, p.argmax(axis=1), beta=2.0, average="macro"), rtol=1e-5)


def test_f1_sample_weight_matches_sklearn():
    ids, p = _multiclass()
    w = RNG.random(len(ids))
    want = skm.f1_score(ids, p.argmax(axis=1), average="weighted", sample_weight=w)
    assert _streamed(metrics.F1Score(average="weighted"), ids, p, w) == pytest.approx(
        want, rel=1e-5)


def test_precision_class_id_and_top_k():
    ids, p = _multiclass()
    one_hot = numpy.eye(p.shape[1])[ids]
    hard = p.argmax(axis=1)
    want = skm.precision_score(ids == 2, hard == 2)
    # top_k=1 keeps only each row's arg-max as a candidate: per-class precision of arg-max
    assert metrics.Precision(top_k=1, class_id=2)(one_hot, p) == pytest.approx(want)
    assert metrics.Recall(top_k=1, class_id=2)(ids, p) == pytest.approx(
        skm.recall_score(ids == 2, hard == 2))
    micro = skm.precision_score(ids, hard, average="micro")
    assert metrics.Precision(top_k=1)(one_hot, p) == pytest.approx(micro)


# ----------------------------------------------------------------------------- regression, accuracy
def test_mean_squared_and_absolute_error_stream_like_sklearn():
    y, p = RNG.normal(size=(50, 3)), RNG.normal(size=(50, 3))
    w = RNG.random(50)
    assert _streamed(metrics.MeanSquaredError(), y, p, w) == pytest.approx(
        skm.mean_squared_error(y, p, sample_weight=w))
    assert _streamed(metrics.MeanAbsoluteError(), y, p) == pytest.approx(
        skm.mean_absolute_error(y, p))


def test_accuracies_match_sklearn():
    ids, p = _multiclass()
    want = skm.accuracy_score(ids, p.argmax(axis=1))
    assert _streamed(metrics.SparseCategoricalAccuracy(), ids, p) == pytest.approx(want)
    assert metrics.CategoricalAccuracy()(numpy.eye(4)[ids], p) == pytest.approx(want)
    y, pb = _binary()
    assert metrics.BinaryAccuracy()(y, pb) == pytest.approx(skm.accuracy_score(y, pb > 0.5))


# ----------------------------------------------------------------------------- names, config, errors
@pytest.mark.parametrize("name, cls", [
    ("precision", metrics.Precision), ("recall", metrics.Recall),
    ("f1_score", metrics.F1Score), ("F1Score", metrics.F1Score),
    ("fbeta_score", metrics.FBetaScore), ("true_positives", metrics.TruePositives),
    ("false_positives", metrics.FalsePositives), ("true_negatives", metrics.TrueNegatives),
    ("false_negatives", metrics.FalseNegatives), ("mse", metrics.MeanSquaredError),
    ("mean_squared_error", metrics.MeanSquaredError), ("mae", metrics.MeanAbsoluteError),
    ("binary_accuracy", metrics.BinaryAccuracy)])
def test_keras_strings(name, cls):
    metric = metrics.get(name)
    assert type(metric) is cls and metric.name == name


@pytest.mark.parametrize("metric", [
    metrics.Precision(thresholds=[0.3, 0.6], name="p"), metrics.Recall(top_k=2, class_id=1),
    metrics.F1Score(average="weighted", threshold=0.4),
    metrics.FBetaScore(average="micro", beta=0.5), metrics.TruePositives(thresholds=0.7),
    metrics.FalseNegatives(), metrics.BinaryAccuracy(threshold=0.2),
    metrics.MeanAbsoluteError(name="err")], ids=lambda m: type(m).__name__)
def test_config_round_trip(metric):
    again = metrics.get(json.loads(json.dumps(metrics.serialize(metric))))
    assert type(again) is type(metric) and again.get_config() == metric.get_config()
    ids, p = _multiclass(k=3, imbalanced=False)
    one_hot = numpy.eye(3)[ids]
    numpy.testing.assert_allclose(again(one_hot, p), metric(one_hot, p))


@pytest.mark.parametrize("make", [
    lambda: metrics.Precision(thresholds=1.5), lambda: metrics.TruePositives(thresholds=[]),
    lambda: metrics.Recall(thresholds="high"), lambda: metrics.Precision(top_k=0),
    lambda: metrics.F1Score(average="samples"), lambda: metrics.F1Score(threshold=0.0),
    lambda: metrics.FBetaScore(beta=-1.0), lambda: metrics.get("precission")])
def test_bad_arguments_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_mismatched_shapes_raise_value_error():
    with pytest.raises(ValueError, match="shape"):
        metrics.Precision()(numpy.zeros((4, 2)), numpy.zeros((4, 3)))
    with pytest.raises(ValueError, match="class ids"):
        metrics.F1Score()(numpy.array([0, 5]), numpy.zeros((2, 3)))


# ----------------------------------------------------------------------------- inside fit
def test_metrics_in_fit_history_with_val_prefix():
    fastnn.utils.set_random_seed(0)
    x, y = _binary_problem()
    model = fastnn.Sequential([layers.Dense(8, activation="relu", input_shape=(4,)),
                               layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=["precision", metrics.Recall(name="rec"), "true_positives",
                           metrics.F1Score(average="micro", threshold=0.5)])
    history = model.fit(x[:160], y[:160], epochs=2, verbose=0, batch_size=32,
                        validation_data=(x[160:], y[160:]))
    for key in ("precision", "rec", "true_positives", "f1_score"):
        assert len(history.history[key]) == 2 and len(history.history["val_" + key]) == 2
    hard = (model.predict(x[160:]) > 0.5).astype(int).ravel()
    assert history.history["val_precision"][-1] == pytest.approx(
        skm.precision_score(y[160:], hard, zero_division=0), abs=1e-6)
    assert history.history["val_true_positives"][-1] == skm.confusion_matrix(
        y[160:], hard).ravel()[3]


def _binary_problem():
    rng = numpy.random.default_rng(3)
    x = rng.normal(size=(200, 4)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("float32")
    return x, y


# ---------------------------------------------------------------- AUC, RMSE, Mean and Sum
def _roc_auc_exact(y, p):
    """Probability that a random positive scores above a random negative (ties count 1/2)."""
    pos, neg = p[y == 1], p[y == 0]
    return ((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def test_auc_roc_approaches_the_rank_statistic():
    rng = numpy.random.default_rng(3)
    y = (rng.random(400) > 0.6).astype("float32")
    p = numpy.clip(0.3 * y + rng.random(400) * 0.7, 0, 1)
    m = metrics.AUC(num_thresholds=2000)
    m.update_state(y[:200], p[:200])
    m.update_state(y[200:], p[200:])
    assert m.result() == pytest.approx(_roc_auc_exact(y, p), abs=2e-3)


def test_auc_pr_of_a_perfect_ranking_is_one():
    y = numpy.array([0, 0, 1, 1], "float32")
    m = metrics.AUC(curve="PR")
    m.update_state(y, numpy.array([0.1, 0.2, 0.8, 0.9]))
    assert m.result() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("bad", [dict(curve="XY"), dict(num_thresholds=1),
                                 dict(summation_method="avg")])
def test_auc_bad_arguments(bad):
    with pytest.raises(ValueError):
        metrics.AUC(**bad)


def test_root_mean_squared_error():
    m = metrics.RootMeanSquaredError()
    m.update_state([[0.0], [0.0]], [[3.0], [4.0]])
    assert m.result() == pytest.approx(numpy.sqrt(12.5))


def test_mean_and_sum_with_broadcast_weights():
    mean, total = metrics.Mean(), metrics.Sum()
    values = numpy.array([[1.0, 3.0], [5.0, 7.0]])
    for m in (mean, total):
        m.update_state(values, sample_weight=[1.0, 0.0])
    assert mean.result() == pytest.approx(2.0) and total.result() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="sample_weight"):
        mean.update_state(values, sample_weight=[1.0, 2.0, 3.0])


def test_top_k_mape_and_cosine_similarity():
    top2 = metrics.TopKCategoricalAccuracy(k=2)
    top2.update_state(numpy.eye(3)[[0, 1]], [[0.5, 0.3, 0.2], [0.6, 0.1, 0.3]])
    assert top2.result() == pytest.approx(0.5)
    mape = metrics.MeanAbsolutePercentageError()
    mape.update_state([[2.0], [4.0]], [[1.0], [5.0]])
    assert mape.result() == pytest.approx((50 + 25) / 2)
    cos = metrics.CosineSimilarity()
    cos.update_state([[1.0, 0.0], [0.0, 2.0]], [[3.0, 0.0], [0.0, -1.0]])
    assert cos.result() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="k must"):
        metrics.TopKCategoricalAccuracy(k=0)
