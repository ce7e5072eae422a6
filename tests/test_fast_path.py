"""The whole-step path for plain Dense stacks computes what the layer-by-layer path does."""
import numpy as np
import pytest

import fastnn
from fastnn import layers, losses, optimizers
from fastnn.backend import use_backend
from fastnn.backend.threads import blas_single_thread
from fastnn.models import fast_path

CASES = {
    "relu_softmax_sparse": (["relu", "tanh", "softmax"], "sparse_categorical_crossentropy", "ids"),
    "sigmoid_softmax_dense": (["sigmoid", "relu", "softmax"], "categorical_crossentropy", "onehot"),
    "logits_sparse": (["relu", "relu", None], losses.SparseCategoricalCrossentropy(True), "ids"),
    "bce_sigmoid": (["relu", "relu", "sigmoid"], "binary_crossentropy", "binary"),
    "bce_logits": (["tanh", "relu", None], losses.BinaryCrossentropy(from_logits=True), "binary"),
    "mse_linear": (["relu", "sigmoid", None], "mse", "real"),
    "mse_tanh_head": (["relu", "relu", "tanh"], "mse", "real"),
}


def make_data(kind, n=40, d=6, k=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    ids = rng.integers(0, k, n)
    y = {"ids": ids, "onehot": fastnn.utils.to_categorical(ids, k),
         "binary": (rng.random((n, k)) > 0.5).astype("float32"),
         "real": rng.normal(size=(n, k)).astype("float32")}[kind]
    return x, y


def build(acts, loss, seed=0, frozen=False):
    fastnn.utils.set_random_seed(seed)
    model = fastnn.Sequential([layers.Dense(9, activation=acts[0], input_shape=(6,)),
                               layers.Dense(7, activation=acts[1]),
                               layers.Dense(4, activation=acts[2])])
    model.compile(optimizer=optimizers.Adam(0.01), loss=loss, metrics=["accuracy"])
    model.build()
    if frozen:
        model.layers[0].trainable = False
    return model


def train(model, x, y, sample_weight, disable, monkeypatch):
    with monkeypatch.context() as m:
        if disable:
            m.setattr(fast_path, "plain_dense_stack", lambda model: False)
        hist = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                         sample_weight=sample_weight)
        return hist.history, model.get_weights(), model.predict(x)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("weighted,frozen", [(False, False), (True, True)])
def test_fast_path_matches_layer_path(case, backend, weighted, frozen, monkeypatch):
    acts, loss, kind = CASES[case]
    x, y = make_data(kind)
    sw = np.linspace(0.5, 2, len(x)).astype("float32") if weighted else None
    with use_backend(backend):
        fast_model = build(acts, loss, frozen=frozen)
        assert fast_model._stack_plan(fastnn.backend.get_ops(), 16) is not None
        fast = train(fast_model, x, y, sw, False, monkeypatch)
        slow = train(build(acts, loss, frozen=frozen), x, y, sw, True, monkeypatch)
    for key in slow[0]:
        np.testing.assert_allclose(fast[0][key], slow[0][key], rtol=2e-5, atol=1e-6)
    for a, b in zip(fast[1], slow[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast[2], slow[2], rtol=1e-4, atol=1e-5)


def test_models_the_stack_cannot_run_take_the_layer_path():
    model = fastnn.Sequential([layers.Dense(5, activation="elu", input_shape=(3,)),
                               layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.build()
    assert not fast_path.plain_dense_stack(model)
    assert model._stack_plan(fastnn.backend.get_ops(), 8) is None
    dropout = fastnn.Sequential([layers.Dense(5, input_shape=(3,)), layers.Dropout(0.5),
                                 layers.Dense(2, activation="softmax")])
    dropout.build()
    assert not fast_path.plain_dense_stack(dropout)
    smoothing = build(["relu", "relu", "softmax"],
                      losses.CategoricalCrossentropy(label_smoothing=0.1))
    assert fast_path.loss_code(smoothing) is None


def test_stack_grows_for_a_larger_batch():
    model = build(["relu", "relu", "softmax"], "sparse_categorical_crossentropy")
    x, y = make_data("ids", n=64)
    model.train_on_batch(x[:8], y[:8])
    loss = model.train_on_batch(x, y)[0]
    assert np.isfinite(loss)
    assert model._stack_cache[1][0].max_batch >= 64


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
    finally:
        fastnn.set_num_threads(before)
    with use_backend("numpy"):
        want = model._forward(x, training=False)
        assert model._inference_stack().__class__.__name__ == "ReferenceDenseStack"
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rows", [1, 3, 6])
def test_gemv_split_between_threads_matches_reference(rows):
    """Layers wide enough that both threads get column blocks (blocks are 16 floats)."""
    fastnn.utils.set_random_seed(5)
    model = fastnn.Sequential([layers.Dense(70, activation="relu", input_shape=(45,)),
                               layers.Dense(33, activation="tanh"),
                               layers.Dense(21, activation="softmax")])
    model.build()
    x = np.random.default_rng(1).normal(size=(rows, 45)).astype("float32")
    before = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(2)
        got = model.predict_on_batch(x)
    finally:
        fastnn.set_num_threads(before)
    with use_backend("numpy"):
        want = model._forward(x, training=False)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _compiled_stack(acts, loss, widths, batch, seed=3):
    """A compiled DenseStack over a fresh model, with its gradient buffers."""
    fastnn.utils.set_random_seed(seed)
    stack = [layers.Dense(widths[1], activation=acts[0], input_shape=(widths[0],))]
    stack += [layers.Dense(w, activation=a) for w, a in zip(widths[2:], acts[1:])]
    model = fastnn.Sequential(stack)
    model.compile(optimizer="adam", loss=loss)
    model.build()
    with use_backend("cpu"):
        compiled = fast_path.build_stack(fastnn.backend.get_ops(), model, batch)
    grads = [layer.kernel.grad for layer in model.layers] + [layer.bias.grad
                                                              for layer in model.layers]
    return model, compiled, grads


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("weighted,first", [(False, 0), (True, 1)])
@pytest.mark.parametrize("rows", [37, 5])
def test_team_step_matches_one_thread(case, weighted, first, rows):
    """The step split between two OpenMP threads (each its block of every GEMM, BLAS on
    one thread) gives the single-thread step's loss, output and gradients."""
    acts, loss, kind = CASES[case]
    model, stack, grads = _compiled_stack(acts, loss, [45, 70, 50, 4], rows)
    code = fast_path.loss_code(model)
    x, y = make_data(kind, n=rows, d=45, seed=4)
    sw = np.linspace(0.5, 2, rows).astype("float32") if weighted else None
    results = []
    for threads in (1, 2):
        for g in grads:
            g[...] = np.nan  # every gradient the step owns must be written
        with blas_single_thread():  # as fit holds it around a team step
            loss_value = stack.train_step(x, y, sw, code, first, True, threads)
        results.append((loss_value, stack.output(rows).copy(),
                        [g.copy() for g in grads]))
    (loss1, out1, grads1), (loss2, out2, grads2) = results
    assert loss2 == pytest.approx(loss1, rel=1e-5)
    np.testing.assert_allclose(out2, out1, rtol=1e-5, atol=1e-6)
    for g1, g2 in zip(grads1, grads2):
        np.testing.assert_allclose(g2, g1, rtol=1e-4, atol=1e-6)
    assert not np.isnan(np.concatenate([g.ravel() for g in grads2[first:3] + grads2[3 + first:]])).any()


def test_team_step_leaves_the_blas_thread_count_alone():
    """The compiled step never changes the BLAS pool: its callers hold the limits."""
    from threadpoolctl import threadpool_info, threadpool_limits

    model, stack, _ = _compiled_stack(["relu", "relu", "softmax"],
                                      "sparse_categorical_crossentropy", [45, 70, 50, 4], 8)
    x, y = make_data("ids", n=8, d=45)

    def blas_threads():
        return sorted(info["num_threads"] for info in threadpool_info()
                      if info["user_api"] == "blas")

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        stack.train_step(x, y, None, fast_path.loss_code(model), 0, True, 2)
        assert blas_threads() == before


def test_team_size_splits_only_large_steps():
    """Small steps stay on one thread (BLAS threads each GEMM); large ones get a team."""
    _, small, _ = _compiled_stack(["relu", "relu", "softmax"],
                                  "sparse_categorical_crossentropy", [45, 70, 50, 4], 8)
    assert small.team_size(8, 2) == 1
    _, large, _ = _compiled_stack(["relu", "relu", "softmax"],
                                  "sparse_categorical_crossentropy", [784, 2048, 2048, 10], 512)
    assert large.team_size(512, 1) == 1
    assert large.team_size(512, 2) == (2 if fastnn.backend.openmp_enabled() else 1)


def test_team_forward_applies_a_softmax_head_to_whole_rows():
    """A softmax head under MSE (not a trainer case, but the stack allows it): the team
    waits for every column block before normalising rows."""
    from fastnn.backend.dense_stack import MSE
    _, stack, grads = _compiled_stack(["relu", "tanh", "softmax"], "mse", [45, 70, 50, 40], 37)
    x, y = make_data("real", n=37, d=45, k=40, seed=6)
    results = []
    for threads in (1, 2):
        with blas_single_thread():
            loss_value = stack.train_step(x, y, None, MSE, 0, True, threads)
        results.append((loss_value, stack.output(37).copy(), [g.copy() for g in grads]))
    (loss1, out1, grads1), (loss2, out2, grads2) = results
    np.testing.assert_allclose(out1.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(out2, out1, rtol=1e-5, atol=1e-7)
    assert loss2 == pytest.approx(loss1, rel=1e-5)
    for g1, g2 in zip(grads1, grads2):
        np.testing.assert_allclose(g2, g1, rtol=1e-4, atol=1e-6)
