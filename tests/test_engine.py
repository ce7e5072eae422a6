"""Programs and executors: lowering, rewrites, and the compiled executor against the
reference one, whole program by whole program (forward, loss, gradients, updates)."""
import numpy
import pytest

import fastnn
from fastnn import layers
from fastnn.backend import get_ops, use_backend
from fastnn.engine.executor import Executor
from fastnn.engine.program import Program, fuse_head, inference_program, lower, training_program
from fastnn.engine.stages import Kind, Stage


def _model(*hidden, head="softmax", width=6, classes=3):
    model = fastnn.Sequential([fastnn.Input(shape=(width,)), *hidden,
                               layers.Dense(classes, activation=head)])
    return model


class Doubling(layers.Layer):
    def call(self, x):
        return x * 2.0


def test_built_in_layers_lower_to_their_stage_kinds():
    model = _model(layers.Dense(8), layers.BatchNormalization(), layers.ReLU(),
                   layers.Dropout(0.2), layers.LayerNormalization(), layers.PReLU(),
                   layers.DropConnect(5, rate=0.3, activation="tanh"),
                   layers.Maxout(4, pieces=2), layers.GaussianNoise(0.1), Doubling())
    kinds = [s.kind for s in lower(model)]
    assert kinds == [Kind.DENSE, Kind.BATCHNORM, Kind.ACTIVATION, Kind.DROPOUT, Kind.LAYERNORM,
                     Kind.PRELU, Kind.DENSE, Kind.MAXOUT, Kind.HOST, Kind.HOST, Kind.DENSE]
    dense = lower(model)[0]
    assert numpy.shares_memory(dense.kernel, model.layers[0].kernel.value)
    assert dense.kernel_grad is model.layers[0].kernel.grad
    assert lower(model)[6].seeded and lower(model)[6].rate == 0.3


def test_what_a_kernel_cannot_run_stays_a_host_stage():
    activity = layers.Dense(4, activity_regularizer=fastnn.regularizers.l2(0.1))
    sequences = fastnn.Sequential([fastnn.Input(shape=(3, 5)), layers.Dense(4)])
    shared = layers.PReLU(shared_axes=[1])
    model = _model(activity, shared)
    assert [s.kind for s in lower(model)][:2] == [Kind.HOST, Kind.HOST]
    assert lower(sequences)[0].kind is Kind.HOST


def test_a_layer_whose_forward_was_replaced_runs_it():
    model = _model(layers.Dropout(0.5))
    model.layers[0].forward = lambda x, training=False: (x * 3.0, None)
    model.layers[0].backward = lambda dy, cache, need_dx=True: dy * 3.0
    assert lower(model)[0].kind is Kind.HOST
    x = numpy.ones((2, 6), "float32")
    numpy.testing.assert_allclose(model(x, training=True),
                                  model.layers[1](x * 3.0, training=True), rtol=1e-6)


def test_a_frozen_layer_has_no_gradient_buffers():
    model = _model(layers.Dense(8), layers.BatchNormalization())
    model.layers[0].trainable = False
    model.layers[1].trainable = False
    dense, norm, _ = lower(model)
    assert dense.kernel_grad is None and dense.bias_grad is None and not dense.trainable
    assert norm.gamma_grad is None and not norm.batch_stats  # Keras: frozen BN infers


def test_fused_head_leaves_the_activation_to_the_loss():
    model = _model(layers.Dense(8, activation="relu"))
    model.compile("sgd", "sparse_categorical_crossentropy")
    program = training_program(model)
    assert program.fused_head and program.stages[-1].act_name == "linear"
    assert model.layers[-1].activation.name == "softmax"  # the layer is untouched


def test_fusing_an_activation_the_loss_cannot_take_is_refused():
    stage = lower(_model(head="relu"))[-1]
    with pytest.raises(ValueError, match="cannot fuse"):
        fuse_head(stage, fastnn.losses.CategoricalCrossentropy())
    with pytest.raises(ValueError, match="cannot fuse"):
        fuse_head(lower(_model(head="softmax"))[-1], fastnn.losses.MeanSquaredError())


def test_inference_program_drops_dropout_and_keeps_live_weights():
    model = _model(layers.Dense(8), layers.Activation("tanh"), layers.Dropout(0.5),
                   layers.BatchNormalization())
    program = inference_program(model, get_ops())
    assert [s.kind for s in program.stages] == [Kind.DENSE, Kind.BATCHNORM, Kind.DENSE]
    assert program.stages[0].act_name == "tanh"  # merged into the linear Dense
    assert numpy.shares_memory(program.stages[0].kernel, model.layers[0].kernel.value)
    folded = inference_program(model, get_ops(), fold=True)
    assert [s.kind for s in folded.stages] == [Kind.DENSE, Kind.DENSE]
    assert not numpy.shares_memory(folded.stages[1].kernel, model.layers[-1].kernel.value)


def test_stage_fields_are_checked():
    with pytest.raises(TypeError, match="unknown stage field"):
        Stage(Kind.DENSE, None, 2, 2, kernal=None)
    with pytest.raises(TypeError, match="unknown stage field"):
        lower(_model())[0].replace(colour=1)


# ------------------------------------------------------------------ compiled vs reference
PROGRAMS = {
    "plain": lambda: [layers.Dense(12, activation="relu"), layers.Dense(9, activation="tanh")],
    "bn_relu_dropout": lambda: [layers.Dense(12), layers.BatchNormalization(), layers.ReLU(),
                                layers.Dropout(0.25, seed=3)],
    "bn_no_affine": lambda: [layers.Dense(10, use_bias=False),
                             layers.BatchNormalization(center=False, scale=False),
                             layers.Activation("sigmoid")],
    "layernorm_prelu": lambda: [layers.Dense(10), layers.LayerNormalization(),
                                layers.PReLU(alpha_initializer="ones")],
    "dropconnect_maxout": lambda: [layers.DropConnect(10, rate=0.3, activation="elu", seed=5),
                                   layers.Maxout(6, pieces=3)],
    "with_host_stage": lambda: [layers.Dense(10, activation="relu"), Doubling(),
                                layers.BatchNormalization(), layers.Dense(7, activation="gelu")],
    "regularized": lambda: [layers.Dense(10, activation="selu",
                                         kernel_regularizer=fastnn.regularizers.l1_l2(1e-3, 1e-2)),
                            layers.Dropout(0.1, seed=1)],
}
def my_mse(y_true, y_pred):
    return fastnn.ops.mean(fastnn.ops.square(y_true - y_pred), axis=-1)


class AbsCube(fastnn.losses.Loss):
    """A user's loss: per-sample mean of |d| + d**3 / 10 (asymmetric, so a wrong sign or
    a dropped term in the gradient shows)."""

    def call(self, y_true, y_pred):
        d = y_pred - y_true
        return fastnn.ops.mean(fastnn.ops.abs(d) + 0.1 * d * d * d, axis=-1)


# (loss, head, targets): kernel losses run inside the compiled step; the others (a
# user's function or Loss subclass, host-computed built-ins, label smoothing) between
# the compiled forward and backward passes.
LOSSES = {
    "sparse_ce": (lambda: "sparse_categorical_crossentropy", "softmax", "ids"),
    "dense_ce": (lambda: "categorical_crossentropy", "softmax", "onehot"),
    "bce": (lambda: "binary_crossentropy", "sigmoid", "binary"),
    "bce_logits": (lambda: fastnn.losses.BinaryCrossentropy(from_logits=True), "linear",
                   "binary"),
    "mse_linear": (lambda: "mse", "linear", "real"),
    "mse_softmax": (lambda: "mse", "softmax", "real"),
    "huber_tanh": (lambda: "huber", "tanh", "real"),
    "mae": (lambda: "mae", "linear", "real"),
    "ce_smoothed_logits": (lambda: fastnn.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=0.1), "linear", "onehot"),
    "user_function": (lambda: my_mse, "sigmoid", "real"),
    "user_subclass_sum": (lambda: AbsCube(reduction="sum"), "tanh", "real"),
}


def _targets(kind, n, classes, rng):
    ids = rng.integers(0, classes, size=n)
    return {"ids": ids, "onehot": numpy.eye(classes, dtype="float32")[ids],
            "binary": (rng.random((n, classes)) > 0.5).astype("float32"),
            "real": rng.normal(size=(n, classes)).astype("float32")}[kind]


def _twin_models(name, loss, head, frozen_first=False):
    models = []
    for _ in range(2):
        fastnn.utils.set_random_seed(11)
        model = _model(*PROGRAMS[name](), head=head)
        if frozen_first:
            model.layers[0].trainable = False
        model.compile(fastnn.optimizers.Adam(1e-2), loss())
        models.append(model)
    return models


@pytest.mark.parametrize("name", sorted(PROGRAMS))
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_compiled_training_matches_the_reference(name, loss_name, monkeypatch):
    """The same model trained on the compiled and on the reference executor ends with
    the same weights, losses and outputs (float32 rounding apart)."""
    loss, head, kind = LOSSES[loss_name]
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype("float32")
    y = _targets(kind, 40, 3, rng)
    compiled, reference = _twin_models(name, loss, head, frozen_first=(name == "plain"))
    histories = []
    for model, compile_stages in ((compiled, True), (reference, False)):
        real = Executor.__init__

        def init(self, ops, program, max_batch=1, compile_stages=compile_stages):
            real(self, ops, program, max_batch, compile_stages)
        monkeypatch.setattr(Executor, "__init__", init)
        fastnn.utils.set_random_seed(5)
        histories.append(model.fit(x, y, batch_size=16, epochs=2, shuffle=False,
                                   verbose=0).history["loss"])
        executor = model._train_executor(get_ops(), 16)
        assert executor.compiled == compile_stages
        monkeypatch.undo()
    assert any(type(p).__name__ == "_SegmentPart"
               for p in compiled._train_executor(get_ops(), 16).parts)
    numpy.testing.assert_allclose(histories[0], histories[1], rtol=2e-4, atol=1e-5)
    for a, b in zip(compiled.get_weights(), reference.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)
    numpy.testing.assert_allclose(compiled.predict(x, verbose=0), reference.predict(x, verbose=0),
                                  rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_cpu_programs_match_the_numpy_backend(name):
    """Forward (training and inference) and every gradient of one step, "cpu" (compiled)
    against "numpy" (the reference array code)."""
    rng = numpy.random.default_rng(1)
    x = rng.normal(size=(24, 6)).astype("float32")
    y = rng.integers(0, 3, size=24)
    results = []
    for backend in ("cpu", "numpy"):
        with use_backend(backend):
            fastnn.utils.set_random_seed(2)
            model = _model(*PROGRAMS[name]())
            model.compile("sgd", "sparse_categorical_crossentropy")
            ops = get_ops()
            executor = model._train_executor(ops, 24)
            fastnn.utils.set_random_seed(9)
            loss, pred = executor.train_step(ops.asarray(x), ops.asarray(y), None)
            grads = [ops.to_numpy(w.grad).copy() for w in model.trainable_weights]
            results.append((loss, ops.to_numpy(pred).copy(), grads, model.predict(x, verbose=0)))
    (loss_c, pred_c, grads_c, infer_c), (loss_r, pred_r, grads_r, infer_r) = results
    assert loss_c == pytest.approx(loss_r, rel=1e-5, abs=1e-6)
    numpy.testing.assert_allclose(pred_c, pred_r, rtol=1e-4, atol=1e-6)
    for a, b in zip(grads_c, grads_r):
        numpy.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    numpy.testing.assert_allclose(infer_c, infer_r, rtol=1e-4, atol=1e-6)


def test_a_program_without_compiled_stages_runs_on_the_reference():
    model = _model(Doubling())
    model.compile("sgd", "mse")
    with use_backend("numpy"):
        executor = Executor(get_ops(), Program(lower(model)))
    assert not executor.compiled
    assert all(type(p).__name__ == "HostPart" for p in executor.parts)


class TrainingFlag(layers.Layer):
    """Adds 1 in a training pass: shows which mode a HOST stage ran in."""

    def forward(self, x, training=False):
        return (x + 1.0 if training else x), None

    def backward(self, dy, cache, need_dx=True):
        return dy


def test_monte_carlo_program_trains_only_the_dropout_layers():
    """mc_samples: Dropout/DropConnect/noise layers draw masks, BatchNorm and other layers
    infer; the compiled run equals the numpy reference for the same seeds."""
    results = []
    x = numpy.random.default_rng(3).normal(size=(7, 6)).astype("float32")
    for backend in ("cpu", "numpy"):
        with use_backend(backend):
            fastnn.utils.set_random_seed(4)
            model = _model(layers.Dense(9), layers.BatchNormalization(), layers.Dropout(0.5),
                           TrainingFlag(), layers.GaussianNoise(0.3),
                           layers.DropConnect(5, rate=0.4))
            moving = [w.copy() for w in model.layers[1].get_weights()]
            fastnn.utils.set_random_seed(8)
            results.append(model.predict(x, mc_samples=4, verbose=0))
            plain = model.predict(x, verbose=0)
            for a, b in zip(moving, model.layers[1].get_weights()):
                numpy.testing.assert_array_equal(a, b)
    numpy.testing.assert_allclose(results[0], results[1], rtol=1e-4, atol=1e-6)
    assert not numpy.allclose(results[0], plain)
    from fastnn.engine.program import monte_carlo_program
    from fastnn.layers.regularization import MaskSeeds
    stages = monte_carlo_program(model, lambda layer: isinstance(layer, MaskSeeds)).stages
    assert [s.inference_only for s in stages] == [True, True, False, True, False, False, True]
    assert not stages[1].batch_stats
