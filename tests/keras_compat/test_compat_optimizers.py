"""Optimizers and schedules against Keras: steps from fixed weights, defaults, configs."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

import fastnn  # noqa: E402
from compat_marks import assert_close, cases  # noqa: E402

RNG = np.random.default_rng(3)
X = RNG.normal(size=(8, 3)).astype("float32")
Y = RNG.normal(size=(8, 2)).astype("float32")
KERNEL = RNG.normal(size=(3, 2)).astype("float32")
BIAS = np.array([0.1, -0.1], "float32")

OPTIMIZERS = {
    "SGD": ("SGD", dict(learning_rate=0.1)),
    "SGD_momentum": ("SGD", dict(learning_rate=0.1, momentum=0.9)),
    "SGD_nesterov": ("SGD", dict(learning_rate=0.1, momentum=0.9, nesterov=True)),
    "Adam": ("Adam", dict(learning_rate=0.01)),
    "Adam_amsgrad": ("Adam", dict(learning_rate=0.01, amsgrad=True)),
    "AdamW": ("AdamW", dict(learning_rate=0.01, weight_decay=0.1)),
    "Nadam": ("Nadam", dict(learning_rate=0.01)),
    "Adagrad": ("Adagrad", dict(learning_rate=0.1)),
    "Adadelta": ("Adadelta", dict(learning_rate=1.0)),
    "RMSprop": ("RMSprop", dict(learning_rate=0.01)),
    "RMSprop_momentum": ("RMSprop", dict(learning_rate=0.01, momentum=0.5, centered=True)),
    "SGD_clipnorm": ("SGD", dict(learning_rate=0.1, clipnorm=0.5)),
    "Adam_clipvalue": ("Adam", dict(learning_rate=0.01, clipvalue=0.1)),
    "Adamax": ("Adamax", dict(learning_rate=0.01)),
    "Lion": ("Lion", dict(learning_rate=0.01)),
    "Ftrl": ("Ftrl", dict(learning_rate=0.1)),
    "Ftrl_regularized": ("Ftrl", dict(learning_rate=0.1, l1_regularization_strength=0.01,
                                      l2_regularization_strength=0.02,
                                      l2_shrinkage_regularization_strength=0.01, beta=0.1)),
}
IDS = sorted(OPTIMIZERS)
MISSING = {}


def make(lib, opt_id):
    cls, kwargs = OPTIMIZERS[opt_id]
    return getattr(lib.optimizers, cls)(**kwargs)


def three_steps(lib, opt_id):
    if lib is keras:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    else:
        model = fastnn.Sequential([fastnn.Input((3,)), fastnn.layers.Dense(2)])
        model.build()
    model.set_weights([KERNEL, BIAS])
    opt = make(lib, opt_id)
    model.compile(optimizer=opt, loss="mse")
    for _ in range(3):
        model.train_on_batch(X, Y)
    return model.get_weights(), opt


@pytest.mark.parametrize("opt_id", cases(IDS, MISSING))
def test_three_steps_from_fixed_weights(opt_id):
    want, _ = three_steps(keras, opt_id)
    got, _ = three_steps(fastnn, opt_id)
    for g, w in zip(got, want):
        assert_close(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opt_id", cases(IDS, MISSING))
def test_default_learning_rate(opt_id):
    cls = OPTIMIZERS[opt_id][0]
    assert_close(float(getattr(fastnn.optimizers, cls)().learning_rate),
                 float(getattr(keras.optimizers, cls)().learning_rate))


KERAS_ONLY_KEYS = {"ema_overwrite_frequency", "gradient_accumulation_steps",
                   "loss_scale_factor", "amsgrad_slot"}


@pytest.mark.parametrize("opt_id", cases(IDS, MISSING))
def test_config_keys(opt_id):
    want = set(make(keras, opt_id).get_config()) - KERAS_ONLY_KEYS
    assert want <= set(make(fastnn, opt_id).get_config())


@pytest.mark.parametrize("opt_id", cases(IDS, MISSING))
def test_learning_rate_assignment(opt_id):
    for lib in (keras, fastnn):
        opt = make(lib, opt_id)
        opt.learning_rate = 0.25
        assert_close(float(opt.learning_rate), 0.25)


@pytest.mark.parametrize("name", cases(["sgd", "adam", "rmsprop", "adagrad", "adadelta",
                                        "nadam", "adamw", "adamax", "lion"], {}))
def test_get_by_string(name):
    k, f = keras.optimizers.get(name), fastnn.optimizers.get(name)
    assert type(f).__name__ == type(k).__name__


def test_unknown_optimizer_raises_value_error():
    with pytest.raises(ValueError):
        keras.optimizers.get("adamm")
    with pytest.raises(ValueError):
        fastnn.optimizers.get("adamm")


def test_iterations_counts_steps():
    _, k = three_steps(keras, "Adam")
    _, f = three_steps(fastnn, "Adam")
    assert int(f.iterations) == int(k.iterations) == 3


# ---------------------------------------------------------------- schedules
SCHEDULES = {
    "ExponentialDecay": ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=10,
                                                  decay_rate=0.5)),
    "ExponentialDecay_staircase": ("ExponentialDecay", dict(
        initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5, staircase=True)),
    "InverseTimeDecay": ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=5,
                                                  decay_rate=0.5)),
    "InverseTimeDecay_staircase": ("InverseTimeDecay", dict(
        initial_learning_rate=0.1, decay_steps=5, decay_rate=0.5, staircase=True)),
    "PiecewiseConstantDecay": ("PiecewiseConstantDecay", dict(boundaries=[5, 20],
                                                              values=[0.1, 0.05, 0.01])),
    "CosineDecay": ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=40)),
    "CosineDecay_alpha": ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=40,
                                              alpha=0.1)),
    "CosineDecay_warmup": ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=40,
                                               warmup_target=0.1, warmup_steps=10)),
    "PolynomialDecay": ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=40)),
    "PolynomialDecay_power": ("PolynomialDecay", dict(initial_learning_rate=0.1,
                                                      decay_steps=40, power=2.0,
                                                      end_learning_rate=0.01)),
    "PolynomialDecay_cycle": ("PolynomialDecay", dict(initial_learning_rate=0.1,
                                                      decay_steps=15, cycle=True)),
    "CosineDecayRestarts": ("CosineDecayRestarts", dict(initial_learning_rate=0.1,
                                                        first_decay_steps=10)),
    "CosineDecayRestarts_args": ("CosineDecayRestarts", dict(
        initial_learning_rate=0.1, first_decay_steps=8, t_mul=1.5, m_mul=0.8, alpha=0.05)),
}
SCHEDULE_IDS = sorted(SCHEDULES)
SCHEDULE_MISSING = {}
STEPS = [0, 1, 4, 5, 9, 10, 17, 25, 39, 40, 60]


def make_schedule(lib, sched_id):
    cls, kwargs = SCHEDULES[sched_id]
    return getattr(lib.optimizers.schedules, cls)(**kwargs)


@pytest.mark.parametrize("sched_id", cases(SCHEDULE_IDS, SCHEDULE_MISSING))
def test_schedule_values(sched_id):
    k, f = make_schedule(keras, sched_id), make_schedule(fastnn, sched_id)
    assert_close([float(f(s)) for s in STEPS], [float(k(s)) for s in STEPS])


@pytest.mark.parametrize("sched_id", cases(SCHEDULE_IDS, SCHEDULE_MISSING))
def test_schedule_config(sched_id):
    k, f = make_schedule(keras, sched_id), make_schedule(fastnn, sched_id)
    assert set(k.get_config()) <= set(f.get_config())


@pytest.mark.parametrize("sched_id", cases(["ExponentialDecay", "PolynomialDecay"],
                                           SCHEDULE_MISSING))
def test_schedule_drives_the_optimizer(sched_id):
    k = keras.optimizers.SGD(learning_rate=make_schedule(keras, sched_id))
    f = fastnn.optimizers.SGD(learning_rate=make_schedule(fastnn, sched_id))
    assert_close(float(f.learning_rate), float(k.learning_rate))
