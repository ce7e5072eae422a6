"""Every layer, activation and loss passes a float64 finite-difference gradient check
on both the reference ("numpy") and compiled ("cpu") backends."""
import numpy
import pytest

import fastnn
from fastnn import activations, layers, losses, regularizers
from fastnn.backend import use_backend
from fastnn.utils import gradient_check, numerical_gradient

F64 = {"dtype": "float64"}
TOL = 1e-6  # a correct backward gives ~1e-8; a wrong one ~1e-1


@pytest.fixture(params=["numpy", "cpu"])
def backend(request):
    with use_backend(request.param) as ops:
        yield ops


def away_from_kinks(shape, kinks=(0.0,), margin=0.05, seed=0):
    """Random inputs, none within ``margin`` of a point where the function has a kink."""
    x = numpy.random.default_rng(seed).uniform(-2, 2, size=shape)
    for k in kinks:
        near = numpy.abs(x - k) < margin
        x[near] += 2 * margin
    return x


LAYER_CASES = {
    "dense": lambda: layers.Dense(3, activation="tanh", **F64),
    "dense_no_bias": lambda: layers.Dense(3, use_bias=False, **F64),
    "dense_relu": lambda: layers.Dense(3, activation="relu", **F64),
    "dense_sequence": lambda: layers.Dense(3, activation="sigmoid", **F64),
    "dropconnect_sequence": lambda: layers.DropConnect(3, rate=0.3, seed=4, **F64),
    "relu": lambda: layers.ReLU(**F64),
    "relu_keras_args": lambda: layers.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.5,
                                           **F64),
    "leaky_relu": lambda: layers.LeakyReLU(**F64),
    "prelu": lambda: layers.PReLU(alpha_initializer="random_uniform", **F64),
    "prelu_shared": lambda: layers.PReLU(alpha_initializer="ones", shared_axes=[1], **F64),
    "elu": lambda: layers.ELU(alpha=0.7, **F64),
    "softmax": lambda: layers.Softmax(**F64),
    "maxout": lambda: layers.Maxout(3, pieces=3, **F64),
    "dropout_seeded": lambda: layers.Dropout(0.4, seed=7, **F64),
    "dropout_stream": lambda: layers.Dropout(0.4, **F64),
    "dropconnect_seeded": lambda: layers.DropConnect(3, rate=0.5, activation="sigmoid", seed=3,
                                                     **F64),
    "dropconnect_stream": lambda: layers.DropConnect(3, rate=0.5, **F64),
    "batchnorm": lambda: layers.BatchNormalization(**F64),
    "batchnorm_no_affine": lambda: layers.BatchNormalization(center=False, scale=False, **F64),
    "layernorm": lambda: layers.LayerNormalization(**F64),
    "layernorm_no_center": lambda: layers.LayerNormalization(center=False, **F64),
    "flatten": lambda: layers.Flatten(**F64),
    "input": lambda: layers.InputLayer(shape=(5,), **F64),
    "gaussian_noise": lambda: layers.GaussianNoise(0.3, seed=1, **F64),
    "gaussian_dropout": lambda: layers.GaussianDropout(0.3, seed=2, **F64),
    "gaussian_dropout_stream": lambda: layers.GaussianDropout(0.3, **F64),
    "alpha_dropout": lambda: layers.AlphaDropout(0.3, seed=3, **F64),
    "unit_normalization": lambda: layers.UnitNormalization(**F64),
    "identity": lambda: layers.Identity(**F64),
    "activity_regularization": lambda: layers.ActivityRegularization(l1=0.1, **F64),
    "normalization": lambda: layers.Normalization(mean=[0.5] * 5, variance=[0.2, 1, 2, 3, 4],
                                                  **F64),
    "normalization_invert": lambda: layers.Normalization(mean=0.3, variance=2.0, invert=True,
                                                         **F64),
}


def _layer_input(name):
    if name in ("flatten", "dense_sequence", "dropconnect_sequence"):
        return away_from_kinks((4, 2, 3))
    return away_from_kinks((4, 5), kinks=(0.0, 0.5, 1.5))


def _randomize_weights(layer, seed=1):
    """Non-trivial gamma/beta and alpha, so their gradients are tested at generic points."""
    rng = numpy.random.default_rng(seed)
    layer.set_weights([w + rng.uniform(0.1, 0.5, size=w.shape) if "moving" not in n.name else w
                       for n, w in zip(layer.weights, layer.get_weights())])


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_backward_matches_finite_differences(backend, name):
    layer = LAYER_CASES[name]()
    x = _layer_input(name)
    layer.build(x.shape[1:])
    _randomize_weights(layer)
    report = gradient_check(layer, x)
    expected = {"x"} | {w.path for w in layer.trainable_weights}
    assert set(report.errors) == expected
    assert report.max_error < TOL, str(report)


def test_batchnorm_inference_mode_backward(backend):
    layer = layers.BatchNormalization(**F64)
    layer.build((5,))
    _randomize_weights(layer)
    layer.moving_mean.value[...] = 0.3
    layer.moving_variance.value[...] = 2.0
    assert float(gradient_check(layer, away_from_kinks((4, 5)), training=False)) < TOL


def test_random_masks_are_really_applied_during_the_check(backend):
    """The Dropout/DropConnect checks above are meaningful only if the masks drop something."""
    x = away_from_kinks((4, 5))
    drop = layers.Dropout(0.4, seed=7, **F64)
    assert (drop(x, training=True) == 0).any()
    dc = layers.DropConnect(3, rate=0.5, seed=3, **F64)
    assert not numpy.allclose(dc(x, training=True), dc(x, training=False))


def test_the_check_leaves_weights_moving_stats_and_mask_counters_unchanged(backend):
    bn = layers.BatchNormalization(**F64)
    drop = layers.Dropout(0.3, seed=1, **F64)
    model = fastnn.Sequential([layers.Dense(4, **F64), bn, drop])
    x = away_from_kinks((6, 3))
    model.build((3,))
    before = model.get_weights()
    gradient_check(model, x)
    assert all(numpy.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert drop.mask_calls == 0


@pytest.mark.parametrize("name", sorted(set(activations.names())))
def test_every_activation_backward(backend, name):
    layer = layers.Activation(name, **F64)
    report = gradient_check(layer, away_from_kinks((4, 5)))
    assert report.max_error < TOL, f"{name}: {report}"


@pytest.mark.parametrize("config", [
    {"name": "gelu", "approximate": True}, {"name": "relu", "max_value": 1.0},
    {"name": "relu", "negative_slope": 0.1, "threshold": 0.5},
    {"name": "leaky_relu", "negative_slope": 0.05}], ids=lambda c: "-".join(map(str, c.values())))
def test_activation_with_keras_arguments_backward(backend, config):
    layer = layers.Activation(activations.get(config), **F64)
    report = gradient_check(layer, away_from_kinks((4, 5), kinks=(0.0, 0.5, 1.0)))
    assert report.max_error < TOL, f"{config}: {report}"


@pytest.mark.parametrize("reg", [
    regularizers.L1L2(0.01, 0.02), regularizers.OrthogonalRegularizer(0.3),
    regularizers.OrthogonalRegularizer(0.3, mode="columns")],
    ids=["l1_l2", "orthogonal_rows", "orthogonal_columns"])
def test_regularizer_gradient(backend, reg):
    w = backend.asarray(away_from_kinks((4, 3), seed=2))
    analytic = backend.xp.zeros_like(w)
    reg.add_gradient(backend, w, analytic)
    numeric = numerical_gradient(lambda: reg.penalty(backend, w), w)
    assert numpy.abs(backend.to_numpy(analytic)).max() > 0
    numpy.testing.assert_allclose(backend.to_numpy(analytic), numeric, rtol=1e-5, atol=1e-9)


def test_model_with_every_kind_of_layer_and_a_loss(backend):
    model = fastnn.Sequential([
        layers.Dense(6, activation="relu", input_shape=(5,), **F64),
        layers.BatchNormalization(**F64),
        layers.PReLU(alpha_initializer="random_uniform", **F64),
        layers.Dropout(0.3, seed=2, **F64),
        layers.Maxout(4, **F64),
        layers.LayerNormalization(**F64),
        layers.DropConnect(3, rate=0.3, seed=5, activation="softmax", **F64),
    ])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = away_from_kinks((8, 5))
    report = gradient_check(model, x, numpy.array([0, 1, 2, 1, 0, 2, 2, 1]))
    assert len(report.errors) == 1 + len(model.trainable_weights)
    assert report.max_error < TOL, str(report)


def test_frozen_layers_weights_are_not_checked(backend):
    first = layers.Dense(4, **F64)
    model = fastnn.Sequential([first, layers.Dense(2, **F64)])
    model.build((3,))
    first.trainable = False
    report = gradient_check(model, away_from_kinks((4, 3)))
    assert not any(name.startswith(first.name + "/") for name in report.errors)
    assert report.max_error < TOL


class _WrongDense(layers.Dense):
    """A Dense whose kernel gradient is off by 10%: the check must notice."""

    def backward(self, dy, cache, need_dx=True, apply_activation=True):
        dx = super().backward(dy, cache, need_dx, apply_activation)
        self.kernel.grad[...] *= 1.1
        return dx


def test_the_check_catches_a_wrong_gradient(backend):
    report = gradient_check(_WrongDense(3, **F64), away_from_kinks((4, 5)))
    assert report.errors["x"] < TOL
    assert report.max_error > 0.05


def test_the_check_refuses_float32_and_bad_arguments():
    with pytest.raises(ValueError, match="float64"):
        gradient_check(layers.Dense(2), numpy.ones((2, 3)))
    with pytest.raises(ValueError, match="eps"):
        gradient_check(layers.Dense(2, **F64), numpy.ones((2, 3)), eps=0)
    with pytest.raises(ValueError, match="loss"):
        gradient_check(layers.Dense(2, **F64), numpy.ones((2, 3)), y=numpy.ones((2, 2)))
    with pytest.raises(TypeError, match="layer or Sequential"):
        gradient_check(object(), numpy.ones((2, 3)))


def test_max_entries_samples_a_subset(backend):
    report = gradient_check(layers.Dense(8, **F64), away_from_kinks((4, 5)), max_entries=6)
    assert report.checked == {"x": 6, report_name(report, "kernel"): 6,
                              report_name(report, "bias"): 6}
    assert report.max_error < TOL


def report_name(report, suffix):
    return next(name for name in report.errors if name.endswith("/" + suffix))


# ---------------------------------------------------------------------- losses
def _every_loss_class():
    found, todo = set(), [losses.Loss]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if not sub.__name__.startswith("_") and sub.__module__ == "fastnn.losses":
                found.add(sub)
    # Wrapped user functions are differentiated on the tape: tests/test_custom_losses.py.
    found.discard(losses.LossFunctionWrapper)
    return found


def _loss_inputs(loss, rng, n=5, k=4):
    """(pred, targets) in the domain each loss expects, away from its kinks."""
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        return rng.uniform(0.1, 1.0, (n, k)), rng.integers(0, k, n)
    if isinstance(loss, losses.CategoricalCrossentropy):
        return rng.uniform(0.1, 1.0, (n, k)), numpy.eye(k)[rng.integers(0, k, n)]
    if isinstance(loss, losses.BinaryCrossentropy):
        return rng.uniform(0.05, 0.95, (n, k)), rng.integers(0, 2, (n, k)).astype(float)
    if isinstance(loss, losses.Hinge):
        return away_from_kinks((n, k), kinks=(-1.0, 1.0), seed=3), \
            rng.choice([-1.0, 1.0], (n, k))
    if isinstance(loss, losses.CategoricalHinge):
        return rng.normal(size=(n, k)), numpy.eye(k)[rng.integers(0, k, n)]
    if isinstance(loss, losses.SquaredHinge):
        return away_from_kinks((n, k), kinks=(-1.0, 1.0), seed=3), \
            rng.choice([-1.0, 1.0], (n, k))
    if isinstance(loss, (losses.MeanSquaredLogarithmicError, losses.Poisson)):
        return rng.uniform(0.2, 2.0, (n, k)), rng.uniform(0.2, 2.0, (n, k))
    if isinstance(loss, losses.KLDivergence):
        return rng.uniform(0.1, 0.9, (n, k)), rng.dirichlet(numpy.ones(k), n)
    if isinstance(loss, losses.MeanAbsolutePercentageError):
        targets = rng.uniform(0.5, 2.0, (n, k))
        return targets + rng.choice([-0.3, 0.3], (n, k)), targets
    return rng.normal(size=(n, k)), rng.normal(size=(n, k))


LOSSES = [losses.MeanSquaredError(), losses.MeanAbsoluteError(), losses.Huber(delta=0.5),
          losses.Hinge(), losses.CategoricalHinge(), losses.BinaryCrossentropy(),
          losses.BinaryCrossentropy(label_smoothing=0.1), losses.CategoricalCrossentropy(),
          losses.CategoricalCrossentropy(label_smoothing=0.2),
          losses.SparseCategoricalCrossentropy(),
          losses.MeanSquaredError(reduction="sum"),
          losses.CategoricalCrossentropy(reduction="mean_with_sample_weight"),
          losses.MeanAbsolutePercentageError(), losses.MeanSquaredLogarithmicError(),
          losses.SquaredHinge(), losses.LogCosh(), losses.KLDivergence(), losses.Poisson(),
          losses.CosineSimilarity()]
FUSED = [loss for loss in LOSSES if loss.logits_method is not None]


def test_the_loss_list_covers_every_loss_class():
    assert {type(loss) for loss in LOSSES} == _every_loss_class()


def _check_loss(ops, loss, pred, targets, on_logits):
    rng = numpy.random.default_rng(4)
    pred = ops.asarray(pred, dtype="float64")
    targets = ops.asarray(targets)
    weights = ops.asarray(rng.uniform(0.2, 2.0, pred.shape[0]))

    def value():
        probs = ops.xp.empty_like(pred) if on_logits else None
        return loss.value_and_grad(ops, pred, targets, None, weights, on_logits=on_logits,
                                   probs_out=probs)

    analytic = ops.xp.empty_like(pred)
    probs = ops.xp.empty_like(pred) if on_logits else None
    loss.value_and_grad(ops, pred, targets, analytic, weights, on_logits=on_logits,
                        probs_out=probs)
    numeric = numerical_gradient(value, pred)
    analytic = ops.to_numpy(analytic)
    assert numpy.abs(analytic).max() > 0
    scale = numpy.abs(numeric).max()
    assert numpy.abs(analytic - numeric).max() < TOL * scale, type(loss).__name__


def _loss_id(loss):
    return loss.name if loss.reduction == "sum_over_batch_size" else \
        f"{loss.name}-{loss.reduction}"


@pytest.mark.parametrize("loss", LOSSES, ids=_loss_id)
def test_loss_gradient_on_predictions_with_sample_weight(backend, loss):
    pred, targets = _loss_inputs(loss, numpy.random.default_rng(0))
    _check_loss(backend, loss, pred, targets, on_logits=False)


@pytest.mark.parametrize("loss", FUSED, ids=_loss_id)
def test_fused_loss_gradient_on_logits_with_sample_weight(backend, loss):
    _, targets = _loss_inputs(loss, numpy.random.default_rng(0))
    logits = numpy.random.default_rng(1).normal(size=(5, 4)) * 2
    _check_loss(backend, loss, logits, targets, on_logits=True)
