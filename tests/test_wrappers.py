"""fastnn.wrappers: scikit-learn estimators around fastnn models."""
import inspect
import json
import os
import pickle
import subprocess
import sys

import numpy
import pytest

pytest.importorskip("sklearn", minversion="1.6")  # check_estimator(expected_failed_checks=)

from scipy.stats import loguniform  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_breast_cancer, make_classification, make_regression  # noqa: E402
from sklearn.model_selection import (GridSearchCV, RandomizedSearchCV,  # noqa: E402
                                     cross_val_score)
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

import fastnn  # noqa: E402
from fastnn.models import InvalidModelFileError  # noqa: E402
from fastnn.utils.random import get_rng  # noqa: E402
from fastnn.wrappers import (EXPECTED_FAILED_CHECKS, SKLearnClassifier,  # noqa: E402
                             SKLearnRegressor, SKLearnTransformer, build_mlp)

REGRESSION = {"output_activation": None, "loss": "mse"}


def classifier(epochs=20, **model_kwargs):
    kwargs = {"hidden_layer_sizes": (16,), "learning_rate": 0.02, **model_kwargs}
    return SKLearnClassifier(build_mlp, model_kwargs=kwargs, fit_kwargs={"epochs": epochs},
                             random_state=0)


def regressor(epochs=20, **model_kwargs):
    kwargs = {"hidden_layer_sizes": (16,), "learning_rate": 0.02, **REGRESSION, **model_kwargs}
    return SKLearnRegressor(build_mlp, model_kwargs=kwargs, fit_kwargs={"epochs": epochs},
                            random_state=0)


def transformer(epochs=2, **model_kwargs):
    kwargs = {"hidden_layer_sizes": (8,), **REGRESSION, **model_kwargs}
    return SKLearnTransformer(build_mlp, model_kwargs=kwargs, fit_kwargs={"epochs": epochs},
                              random_state=0)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


# ----------------------------------------------------------------- check_estimator
@pytest.mark.parametrize("make", [classifier, regressor, transformer],
                         ids=["classifier", "regressor", "transformer"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
def test_check_estimator(make):
    estimator = make()
    expected = EXPECTED_FAILED_CHECKS[type(estimator).__name__]
    results = check_estimator(estimator, expected_failed_checks=expected, on_fail=None)
    failed = {r["check_name"]: r["exception"] for r in results if r["status"] == "failed"}
    assert not failed
    # An expected failure may pass when the float32 rounding happens to agree.
    xfailed = {r["check_name"] for r in results if r["status"] == "xfail"}
    assert xfailed <= set(expected)
    assert sum(r["status"] == "passed" for r in results) > 40


def test_expected_failed_checks_are_documented(repo_root):
    doc = (repo_root / "docs" / "sklearn.md").read_text()
    for checks in EXPECTED_FAILED_CHECKS.values():
        for name in checks:
            assert name in doc


@pytest.mark.parametrize("make", [classifier, regressor, transformer],
                         ids=["classifier", "regressor", "transformer"])
def test_sample_weights_train_as_repeated_samples(make):
    """Integer weights equal repeated samples: full batches, plain SGD (scale-sensitive)."""
    rng = numpy.random.RandomState(0)
    X = rng.rand(15, 6)
    y = numpy.arange(15) % 3
    weights = rng.randint(0, 4, size=15)  # zeros drop samples, others repeat them
    weights[:3] = [1, 2, 3]  # every class keeps a sample
    estimator = make(optimizer="sgd", learning_rate=0.1)
    estimator.set_params(fit_kwargs={"epochs": 10, "batch_size": 256})
    weighted = clone(estimator).fit(X, y, sample_weight=weights)
    repeated = clone(estimator).fit(X.repeat(weights, axis=0), y.repeat(weights))
    method = {classifier: "predict_proba", regressor: "predict", transformer: "transform"}[make]
    a, b = getattr(weighted, method)(X), getattr(repeated, method)(X)
    numpy.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
    unweighted = clone(estimator).fit(X, y)
    assert not numpy.allclose(getattr(unweighted, method)(X), a, rtol=1e-3)
    ones = clone(estimator).fit(X, y, sample_weight=numpy.ones(15))
    numpy.testing.assert_array_equal(getattr(ones, method)(X), getattr(unweighted, method)(X))


def test_sample_weight_errors():
    X, y = make_classification(n_samples=20, random_state=0)
    with pytest.raises(ValueError, match="non-zero"):
        classifier(epochs=1).fit(X, y, sample_weight=numpy.zeros(20))
    with pytest.raises(ValueError, match="only one class"):
        classifier(epochs=1).fit(X, y, sample_weight=(y == 1).astype(float))
    with pytest.raises(TypeError, match="sample_weight"):
        SKLearnClassifier(build_mlp, fit_kwargs={"sample_weight": y}).fit(X, y)


# ----------------------------------------------------------------- classifier behaviour
def test_string_labels_classes_and_proba(cancer):
    X, y = cancer
    labels = numpy.array(["malignant", "benign"])[y]
    clf = classifier(epochs=5).fit(X, labels)
    assert list(clf.classes_) == ["benign", "malignant"]
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2) and proba.dtype == numpy.float64
    numpy.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    predicted = clf.predict(X)
    assert predicted.dtype == labels.dtype
    numpy.testing.assert_array_equal(predicted, clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X, labels) > 0.9
    assert clf.n_features_in_ == X.shape[1]
    assert clf.model_.layers[-1].units == 2


def test_multiclass_object_labels():
    X, y = make_classification(n_samples=90, n_classes=3, n_informative=4, random_state=0)
    labels = numpy.array([None, "b", 3], dtype=object)[y]
    labels[labels == None] = "a"  # noqa: E711 -- mixed object labels, all strings or ints
    labels = numpy.array([str(v) for v in labels], dtype=object)
    clf = classifier(epochs=5).fit(X, labels)
    assert list(clf.classes_) == ["3", "a", "b"]
    assert set(clf.predict(X)) <= {"3", "a", "b"}


class _Frame:
    """A stand-in DataFrame: an array with column names (pandas is not a dependency)."""

    def __init__(self, data, columns):
        self.data, self.columns = numpy.asarray(data), numpy.asarray(columns, dtype=object)
        self.shape = self.data.shape

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __len__(self):
        return len(self.data)


def test_feature_names_in(monkeypatch):
    # scikit-learn reads column names from the data frames narwhals knows; let it read ours.
    import sklearn.utils.validation as validation
    original = validation._get_feature_names
    monkeypatch.setattr(validation, "_get_feature_names",
                        lambda X: X.columns if isinstance(X, _Frame) else original(X))
    X, y = make_classification(n_samples=40, n_features=3, n_informative=2, n_redundant=0,
                               random_state=0)
    clf = classifier(epochs=2).fit(_Frame(X, ["a", "b", "c"]), y)
    assert list(clf.feature_names_in_) == ["a", "b", "c"]
    clf.predict(_Frame(X, ["a", "b", "c"]))
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(_Frame(X, ["a", "c", "b"]))
    clf.fit(X, y)  # refitting on a plain array forgets the names
    assert not hasattr(clf, "feature_names_in_")


def test_regression_target_rejected_by_classifier():
    X, y = make_regression(n_samples=20, random_state=0)
    with pytest.raises(ValueError, match="Unknown label type"):
        classifier(epochs=1).fit(X, y)


# ----------------------------------------------------------------- reproducibility
def test_random_state_repeats_and_leaves_the_shared_stream_alone(cancer):
    X, y = cancer
    before = get_rng().bit_generator.state
    a = classifier(epochs=3).fit(X, y).predict_proba(X)
    b = classifier(epochs=3).fit(X, y).predict_proba(X)
    assert get_rng().bit_generator.state == before
    numpy.testing.assert_array_equal(a, b)
    c = classifier(epochs=3).set_params(random_state=1).fit(X, y).predict_proba(X)
    assert not numpy.allclose(a, c)
    d = classifier(epochs=3).set_params(random_state=numpy.random.RandomState(0))
    numpy.testing.assert_array_equal(d.fit(X, y).predict_proba(X),
                                     classifier(epochs=3).set_params(
                                         random_state=numpy.random.RandomState(0))
                                     .fit(X, y).predict_proba(X))


def test_random_state_none_uses_the_shared_stream(cancer):
    X, y = cancer
    clf = classifier(epochs=1).set_params(random_state=None)
    fastnn.utils.set_random_seed(3)
    a = clf.fit(X, y).predict_proba(X)
    fastnn.utils.set_random_seed(3)
    b = clone(clf).fit(X, y).predict_proba(X)
    numpy.testing.assert_array_equal(a, b)
    c = clone(clf).fit(X, y).predict_proba(X)  # the stream has moved on
    assert not numpy.array_equal(a, c)


# ----------------------------------------------------------------- regressor, transformer
def test_regressor_shapes():
    X, y = make_regression(n_samples=60, n_features=4, n_targets=2, random_state=0)
    y = y / y.std()
    two = regressor(epochs=30).fit(X, y)
    assert two.predict(X).shape == (60, 2) and two.predict(X).dtype == numpy.float64
    one = regressor(epochs=30).fit(X, y[:, 0])
    assert one.predict(X).shape == (60,)
    assert one.score(X, y[:, 0]) > 0.5


def test_transformer_without_y_reproduces_x():
    X = numpy.random.default_rng(0).normal(size=(50, 5))
    tr = SKLearnTransformer(build_mlp, model_kwargs={"hidden_layer_sizes": (3,), **REGRESSION,
                                                     "learning_rate": 0.01},
                            fit_kwargs={"epochs": 100}, random_state=0)
    out = tr.fit_transform(X)
    assert out.shape == X.shape
    assert ((out - X) ** 2).mean() < 0.8 * ((X - X.mean(axis=0)) ** 2).mean()


# ----------------------------------------------------------------- model argument, warm start
def test_model_instance_is_copied_not_trained():
    X, y = make_classification(n_samples=40, random_state=0)
    model = build_mlp(X, numpy.eye(2)[y], hidden_layer_sizes=(8,))
    model.predict(X[:1])  # built: its weights exist
    before = model.get_weights()
    assert len(before) == 4
    clf = SKLearnClassifier(model, fit_kwargs={"epochs": 2}, random_state=0).fit(X, y)
    assert clf.model_ is not model
    for a, b in zip(before, model.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    copy = clone(clf)
    assert copy.model is not model and not hasattr(copy, "model_")
    numpy.testing.assert_array_equal(copy.fit(X, y).predict_proba(X), clf.predict_proba(X))
    trained = clf.model_.get_weights()
    assert not numpy.array_equal(trained[0], before[0])  # the copy trained from these weights


def test_model_must_be_compiled():
    X, y = make_classification(n_samples=20, random_state=0)

    def uncompiled(X, y):
        return fastnn.Sequential([fastnn.Input(shape=(X.shape[1],)),
                                  fastnn.layers.Dense(y.shape[1], activation="softmax")])

    with pytest.raises(ValueError, match="compiled"):
        SKLearnClassifier(uncompiled).fit(X, y)
    with pytest.raises(TypeError, match="callable"):
        SKLearnClassifier(42).fit(X, y)


def test_warm_start_continues_training(cancer):
    X, y = cancer
    clf = classifier(epochs=2).set_params(warm_start=True).fit(X, y)
    model = clf.model_
    first_loss = clf.history_["loss"][-1]
    clf.fit(X, y)
    assert clf.model_ is model and clf.history_["loss"][-1] < first_loss
    with pytest.raises(ValueError, match="does not know"):
        clf.fit(X, numpy.where(y == 1, 2, y))
    cold = classifier(epochs=2).fit(X, y)
    old = cold.model_
    cold.fit(X, y)
    assert cold.model_ is not old


def test_fit_kwargs_are_not_mutated(cancer):
    X, y = cancer
    fit_kwargs = {"epochs": 1}
    clf = SKLearnClassifier(build_mlp, fit_kwargs=fit_kwargs, random_state=0)
    clf.fit(X, y, batch_size=64)
    assert fit_kwargs == {"epochs": 1} and clf.fit_kwargs is fit_kwargs


# ----------------------------------------------------------------- search, pipelines
def test_routed_parameters():
    clf = classifier()
    params = clf.get_params()
    assert params["model_kwargs__learning_rate"] == 0.02
    assert params["fit_kwargs__epochs"] == 20
    original = clf.model_kwargs
    clf.set_params(model_kwargs__learning_rate=0.5, fit_kwargs__batch_size=8)
    assert clf.model_kwargs["learning_rate"] == 0.5 and clf.model_kwargs["hidden_layer_sizes"]
    assert original["learning_rate"] == 0.02  # a copy was updated
    assert clf.fit_kwargs == {"epochs": 20, "batch_size": 8}
    with pytest.raises(ValueError, match="Invalid parameter"):
        clf.set_params(nope=1)


def test_pipeline_and_cross_val_score_in_two_processes(cancer):
    X, y = cancer
    pipe = make_pipeline(StandardScaler(), classifier(epochs=5))
    scores = cross_val_score(pipe, X, y, cv=3, n_jobs=2)
    assert scores.shape == (3,) and scores.min() > 0.9
    numpy.testing.assert_allclose(scores, cross_val_score(pipe, X, y, cv=3, n_jobs=1))


def test_grid_search(cancer):
    X, y = cancer
    search = GridSearchCV(classifier(epochs=3),
                          {"model_kwargs__hidden_layer_sizes": [(4,), (16,)],
                           "fit_kwargs__batch_size": [32, 64]}, cv=2)
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.model_kwargs["hidden_layer_sizes"] == \
        search.best_params_["model_kwargs__hidden_layer_sizes"]
    assert search.score(X, y) > 0.9


def test_randomized_search_log_uniform(cancer):
    X, y = cancer
    search = RandomizedSearchCV(classifier(epochs=3),
                                {"model_kwargs__learning_rate": loguniform(1e-4, 1e-1),
                                 "model_kwargs__l2": loguniform(1e-6, 1e-2)},
                                n_iter=4, cv=2, random_state=0)
    search.fit(X, y)
    rates = [p["model_kwargs__learning_rate"] for p in search.cv_results_["params"]]
    assert len(set(rates)) == 4 and all(1e-4 <= r <= 1e-1 for r in rates)
    assert search.best_estimator_.model_.layers[-1].kernel_regularizer.l2 == \
        pytest.approx(search.best_params_["model_kwargs__l2"])


def test_search_over_a_dask_cluster(cancer):
    distributed = pytest.importorskip("distributed")
    joblib = pytest.importorskip("joblib")
    X, y = cancer
    # Two single-thread workers: with one core in all, joblib would run the fits locally.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        search = GridSearchCV(classifier(epochs=2), {"model_kwargs__learning_rate": [0.01, 0.1]},
                              cv=2, n_jobs=2)
        with joblib.parallel_backend("dask"), distributed.get_task_stream(client) as tasks:
            search.fit(X, y)
        assert len(tasks.data) >= 4  # 2 candidates x 2 folds ran as tasks on the cluster
    local = GridSearchCV(classifier(epochs=2), {"model_kwargs__learning_rate": [0.01, 0.1]},
                         cv=2).fit(X, y)
    numpy.testing.assert_array_equal(search.cv_results_["mean_test_score"],
                                     local.cv_results_["mean_test_score"])


# ----------------------------------------------------------------- pickling, clone
def test_pickle_carries_the_model_as_fastnn_file_bytes(cancer):
    X, y = cancer
    clf = classifier(epochs=2).fit(X, y)
    data = pickle.dumps(clf)
    assert b"fastnn.models.sequential" not in data and b"config.json" in data
    restored = pickle.loads(data)
    numpy.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    assert restored.model_ is not clf.model_


def test_unpickling_checks_the_model_file():
    X, y = make_classification(n_samples=20, random_state=0)
    state = classifier(epochs=1).fit(X, y).__getstate__()
    state["_fastnn_model_files"]["model_"] = b"PK\x03\x04 not a model"
    with pytest.raises(InvalidModelFileError):
        SKLearnClassifier.__new__(SKLearnClassifier).__setstate__(state)


def test_unpickling_leaves_the_shared_stream_alone(cancer):
    X, y = cancer
    data = pickle.dumps(classifier(epochs=1).fit(X, y))
    before = get_rng().bit_generator.state
    pickle.loads(data)
    assert get_rng().bit_generator.state == before


def test_clone_is_unfitted_with_equal_params(cancer):
    X, y = cancer
    clf = classifier(epochs=1).fit(X, y)
    copy = clone(clf)
    assert not hasattr(copy, "model_") and not hasattr(copy, "classes_")
    assert copy.get_params() == clf.get_params()
    assert copy.model_kwargs is not clf.model_kwargs


# ----------------------------------------------------------------- Keras, imports
def test_constructor_matches_keras(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # read when Keras is first imported
    pytest.importorskip("jax")
    keras_wrappers = pytest.importorskip("keras.wrappers")
    for name in ("SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"):
        ours = inspect.signature(getattr(fastnn.wrappers, name)).parameters
        theirs = inspect.signature(getattr(keras_wrappers, name)).parameters
        assert list(ours)[:len(theirs)] == list(theirs)
        for key, param in theirs.items():
            assert ours[key].default == param.default, key
        assert list(ours)[len(theirs):] == ["random_state"]


def test_fastnn_imports_without_sklearn():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import fastnn, fastnn.wrappers\n"
            "assert 'sklearn' not in [m.split('.')[0] for m in sys.modules if sys.modules[m]]\n"
            "assert callable(fastnn.wrappers.build_mlp)\n"
            "try:\n    fastnn.wrappers.SKLearnClassifier\n"
            "except ImportError as exc:\n    assert 'fastnn-toolkit[sklearn]' in str(exc)\n"
            "else:\n    raise SystemExit('no ImportError')\n")
    package_parent = os.path.dirname(os.path.dirname(fastnn.__file__))
    env = {**os.environ, "PYTHONPATH": package_parent}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_bench_sklearn_compare_smoke(repo_root, tmp_path):
    out = tmp_path / "compare.json"
    package_parent = os.path.dirname(os.path.dirname(fastnn.__file__))
    env = {**os.environ, "PYTHONPATH": package_parent}
    result = subprocess.run([sys.executable, str(repo_root / "bench" / "sklearn_compare.py"),
                             "--smoke", "--json", str(out)], env=env, capture_output=True,
                            text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sklearn_mlp" in result.stdout and "faster" in result.stdout
    doc = json.loads(out.read_text())
    assert set(doc["results"]) == {"digits", "breast_cancer"}
    for rows in doc["results"].values():
        assert len(rows["fastnn"]["fit_time"]) == len(rows["sklearn_mlp"]["fit_time"]) == 2
