"""The compiled executor (``fastnn._kernels._executor.Segment``) against the reference:
the same layers' own ``forward``/``backward`` run one by one on the "numpy" backend."""
import threading

import numpy as np
import pytest

import fastnn
from fastnn import activations, layers
from fastnn.backend import get_ops, use_backend
from fastnn.engine.stages import Kind, Stage

_executor = pytest.importorskip("fastnn._kernels._executor")
from fastnn._kernels._losses import LossOp  # noqa: E402

Segment, compilable = _executor.Segment, _executor.compilable
RTOL, ATOL = 1e-5, 1e-6


# ---------------------------------------------------------------- helpers
def build(layer_list, din, seed=0):
    fastnn.utils.set_random_seed(seed)
    return fastnn.Sequential([fastnn.Input(shape=(din,))] + layer_list)


def lowered(model):
    return [layer for layer in model.layers if layer.stages()]


def stages_of(model, head_linear=False):
    stages = [s for layer in lowered(model) for s in layer.stages()]
    if head_linear:
        stages[-1] = stages[-1].replace(activation=activations.get("linear"))
    return stages


def grads_of(stages):
    out = []
    for s in stages:
        for name in ("kernel_grad", "bias_grad", "gamma_grad", "beta_grad", "alpha_grad"):
            g = getattr(s, name)
            if g is not None:
                out.append((f"{s!r}.{name}", g))
    return out


def fill_grads(stages, value):
    for _, g in grads_of(stages):
        g[...] = value


class Snapshot:
    """Weights (moving statistics included) and mask counters, to run one step twice."""

    def __init__(self, model):
        self.model = model
        self.weights = [w.copy() for w in model.get_weights()]
        self.calls = [getattr(layer, "mask_calls", None) for layer in model.layers]

    def restore(self):
        self.model.set_weights(self.weights)
        for layer, calls in zip(self.model.layers, self.calls):
            if calls is not None:
                layer.mask_calls = calls


def draw_seeds(stages):
    """One seed per seeded stage, in stage order, drawn as the layers draw them."""
    return np.array([s.layer._mask_seed() for s in stages if s.seeded], dtype=np.uint64)


def ref_forward(model, x, training, head_logits=False):
    layer_list = lowered(model)
    caches, y = [], x
    for i, layer in enumerate(layer_list):
        if head_logits and i == len(layer_list) - 1:
            y, cache = layer.forward(y, training=training, apply_activation=False)
        else:
            y, cache = layer.forward(y, training=training)
        caches.append(cache)
    return y, caches


def ref_backward(model, dy, caches, head_logits=False):
    layer_list = lowered(model)
    for i in range(len(layer_list) - 1, -1, -1):
        kw = {"apply_activation": False} if head_logits and i == len(layer_list) - 1 else {}
        dy = layer_list[i].backward(dy, caches[i], need_dx=True, **kw)
    return dy


def close(a, b, what):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL, err_msg=what)


def compare_forward_backward(model, x, dy_seed=1):
    """Segment forward(training) + backward(dy) vs the layers on "numpy": output, dx,
    every gradient array and the moving statistics."""
    stages = stages_of(model)
    seg = Segment(stages, max_batch=x.shape[0] + 3)
    snap = Snapshot(model)
    seeds = draw_seeds(stages)
    y = seg.forward(x, True, seeds).copy()
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape).astype(np.float32)
    fill_grads(stages, np.nan)
    dx = seg.backward(dy, True).copy()
    got = {name: g.copy() for name, g in grads_of(stages)}
    got_weights = [w.copy() for w in model.get_weights()]
    snap.restore()
    fill_grads(stages, np.nan)
    with use_backend("numpy"):
        y_ref, caches = ref_forward(model, x, True)
        dx_ref = ref_backward(model, dy, caches)
    close(y, y_ref, "forward")
    close(dx, dx_ref, "dx")
    for name, g in grads_of(stages):
        close(got[name], g, name)
    for w, w_ref in zip(got_weights, model.get_weights()):
        close(w, w_ref, "weights / moving statistics")
    return seg


def rng_x(n, d, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


# ---------------------------------------------------------------- single stage kinds
ACTIVATION_NAMES = ["linear", "step", "relu", "leaky_relu", "elu", "selu", "sigmoid", "tanh",
                    "softplus", "gelu", "silu", "softmax", "relu6", "softsign", "hard_sigmoid",
                    "hard_silu", "exponential", "mish", "log_softmax"]


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_stage(name):
    model = build([layers.Dense(6), layers.Activation(name)], 5)
    compare_forward_backward(model, rng_x(9, 5))


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "softmax", "elu", "gelu",
                                  "leaky_relu", "log_softmax", "linear"])
def test_dense_with_activation(name):
    model = build([layers.Dense(7, activation=name), layers.Dense(4, activation=name)], 5)
    compare_forward_backward(model, rng_x(11, 5))


@pytest.mark.parametrize("kwargs", [{"max_value": 2.0}, {"negative_slope": 0.1, "threshold": 0.3},
                                    {"max_value": 1.5, "negative_slope": 0.2, "threshold": 0.5}])
def test_general_relu(kwargs):
    model = build([layers.Dense(6), layers.ReLU(**kwargs), layers.Dense(5),
                   layers.Activation(activations.get({"name": "relu", **kwargs})),
                   layers.Dense(4, activation=activations.get({"name": "relu", **kwargs}))], 4)
    assert {s.act_name for s in stages_of(model) if s.kind == Kind.ACTIVATION} == {"general_relu"}
    compare_forward_backward(model, rng_x(12, 4) * 3)
    seg = Segment(stages_of(model), 40)
    for n in (3, 40):
        x = rng_x(n, 4, seed=n) * 3
        out = np.empty((n, 4), np.float32)
        seg.predict(x, out, 1)
        with use_backend("numpy"):
            close(out, ref_forward(model, x, False)[0], "general_relu predict")


def test_activation_parameters():
    model = build([layers.Dense(6), layers.LeakyReLU(negative_slope=0.05), layers.Dense(6),
                   layers.ELU(alpha=0.5), layers.Dense(3, activation="tanh")], 4)
    compare_forward_backward(model, rng_x(10, 4))


def test_dense_without_bias():
    model = build([layers.Dense(6, use_bias=False), layers.Activation("gelu"),
                   layers.Dense(2, use_bias=False)], 4)
    compare_forward_backward(model, rng_x(10, 4))


@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False),
                                          (False, False)])
def test_batchnorm_training(center, scale):
    model = build([layers.Dense(8), layers.BatchNormalization(center=center, scale=scale,
                                                              momentum=0.9),
                   layers.ReLU(), layers.Dense(3)], 5)
    compare_forward_backward(model, rng_x(16, 5))


@pytest.mark.parametrize("layer_list", [
    lambda: [layers.BatchNormalization(), layers.Dropout(0.3, seed=2), layers.Dense(3)],
    lambda: [layers.BatchNormalization(), layers.Activation("elu"), layers.Dense(3)],
    lambda: [layers.Dense(8, activation="tanh"), layers.BatchNormalization(),
             layers.Activation("softmax"), layers.Dropout(0.2, seed=1)],
    lambda: [layers.Dense(8), layers.BatchNormalization(), layers.Activation("gelu"),
             layers.Dropout(0.4, seed=9), layers.Dense(8), layers.BatchNormalization()],
])
def test_batchnorm_with_the_stages_after_it(layer_list):
    """A training batch norm runs together with the activation and dropout after it
    (one thread): every arrangement gives the layers' results."""
    compare_forward_backward(build(layer_list(), 8), rng_x(14, 8))


def test_batchnorm_frozen_uses_moving_statistics():
    bn = layers.BatchNormalization()
    model = build([layers.Dense(8), bn, layers.Dense(3)], 5)
    bn.moving_mean.value[...] = np.linspace(-1, 1, 8)
    bn.moving_variance.value[...] = np.linspace(0.5, 2, 8)
    bn.trainable = False
    stages = stages_of(model)
    assert not stages[1].batch_stats and stages[1].gamma_grad is None
    before = [bn.moving_mean.value.copy(), bn.moving_variance.value.copy()]
    compare_forward_backward(model, rng_x(12, 5))
    close(bn.moving_mean.value, before[0], "moving mean untouched")


def test_layernorm():
    model = build([layers.Dense(8), layers.LayerNormalization(), layers.Dense(8),
                   layers.LayerNormalization(center=False), layers.Dense(2)], 5)
    compare_forward_backward(model, rng_x(13, 5))


def test_dropout_masks_match_reference():
    model = build([layers.Dense(40), layers.Dropout(0.3, seed=11), layers.Dense(3),
                   layers.Dropout(0.5, seed=4)], 5)
    seg = compare_forward_backward(model, rng_x(17, 5))
    assert seg.n_seeds == 2
    # the mask really drops: some output columns of the first dropout are zero
    stages = stages_of(model)
    seg2 = Segment(stages[:2], 17)
    y = seg2.forward(rng_x(17, 5), True, np.array([123], dtype=np.uint64))
    mask = get_ops("numpy").dropout_mask((17, 40), 0.3, 123)
    assert np.array_equal(y == 0, mask == 0)


def test_dropconnect():
    model = build([layers.DropConnect(9, rate=0.4, activation="relu", seed=5),
                   layers.DropConnect(3, rate=0.2, seed=6)], 6)
    seg = compare_forward_backward(model, rng_x(10, 6))
    assert seg.n_seeds == 2


def test_prelu():
    p = layers.PReLU(alpha_initializer="random_uniform")
    model = build([layers.Dense(7), p, layers.Dense(3)], 5)
    compare_forward_backward(model, rng_x(12, 5))


def test_maxout_ties_pick_the_first_piece():
    model = build([layers.Maxout(4, pieces=3), layers.Dense(3)], 5)
    compare_forward_backward(model, rng_x(12, 5))
    mx = model.layers[0]
    mx.kernel.value[...] = 0.0           # every piece ties: the first wins
    mx.bias.value[...] = 0.0
    compare_forward_backward(model, rng_x(12, 5))


def test_affine_stage_inference_and_backward():
    scale = np.linspace(0.5, 2, 6).astype(np.float32)
    shift = np.linspace(-1, 1, 6).astype(np.float32)
    st = Stage(Kind.AFFINE, None, 6, 6, scale=scale, shift=shift)
    seg = Segment([st], 8)
    x = rng_x(8, 6)
    out = np.empty_like(x)
    seg.predict(x, out, 1)
    close(out, x * scale + shift, "affine predict")
    seg.forward(x, True, None)
    dx = seg.backward(np.ones_like(x), True)
    close(dx, np.broadcast_to(scale, x.shape), "affine dx")


def test_frozen_first_layer_and_need_dx_false():
    first = layers.Dense(8, activation="relu")
    model = build([first, layers.Dense(8, activation="tanh"), layers.Dense(3)], 5)
    first.trainable = False
    stages = stages_of(model)
    assert stages[0].kernel_grad is None
    compare_forward_backward(model, rng_x(9, 5))
    seg = Segment(stages, 9)
    x = rng_x(9, 5)
    seg.forward(x, True, None)
    assert seg.backward(np.ones((9, 3), np.float32), False) is None


# ---------------------------------------------------------------- whole training steps
def mlp_all_kinds(head_act):
    return [layers.Dense(12), layers.BatchNormalization(), layers.ReLU(),
            layers.Dropout(0.25, seed=3), layers.DropConnect(10, rate=0.3, seed=8),
            layers.PReLU(), layers.LayerNormalization(), layers.Maxout(6, pieces=2),
            layers.Activation("elu"), layers.Dense(4, activation=head_act)]


def ref_loss(ops, op, pred, targets, sample_weight, grad_scale, smoothing, eps):
    grad = np.empty_like(pred)
    probs = np.empty_like(pred)
    if op == LossOp.SOFTMAX_CE:
        total = ops.softmax_cross_entropy(pred, targets, probs, grad, sample_weight, grad_scale,
                                          smoothing)
    elif op == LossOp.SIGMOID_CE:
        total = ops.sigmoid_cross_entropy(pred, targets, probs, grad, sample_weight, grad_scale,
                                          smoothing)
    elif op == LossOp.MSE:
        total = ops.mean_squared_error_loss(pred, targets, grad, sample_weight, grad_scale)
        probs = pred
    else:
        total = ops.crossentropy_loss(pred, targets, grad, sample_weight, grad_scale, eps,
                                      smoothing)
        probs = pred
    return total, grad, probs


# (head activation, loss op, fused head: the logits go to the loss, target kind)
LOSS_CASES = [
    ("softmax", LossOp.SOFTMAX_CE, True, "sparse64"),
    ("softmax", LossOp.SOFTMAX_CE, True, "sparse32"),
    ("softmax", LossOp.SOFTMAX_CE, True, "dense"),
    ("linear", LossOp.SOFTMAX_CE, False, "sparse64"),        # from_logits
    ("sigmoid", LossOp.SIGMOID_CE, True, "binary"),
    ("linear", LossOp.SIGMOID_CE, False, "binary"),          # from_logits
    ("linear", LossOp.MSE, False, "dense"),
    ("softmax", LossOp.MSE, False, "dense"),
    ("sigmoid", LossOp.MSE, False, "binary"),
    ("softmax", LossOp.CROSSENTROPY, False, "sparse64"),     # on probabilities
]


def targets_for(kind, n, k, rng):
    if kind == "sparse64":
        return rng.integers(0, k, n).astype(np.int64)
    if kind == "sparse32":
        return rng.integers(0, k, n).astype(np.int32)
    if kind == "binary":
        return (rng.random((n, k)) > 0.5).astype(np.float32)
    t = rng.random((n, k)).astype(np.float32)
    return t / t.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("head,op,fused,kind", LOSS_CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_train_step_matches_layers(head, op, fused, kind, weighted):
    model = build(mlp_all_kinds(head), 7)
    rng = np.random.default_rng(3)
    n = 21
    x = rng_x(n, 7, seed=4)
    targets = targets_for(kind, n, 4, rng)
    sw = rng.random(n).astype(np.float32) if weighted else None
    smoothing = 0.1 if op in (LossOp.SOFTMAX_CE, LossOp.SIGMOID_CE) and weighted else 0.0
    stages = stages_of(model, head_linear=fused)
    seg = Segment(stages, 32)
    snap = Snapshot(model)
    seeds = draw_seeds(stages)
    fill_grads(stages, np.nan)
    total = seg.train_step(x, targets, sw, int(op), smoothing, 1e-7, 1.0 / n, seeds, 1)
    out = seg.output(n).copy()
    got = {name: g.copy() for name, g in grads_of(stages)}
    got_weights = [w.copy() for w in model.get_weights()]
    snap.restore()
    fill_grads(stages, np.nan)
    with use_backend("numpy") as ops:
        pred, caches = ref_forward(model, x, True, head_logits=fused)
        total_ref, grad, probs = ref_loss(ops, op, pred, targets, sw, 1.0 / n, smoothing, 1e-7)
        ref_backward(model, grad, caches, head_logits=fused)
    assert total == pytest.approx(total_ref, rel=1e-5)
    close(out, probs, "head output")
    for name, g in grads_of(stages):
        close(got[name], g, name)
    for w, w_ref in zip(got_weights, model.get_weights()):
        close(w, w_ref, "moving statistics")


def test_train_step_loss_equals_losses_kernel():
    from fastnn._kernels import _losses
    model = build([layers.Dense(8, activation="tanh"), layers.Dense(5)], 6)
    seg = Segment(stages_of(model), 16)
    x = rng_x(16, 6)
    t = np.arange(16) % 5
    total = seg.train_step(x, t, None, int(LossOp.SOFTMAX_CE), 0.0, 0.0, 1 / 16, None, 1)
    logits = seg.forward(x, False).copy()
    probs, grad = np.empty_like(logits), np.empty_like(logits)
    assert total == _losses.loss(int(LossOp.SOFTMAX_CE), logits, t, probs, grad, None, 1 / 16,
                                 0.0, 0.0, 1)


def test_train_step_rejects_bad_labels_and_targets():
    model = build([layers.Dense(3)], 4)
    seg = Segment(stages_of(model), 8)
    x = rng_x(8, 4)
    with pytest.raises(ValueError, match="class ids"):
        seg.train_step(x, np.full(8, 3), None, int(LossOp.SOFTMAX_CE), 0, 0, 1, None, 1)
    with pytest.raises(ValueError, match="targets"):
        seg.train_step(x, np.zeros((8, 5), np.float32), None, int(LossOp.MSE), 0, 0, 1, None, 1)


def test_numerical_gradient():
    """Central differences of sum(forward(x) * r) against backward(r), in float32."""
    model = build([layers.Dense(5, activation="tanh"), layers.BatchNormalization(),
                   layers.Dense(4), layers.LayerNormalization(), layers.PReLU(
                       alpha_initializer="random_uniform"), layers.Dense(3, activation="sigmoid")],
                  4, seed=2)
    stages = stages_of(model)
    seg = Segment(stages, 6)
    x = rng_x(6, 4, seed=9)
    r = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)

    def f():
        return float((seg.forward(x, True, None).astype(np.float64) * r).sum())

    f()
    dx = seg.backward(r, True).copy()
    grads = [(s.kernel, s.kernel_grad.copy()) for s in stages if s.kind == Kind.DENSE]
    grads += [(stages[4].alpha, stages[4].alpha_grad.copy()), (stages[1].gamma,
                                                               stages[1].gamma_grad.copy())]
    h = 1e-2
    for param, g in grads:
        flat, gflat = param.reshape(-1), g.reshape(-1)
        for i in range(0, flat.size, max(1, flat.size // 7)):
            old = flat[i]
            flat[i] = old + h
            up = f()
            flat[i] = old - h
            down = f()
            flat[i] = old
            assert (up - down) / (2 * h) == pytest.approx(gflat[i], abs=3e-3, rel=3e-2)
    for i in range(0, x.size, 5):
        old = x.flat[i]
        x.flat[i] = old + h
        up = f()
        x.flat[i] = old - h
        down = f()
        x.flat[i] = old
        assert (up - down) / (2 * h) == pytest.approx(dx.flat[i], abs=3e-3, rel=3e-2)


# ---------------------------------------------------------------- inference
def test_predict_matches_reference_inference():
    model = build(mlp_all_kinds("softmax"), 7)
    bn = model.layers[1]
    bn.moving_mean.value[...] = np.linspace(-0.5, 0.5, 12)
    bn.moving_variance.value[...] = np.linspace(0.5, 1.5, 12)
    seg = Segment(stages_of(model), 64)
    for n in (1, 5, 32, 33, 60):
        x = rng_x(n, 7, seed=n)
        out = np.empty((n, 4), np.float32)
        seg.predict(x, out, 1)
        with use_backend("numpy"):
            ref, _ = ref_forward(model, x, False)
        close(out, ref, f"predict {n} rows")
        close(seg.forward(x, False), ref, f"forward(training=False) {n} rows")


def test_predict_from_many_threads():
    model = build([layers.Dense(64, activation="relu"), layers.BatchNormalization(),
                   layers.Dropout(0.5), layers.Dense(10, activation="softmax")], 20)
    seg = Segment(stages_of(model), 4)
    xs = [rng_x(n, 20, seed=n) for n in (1, 3, 17, 40)]
    expected = []
    for x in xs:
        out = np.empty((len(x), 10), np.float32)
        expected.append(seg.predict(x, out, 1).copy())
    errors = []

    def work():
        try:
            for _ in range(30):
                for x, e in zip(xs, expected):
                    out = np.empty((len(x), 10), np.float32)
                    seg.predict(x, out, 2)
                    if not np.array_equal(out, e):
                        errors.append("mismatch")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_predict_rejects_nan_and_bad_shapes():
    model = build([layers.Dense(3)], 4)
    seg = Segment(stages_of(model), 8)
    x = rng_x(5, 4)
    x[1, 2] = np.nan
    x[3, 0] = np.inf
    with pytest.raises(ValueError, match="x contains 2 NaN or infinite value"):
        seg.predict(x, np.empty((5, 3), np.float32), 1)
    with pytest.raises(ValueError, match="features"):
        seg.predict(rng_x(5, 6), np.empty((5, 3), np.float32), 1)
    with pytest.raises(ValueError, match="out must be"):
        seg.predict(rng_x(5, 4), np.empty((5, 2), np.float32), 1)
    with pytest.raises(ValueError, match="rows"):
        seg.forward(rng_x(9, 4), True, None)
    with pytest.raises(ValueError, match="float32"):
        seg.forward(rng_x(5, 4).astype(np.float64), True, None)
    with pytest.raises(ValueError, match="columns"):
        seg.forward(rng_x(5, 3), True, None)
    seg.forward(rng_x(5, 4), True, None)
    with pytest.raises(ValueError, match="rows"):
        seg.backward(np.zeros((4, 3), np.float32), True)


def test_seeds_are_checked():
    model = build([layers.Dense(4), layers.Dropout(0.5, seed=1)], 3)
    seg = Segment(stages_of(model), 4)
    with pytest.raises(ValueError, match="seed"):
        seg.forward(rng_x(4, 3), True, None)
    with pytest.raises(ValueError, match="seeds"):
        seg.forward(rng_x(4, 3), True, np.zeros(2, np.uint64))


def test_backward_needs_a_training_forward():
    seg = Segment(stages_of(build([layers.Dense(3)], 4)), 4)
    with pytest.raises(RuntimeError, match="forward"):
        seg.backward(np.zeros((4, 3), np.float32), True)


# ---------------------------------------------------------------- compilable()
def test_compilable_refuses_what_it_cannot_run():
    model = build([layers.Dense(4, activation="relu"), layers.Flatten()], 3)
    dense_stage = stages_of(model)[0]
    assert compilable(dense_stage) == (True, "")
    ok, reason = compilable(Stage(Kind.HOST, None, 4, 4))
    assert not ok and "HOST" in reason
    for kind in (Kind.INT8_DENSE, Kind.BF16_DENSE):
        assert not compilable(Stage(kind, None, 4, 4))[0]
    ok, reason = compilable(dense_stage.replace(act_name="custom_fn"))
    assert not ok and "custom_fn" in reason
    ok, reason = compilable(dense_stage.replace(act_name="leaky_relu",
                                                act_params={"alpha": 0.1, "beta": 2}))
    assert not ok and "beta" in reason
    ok, reason = compilable(dense_stage.replace(rate=0.5))
    assert not ok and "seed" in reason
    f64 = dense_stage.replace(kernel=dense_stage.kernel.astype(np.float64))
    ok, reason = compilable(f64)
    assert not ok and "float32" in reason
    strided = dense_stage.replace(kernel=np.zeros((4, 8), np.float32)[:, ::2])
    assert "C-contiguous" in compilable(strided)[1]
    with pytest.raises(ValueError, match="stage 0"):
        Segment([Stage(Kind.HOST, None, 4, 4)], 4)
    with pytest.raises(ValueError, match="takes 5 features"):
        Segment([dense_stage, stages_of(build([layers.Dense(2)], 5))[0]], 4)


def test_team_step_matches_single_thread():
    """The OpenMP team split (each thread its block of every product) gives the
    single-threaded step's loss and gradients."""
    model = build(mlp_all_kinds("softmax") + [layers.Dense(40, activation="relu"),
                                              layers.Dense(4)], 7)
    stages = stages_of(model, head_linear=True)
    seg = Segment(stages, 70)
    x = rng_x(70, 7, seed=5)
    t = np.arange(70) % 4
    snap = Snapshot(model)
    results = []
    for nthreads in (1, 2, 3):
        snap.restore()
        seeds = draw_seeds(stages)
        total = seg.train_step(x, t, None, int(LossOp.SOFTMAX_CE), 0.0, 0.0, 1 / 70, seeds,
                               nthreads)
        results.append((total, {name: g.copy() for name, g in grads_of(stages)},
                        seg.output(70).copy()))
    for total, grads, out in results[1:]:
        assert total == pytest.approx(results[0][0], rel=1e-6)
        close(out, results[0][2], "probabilities")
        for name, g in grads.items():
            close(g, results[0][1][name], name)


def test_gemv_predict_threads_split_columns():
    """Few rows of a model with many weights: the GEMV path's column split between
    threads gives the one-thread result."""
    model = build([layers.Dense(1100, activation="relu"), layers.BatchNormalization(),
                   layers.Dense(600, activation="tanh"), layers.Dense(5, activation="softmax")],
                  300)
    seg = Segment(stages_of(model), 8)
    assert seg.predict_can_thread(4) and not seg.predict_uses_blas(4)
    x = rng_x(4, 300)
    one, two = np.empty((4, 5), np.float32), np.empty((4, 5), np.float32)
    seg.predict(x, one, 1)
    seg.predict(x, two, 2)
    close(two, one, "2 threads")
    with use_backend("numpy"):
        ref, _ = ref_forward(model, x, False)
    np.testing.assert_allclose(one, ref, rtol=1e-4, atol=1e-6)


def test_segment_without_matrix_products():
    """A run of normalisation/dropout stages alone (a segment between host stages)."""
    bn = layers.BatchNormalization()
    model = build([bn, layers.Dropout(0.5, seed=2), layers.PReLU()], 6)
    bn.moving_mean.value[...] = 0.5
    seg = compare_forward_backward(model, rng_x(10, 6))
    assert not seg.predict_uses_blas(100) and not seg.predict_can_thread(100)
    assert (seg.width_in, seg.width_out, seg.max_batch) == (6, 6, 13)
    x = rng_x(10, 6)
    out = np.empty_like(x)
    seg.predict(x, out, 1)
    with use_backend("numpy"):
        close(out, ref_forward(model, x, False)[0], "predict")
    close(seg.forward(x, False), out, "forward(training=False)")


def test_team_size_and_introspection():
    seg = Segment(stages_of(build([layers.Dense(64, activation="relu"), layers.Dense(3)], 32)), 8)
    assert seg.team_size(8, 1) == 1
    assert seg.team_size(8, 4) == 1          # far below the size a team pays for
    assert seg.predict_uses_blas(33) and not seg.predict_uses_blas(32)
    assert seg.n_seeds == 0
