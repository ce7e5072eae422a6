"""The compiled executor's threaded paths compute what one thread and the reference do:
predict's GEMV path (columns split between threads), and a training step split over
one OpenMP team (each thread its block of every GEMM, BLAS on one thread)."""
import numpy as np
import pytest

import fastnn
from fastnn import layers, losses
from fastnn.backend import get_ops, use_backend
from fastnn.backend.threads import blas_single_thread

CASES = {
    "relu_softmax_sparse": (["relu", "tanh", "softmax"], "sparse_categorical_crossentropy", "ids"),
    "sigmoid_softmax_dense": (["sigmoid", "relu", "softmax"], "categorical_crossentropy", "onehot"),
    "logits_sparse": (["relu", "relu", None], losses.SparseCategoricalCrossentropy(True), "ids"),
    "bce_sigmoid": (["relu", "relu", "sigmoid"], "binary_crossentropy", "binary"),
    "bce_logits": (["tanh", "relu", None], losses.BinaryCrossentropy(from_logits=True), "binary"),
    "mse_linear": (["relu", "sigmoid", None], "mse", "real"),
    "mse_softmax_head": (["relu", "tanh", "softmax"], "mse", "real"),
    "bn_dropout": (["bn", "relu", "softmax"], "sparse_categorical_crossentropy", "ids"),
}


def make_data(kind, n=40, d=6, k=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    ids = rng.integers(0, k, n)
    y = {"ids": ids, "onehot": fastnn.utils.to_categorical(ids, k),
         "binary": (rng.random((n, k)) > 0.5).astype("float32"),
         "real": rng.normal(size=(n, k)).astype("float32")}[kind]
    return x, y


def build(acts, loss, widths=(6, 12, 10, 4), seed=3):
    """A model of Dense layers (``"bn"``: Dense, BatchNormalization, ReLU, Dropout)."""
    fastnn.utils.set_random_seed(seed)
    stack = [fastnn.Input(shape=(widths[0],))]
    for width, act in zip(widths[1:], acts):
        if act == "bn":
            stack += [layers.Dense(width), layers.BatchNormalization(), layers.ReLU(),
                      layers.Dropout(0.2, seed=1)]
        else:
            stack.append(layers.Dense(width, activation=act))
    model = fastnn.Sequential(stack)
    model.compile(optimizer="adam", loss=loss)
    return model


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 7, 32, 33])
@pytest.mark.parametrize("head", ["softmax", "sigmoid", "tanh", None])
def test_compiled_predict_matches_reference(rows, threads, head):
    """Batches of up to 32 rows take the GEMV path (four rows per pass over the weights,
    then the 1-3 left; columns split between threads), larger ones BLAS."""
    model = build(["relu", "sigmoid", head], "mse")
    x, _ = make_data("real", n=rows)
    before = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(threads)
        got = model.predict_on_batch(x)
        assert model._inference_executor().scans_input  # the compiled program ran
    finally:
        fastnn.set_num_threads(before)
    with use_backend("numpy"):
        want = model.predict_on_batch(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rows", [1, 3, 6])
def test_gemv_split_between_threads_matches_reference(rows):
    """Layers wide enough that both threads get column blocks (blocks are 16 floats)."""
    model = build(["relu", "tanh", "softmax"], "mse", widths=(45, 70, 33, 21), seed=5)
    x = np.random.default_rng(1).normal(size=(rows, 45)).astype("float32")
    segment = model._inference_executor().parts[0].segment
    one, two = (np.empty((rows, 21), "float32") for _ in range(2))
    segment.predict(x, one, 1)
    segment.predict(x, two, 2)
    with use_backend("numpy"):
        want = model.predict_on_batch(x)
    np.testing.assert_allclose(one, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(two, want, rtol=1e-5, atol=1e-6)


def _one_call(model, rows):
    """The model's one-call segment and its loss arguments."""
    executor = model._train_executor(get_ops(), rows)
    assert executor._one_call is not None and len(executor.parts) == 1
    grads = [w.grad for w in model.trainable_weights]
    return executor.parts[0], executor._one_call, grads


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("rows", [37, 5])
def test_team_step_matches_one_thread(case, weighted, rows):
    """The step split between two OpenMP threads gives the single-thread step's loss,
    output and gradients, and writes every gradient it owns."""
    acts, loss, kind = CASES[case]
    model = build(acts, loss, widths=(45, 70, 50, 4))
    part, (op, smoothing, eps), grads = _one_call(model, rows)
    x, y = make_data(kind, n=rows, d=45, seed=4)
    sw = np.linspace(0.5, 2, rows).astype("float32") if weighted else None
    seeds = None if part.seeds(True) is None else np.arange(1, len(part._seeded) + 1,
                                                            dtype=np.uint64)
    norm = [w.value for w in model.non_trainable_weights]
    start = [w.copy() for w in norm]
    results = []
    for threads in (1, 2):
        for w, s in zip(norm, start):
            w[...] = s  # batch statistics update the moving averages: same start
        for g in grads:
            g[...] = np.nan
        with blas_single_thread():  # as fit holds it around a team step
            total = part.segment.train_step(x, y, sw, op, smoothing, eps, 1.0 / rows, seeds,
                                            threads)
        results.append((total, part.segment.output(rows).copy(), [g.copy() for g in grads],
                        [w.copy() for w in norm]))
    (loss1, out1, grads1, norm1), (loss2, out2, grads2, norm2) = results
    assert loss2 == pytest.approx(loss1, rel=1e-5)
    np.testing.assert_allclose(out2, out1, rtol=1e-5, atol=1e-6)
    for g1, g2 in zip(grads1 + norm1, grads2 + norm2):
        np.testing.assert_allclose(g2, g1, rtol=1e-4, atol=1e-6)
    assert not np.isnan(np.concatenate([g.ravel() for g in grads2])).any()


def test_team_step_leaves_the_blas_thread_count_alone():
    """The compiled step never changes the BLAS pool: its callers hold the limits."""
    from threadpoolctl import threadpool_info, threadpool_limits

    model = build(["relu", "relu", "softmax"], "sparse_categorical_crossentropy",
                  widths=(45, 70, 50, 4))
    part, (op, smoothing, eps), _ = _one_call(model, 8)
    x, y = make_data("ids", n=8, d=45)

    def blas_threads():
        return sorted(info["num_threads"] for info in threadpool_info()
                      if info["user_api"] == "blas")

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        part.segment.train_step(x, y, None, op, smoothing, eps, 1 / 8, None, 2)
        assert blas_threads() == before


def test_team_size_splits_only_large_steps():
    """Small steps stay on one thread (BLAS threads each GEMM); large ones get a team."""
    small = build(["relu", "relu", "softmax"], "sparse_categorical_crossentropy",
                  widths=(45, 70, 50, 4))
    assert _one_call(small, 8)[0].segment.team_size(8, 2) == 1
    large = build(["relu", "relu", "softmax"], "sparse_categorical_crossentropy",
                  widths=(784, 2048, 2048, 10))
    segment = _one_call(large, 512)[0].segment
    assert segment.team_size(512, 1) == 1
    assert segment.team_size(512, 2) == (2 if fastnn.backend.openmp_enabled() else 1)
