"""Losses: Keras strings, config round trips, and values against Keras' formulas in NumPy."""
import json

import numpy as np
import pytest

from fastnn import losses
from fastnn.backend import use_backend

EPS = 1e-7
KERAS_STRINGS = {
    "mean_squared_error": losses.MeanSquaredError, "mse": losses.MeanSquaredError,
    "mean_absolute_error": losses.MeanAbsoluteError, "mae": losses.MeanAbsoluteError,
    "huber": losses.Huber, "binary_crossentropy": losses.BinaryCrossentropy,
    "categorical_crossentropy": losses.CategoricalCrossentropy,
    "sparse_categorical_crossentropy": losses.SparseCategoricalCrossentropy,
    "hinge": losses.Hinge, "categorical_hinge": losses.CategoricalHinge,
}


@pytest.mark.parametrize("name,cls", sorted(KERAS_STRINGS.items()))
def test_keras_strings_and_config_round_trip(name, cls):
    loss = losses.get(name)
    assert type(loss) is cls
    again = losses.get(json.loads(json.dumps(losses.serialize(loss))))
    assert type(again) is cls and again.get_config() == loss.get_config()


def test_configured_losses_round_trip_their_arguments():
    for loss in (losses.Huber(delta=2.5), losses.CategoricalCrossentropy(label_smoothing=0.1),
                 losses.BinaryCrossentropy(from_logits=True),
                 losses.SparseCategoricalCrossentropy(from_logits=True)):
        again = losses.get(losses.serialize(loss))
        assert again.get_config() == loss.get_config()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="delta"):
        losses.Huber(delta=0)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.CategoricalCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="Known losses"):
        losses.get("crossentropy_of_doom")


def _data(seed=0, n=12, k=4):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ids = rng.integers(0, k, n)
    onehot = np.eye(k)[ids]
    binary = (rng.random((n, k)) > 0.5).astype(float)
    real = rng.normal(size=(n, k))
    weights = rng.random(n) + 0.5
    return logits, probs, ids, onehot, binary, real, weights


def _keras(kind, pred, target, delta=1.0):
    """Per-sample Keras loss values, written from the Keras 3 definitions."""
    if kind == "mse":
        return ((pred - target) ** 2).mean(axis=1)
    if kind == "mae":
        return np.abs(pred - target).mean(axis=1)
    if kind == "huber":
        d = np.abs(pred - target)
        return np.where(d <= delta, 0.5 * d ** 2, delta * d - 0.5 * delta ** 2).mean(axis=1)
    if kind == "bce":
        p = np.clip(pred, EPS, 1 - EPS)
        return -(target * np.log(p) + (1 - target) * np.log(1 - p)).mean(axis=1)
    if kind == "cce":
        p = np.clip(pred / pred.sum(axis=1, keepdims=True), EPS, 1 - EPS)
        return -(target * np.log(p)).sum(axis=1)
    if kind == "hinge":
        t = np.where(target == 0, -1.0, target)
        return np.maximum(1 - t * pred, 0).mean(axis=1)
    if kind == "categorical_hinge":
        pos = (target * pred).sum(axis=1)
        neg = ((1 - target) * pred).max(axis=1)
        return np.maximum(neg - pos + 1, 0)
    raise AssertionError(kind)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("weighted", [False, True])
def test_values_equal_keras_formulas(backend, weighted):
    logits, probs, ids, onehot, binary, real, w = _data()
    sw = w if weighted else None

    def mean(values):
        return (values * w).sum() / len(values) if weighted else values.mean()

    sigmoid = 1 / (1 + np.exp(-logits))
    cases = [
        (losses.MeanSquaredError(), real, logits, _keras("mse", logits, real)),
        (losses.MeanAbsoluteError(), real, logits, _keras("mae", logits, real)),
        (losses.Huber(delta=0.7), real, logits, _keras("huber", logits, real, 0.7)),
        (losses.BinaryCrossentropy(), binary, sigmoid, _keras("bce", sigmoid, binary)),
        (losses.BinaryCrossentropy(from_logits=True), binary, logits,
         _keras("bce", sigmoid, binary)),
        (losses.CategoricalCrossentropy(), onehot, probs, _keras("cce", probs, onehot)),
        (losses.CategoricalCrossentropy(from_logits=True), onehot, logits,
         _keras("cce", probs, onehot)),
        (losses.SparseCategoricalCrossentropy(), ids, probs, _keras("cce", probs, onehot)),
        (losses.SparseCategoricalCrossentropy(from_logits=True), ids, logits,
         _keras("cce", probs, onehot)),
        (losses.Hinge(), binary, logits, _keras("hinge", logits, binary)),
        (losses.CategoricalHinge(), onehot, logits, _keras("categorical_hinge", logits, onehot)),
    ]
    with use_backend(backend):
        for loss, target, pred, per_sample in cases:
            got = loss(target, pred, sample_weight=sw)
            assert got == pytest.approx(mean(per_sample), rel=1e-6, abs=1e-9), type(loss).__name__


def test_label_smoothing_matches_keras():
    _, probs, _, onehot, _, _, _ = _data(seed=3)
    smoothed = onehot * 0.8 + 0.2 / onehot.shape[1]
    want = _keras("cce", probs, smoothed).mean()
    assert losses.CategoricalCrossentropy(label_smoothing=0.2)(onehot, probs) == \
        pytest.approx(want, rel=1e-6)


# ---------------------------------------------------------------- per-sample functions
_RNG = np.random.default_rng(11)
_P = _RNG.dirichlet(np.ones(3), size=6)
_IDS = np.array([0, 2, 1, 1, 0, 2])
_ONE_HOT = np.eye(3)[_IDS]
_REG = _RNG.normal(size=(6, 3))
_CASES = {
    "MeanSquaredError": (_REG, _P), "MeanAbsoluteError": (_REG, _P), "Huber": (_REG, _P),
    "Hinge": (np.sign(_REG), _REG), "CategoricalHinge": (_ONE_HOT, _REG),
    "BinaryCrossentropy": ((_REG > 0).astype(float), _P),
    "CategoricalCrossentropy": (_ONE_HOT, _P), "SparseCategoricalCrossentropy": (_IDS, _P),
}


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight"])
@pytest.mark.parametrize("name", sorted(_CASES))
def test_per_sample_values_reduce_to_the_training_loss(name, reduction):
    """The user-facing per-sample math and the fused training kernels agree."""
    y_true, y_pred = _CASES[name]
    w = np.linspace(0.5, 2.0, 6)
    loss = getattr(losses, name)(reduction=reduction)
    values = type(loss).function(y_true, y_pred)
    assert values.shape == (6,)
    with use_backend("numpy") as ops:
        targets = np.asarray(y_true, dtype="float64")
        if targets.ndim == 1 and not loss.sparse_targets:
            targets = targets[:, None]
        trained = loss.value_and_grad(ops, np.asarray(y_pred, "float64"), targets,
                                      np.empty_like(y_pred), w)
    assert loss(y_true, y_pred, sample_weight=w) == pytest.approx(trained, rel=1e-6)


def test_reduction_none_returns_weighted_values():
    values = losses.MeanSquaredError(reduction="none")(_REG, _P, sample_weight=np.arange(6))
    np.testing.assert_allclose(values, np.arange(6) * ((_P - _REG) ** 2).mean(axis=1))


def test_unknown_reduction_raises():
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="avg")


def test_compile_accepts_a_per_sample_function():
    assert isinstance(losses.get(losses.sparse_categorical_crossentropy),
                      losses.SparseCategoricalCrossentropy)
