"""A plain Dense model with a loss the DenseStack has no code for (a user's loss) keeps
the compiled forward and backward (``forward_train`` / ``backward_from``) and computes
what the layer-by-layer path computes."""
import numpy as np
import pytest

import fastnn
from fastnn import layers, losses, ops, optimizers
from fastnn.backend import use_backend
from fastnn.models import fast_path
from fastnn.utils.gradient_check import numerical_gradient


def my_mse(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


class AbsCube(losses.Loss):
    """A Loss subclass: per-sample mean of |d| + d**3 / 10 (asymmetric, so a wrong sign
    or a dropped term in the gradient shows)."""

    def call(self, y_true, y_pred):
        d = y_pred - y_true
        return ops.mean(ops.abs(d) + 0.1 * d * d * d, axis=-1)


LOSSES = {
    "function": lambda: my_mse,
    "subclass": lambda: AbsCube(),
    "subclass_sum": lambda: AbsCube(reduction="sum"),
    "builtin_huber": lambda: losses.Huber(0.5),
    "builtin_mae": lambda: "mae",
    "builtin_ce_smoothed_logits": lambda: losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=0.1),
}
HEADS = ["linear", "softmax", "sigmoid", "tanh"]


def make_data(n=40, d=6, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)).astype("float32"),
            rng.normal(size=(n, k)).astype("float32"))


def build(head, loss, seed=0, frozen=False, dtype="float32", optimizer=None):
    fastnn.utils.set_random_seed(seed)
    model = fastnn.Sequential([
        layers.Dense(9, activation="relu", input_shape=(6,), dtype=dtype),
        layers.Dense(7, activation="tanh", dtype=dtype),
        layers.Dense(4, activation=head, dtype=dtype)])
    model.compile(optimizer=optimizer or optimizers.Adam(0.01), loss=loss)
    model.build()
    if frozen:
        model.layers[0].trainable = False
    return model


def uses_outside_loss(model, batch=16):
    plan = model._stack_plan(fastnn.backend.get_ops(), batch)
    return plan is not None and plan[1] is None


def step_gradients(model, x, y, sw, layer_path, monkeypatch):
    """The flat gradient buffer after one training step (no optimizer update); entries the
    step does not own stay NaN."""
    with monkeypatch.context() as m:
        if layer_path:
            m.setattr(fast_path, "plain_dense_stack", lambda model: False)
        m.setattr(model.optimizer, "apply", lambda store: None)
        model._store.grads[...] = np.nan
        o = fastnn.backend.get_ops()
        loss, _ = model._train_step(o.asarray(x), o.asarray(y),
                                    None if sw is None else o.asarray(sw))
        return loss, o.to_numpy(model._store.grads).copy()


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("weighted,frozen", [(False, False), (True, True)])
def test_gradients_match_layer_path(backend, loss, head, weighted, frozen, monkeypatch):
    x, y = make_data(n=13)
    sw = np.linspace(0.5, 2, len(x)).astype("float32") if weighted else None
    with use_backend(backend):
        fast_model = build(head, LOSSES[loss](), frozen=frozen)
        assert uses_outside_loss(fast_model)
        fast_loss, fast = step_gradients(fast_model, x, y, sw, False, monkeypatch)
        slow_loss, slow = step_gradients(build(head, LOSSES[loss](), frozen=frozen), x, y, sw,
                                         True, monkeypatch)
    assert fast_loss == pytest.approx(slow_loss, rel=1e-5)
    assert np.isnan(fast).any() == frozen  # a frozen layer's gradients are not written
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-6)


def fit(model, x, y, sw, layer_path, monkeypatch):
    with monkeypatch.context() as m:
        if layer_path:
            m.setattr(fast_path, "plain_dense_stack", lambda model: False)
        hist = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                         sample_weight=sw)
        return hist.history, model.get_weights(), model.predict(x)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("loss", ["function", "subclass"])
@pytest.mark.parametrize("head", ["linear", "softmax"])
@pytest.mark.parametrize("weighted,frozen", [(False, False), (True, True)])
def test_training_matches_layer_path(backend, loss, head, weighted, frozen, monkeypatch):
    x, y = make_data()
    sw = np.linspace(0.5, 2, len(x)).astype("float32") if weighted else None
    with use_backend(backend):
        fast_model = build(head, LOSSES[loss](), frozen=frozen)
        assert uses_outside_loss(fast_model)
        fast = fit(fast_model, x, y, sw, False, monkeypatch)
        slow = fit(build(head, LOSSES[loss](), frozen=frozen), x, y, sw, True, monkeypatch)
    np.testing.assert_allclose(fast[0]["loss"], slow[0]["loss"], rtol=2e-5, atol=1e-6)
    for a, b in zip(fast[1], slow[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast[2], slow[2], rtol=1e-4, atol=1e-5)
    if frozen:
        np.testing.assert_array_equal(fast[1][0], build(head, my_mse).get_weights()[0])


@pytest.mark.parametrize("loss", ["function", "subclass"])
@pytest.mark.parametrize("head", ["linear", "softmax", "sigmoid"])
def test_float64_step_gradients_match_finite_differences(loss, head, monkeypatch):
    """A float64 model on the "cpu" backend runs the reference stack's forward_train and
    backward_from; its gradients match central differences of the loss."""
    x, y = (a.astype("float64") for a in make_data(n=7))
    sw = np.linspace(0.5, 2, len(x))
    model = build(head, LOSSES[loss](), dtype="float64")
    assert uses_outside_loss(model)
    _, grads = step_gradients(model, x, y, sw, False, monkeypatch)
    loss_fn = model.loss

    def objective():
        return float(loss_fn(y, model.predict_on_batch(x), sample_weight=sw))

    numeric = np.concatenate([numerical_gradient(objective, w.value, eps=1e-6).ravel()
                              for layer in model.layers for w in layer.trainable_weights])
    np.testing.assert_allclose(_in_weight_order(model, grads), numeric, rtol=1e-6, atol=1e-8)
    report = fastnn.utils.gradient_check(model, x, y)
    assert float(report) < 1e-6


def _in_weight_order(model, flat):
    """The gradients in ``flat`` (a copy of the store's buffer) in trainable-weight order."""
    base = model._store.grads
    parts = []
    for layer in model.layers:
        for w in layer.trainable_weights:
            offset = (w.grad.__array_interface__["data"][0]
                      - base.__array_interface__["data"][0]) // base.itemsize
            parts.append(flat[offset:offset + w.grad.size])
    return np.concatenate(parts)


@pytest.mark.parametrize("head", ["softmax", "tanh", "linear"])
@pytest.mark.parametrize("first", [0, 2])
def test_compiled_backward_from_matches_reference(head, first):
    """The compiled forward_train / backward_from against the reference stack's."""
    x, _ = make_data(n=11)
    dy = np.random.default_rng(2).normal(size=(11, 4)).astype("float32")
    model = build(head, my_mse)
    results = []
    for backend in ("cpu", "numpy"):
        with use_backend(backend):
            stack = fast_path.build_stack(fastnn.backend.get_ops(), model, 16)
            out = np.array(stack.forward_train(x))
            model._store.grads[...] = np.nan
            stack.backward_from(dy, first)
            results.append((type(stack).__name__, out, model._store.grads.copy()))
    (compiled, out_c, grads_c), (reference, out_r, grads_r) = results
    assert (compiled, reference) == ("DenseStack", "ReferenceDenseStack")
    np.testing.assert_allclose(out_c, out_r, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads_c, grads_r, rtol=1e-4, atol=1e-6)
    assert np.isnan(grads_c).any() == (first > 0)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_backward_from_needs_its_forward(backend):
    x, y = make_data(n=5)
    with use_backend(backend):
        model = build("linear", "mse")
        stack = fast_path.build_stack(fastnn.backend.get_ops(), model, 8)
        dy = np.zeros((5, 4), dtype="float32")
        with pytest.raises(RuntimeError, match="forward_train"):
            stack.backward_from(dy)
        stack.forward_train(x)
        with pytest.raises(ValueError, match="dy"):
            stack.backward_from(dy[:3])
        stack.train_step(x, y, None, fast_path.loss_code(model))
        with pytest.raises(RuntimeError, match="forward_train"):
            stack.backward_from(dy)  # train_step overwrote the activations


def test_fused_head_losses_keep_their_paths():
    """A cross-entropy the stack cannot fuse (label smoothing) on a softmax head stays on
    the layer path; with a code the one-call step is used."""
    smoothing = build("softmax", losses.CategoricalCrossentropy(label_smoothing=0.1))
    smoothing._refresh_metric_choice()  # what fit does first: the head is fused
    assert smoothing._stack_plan(fastnn.backend.get_ops(), 8) is None
    builtin = build("linear", "mse")
    assert builtin._stack_plan(fastnn.backend.get_ops(), 8)[1] == fast_path.MSE
