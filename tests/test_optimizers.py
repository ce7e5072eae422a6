"""Optimizer trajectories against the update rules in their docstrings.

Each test runs 25 steps of a fastnn optimizer on a small quadratic problem
(g = A p - b, so every gradient depends on the trajectory so far) and the
same 25 steps of an independent float64 NumPy transcription of the Keras 3
rule, and compares the parameters after every step.
"""
import math

import numpy
import pytest

import fastnn
from fastnn import optimizers
from fastnn.backend import use_backend
from fastnn.optimizers import schedules

STEPS = 25
SIZE = 7
WEIGHTS = [(0, 3), (3, SIZE)]  # two "weights" for per-weight clipnorm


class FakeStore:
    """The part of ParameterStore an optimizer uses: flat params/grads and ranges."""

    def __init__(self, params, ranges=None):
        self.params = params
        self.grads = numpy.zeros_like(params)
        self.size = params.size
        self._ranges = ranges or [(0, self.size)]

    def trainable_ranges(self):
        return self._ranges

    def trainable_weight_ranges(self):
        return [(a, b) for a, b in WEIGHTS if any(a >= s and b <= e for s, e in self._ranges)]


def _problem(scale=1.0):
    rng = numpy.random.default_rng(0)
    q = rng.normal(size=(SIZE, SIZE))
    a = q @ q.T / SIZE + numpy.eye(SIZE)
    b = rng.normal(size=SIZE) * scale
    p0 = rng.normal(size=SIZE)
    return a, b, p0


def _grad(a, b, p):
    return a @ p - b


def _clip(g, clipnorm=None, clipvalue=None, global_clipnorm=None):
    g = g.copy()
    if clipvalue is not None:
        g = numpy.clip(g, -clipvalue, clipvalue)
    if clipnorm is not None:
        for s, e in WEIGHTS:
            n = numpy.linalg.norm(g[s:e])
            g[s:e] *= clipnorm / max(n, clipnorm)
    if global_clipnorm is not None:
        n = numpy.linalg.norm(g)
        g *= global_clipnorm / max(n, global_clipnorm)
    return g


# ----------------------------------------------------------------------------- references
def ref_sgd(lr, momentum=0.0, nesterov=False):
    v = None

    def step(p, g, t):
        nonlocal v
        if momentum == 0:
            return p - lr(t) * g
        v = numpy.zeros_like(p) if v is None else v
        v = momentum * v - lr(t) * g
        return p + (momentum * v - lr(t) * g if nesterov else v)
    return step


def ref_adam(lr, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False):
    m = v = vhat = 0.0

    def step(p, g, t):
        nonlocal m, v, vhat
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vhat = numpy.maximum(vhat, v)
        denom = vhat if amsgrad else v
        return p - lr(t) * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (numpy.sqrt(denom) + eps)
    return step


def ref_nadam(lr, b1=0.9, b2=0.999, eps=1e-7):
    m = v = 0.0
    prod = 1.0

    def step(p, g, t):
        nonlocal m, v, prod
        u_t = b1 * (1 - 0.5 * 0.96 ** t)
        u_next = b1 * (1 - 0.5 * 0.96 ** (t + 1))
        prod = prod * u_t
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = u_next * m / (1 - prod * u_next) + (1 - u_t) * g / (1 - prod)
        v_hat = v / (1 - b2 ** t)
        return p - lr(t) * m_hat / (numpy.sqrt(v_hat) + eps)
    return step


def ref_adagrad(lr, init=0.1, eps=1e-7):
    acc = init

    def step(p, g, t):
        nonlocal acc
        acc = acc + g * g
        return p - lr(t) * g / numpy.sqrt(acc + eps)
    return step


def ref_adadelta(lr, rho=0.95, eps=1e-7):
    eg = ed = 0.0

    def step(p, g, t):
        nonlocal eg, ed
        eg = rho * eg + (1 - rho) * g * g
        d = numpy.sqrt(ed + eps) / numpy.sqrt(eg + eps) * g
        ed = rho * ed + (1 - rho) * d * d
        return p - lr(t) * d
    return step


def ref_rmsprop(lr, rho=0.9, momentum=0.0, eps=1e-7, centered=False):
    ms = mg = mom = 0.0

    def step(p, g, t):
        nonlocal ms, mg, mom
        ms = rho * ms + (1 - rho) * g * g
        denom = ms + eps
        if centered:
            mg = rho * mg + (1 - rho) * g
            denom = ms - mg * mg + eps
        inc = lr(t) * g / numpy.sqrt(denom)
        if momentum > 0:
            mom = momentum * mom + inc
            return p - mom
        return p - inc
    return step


def ref_adamax(lr, b1=0.9, b2=0.999, eps=1e-7):
    m = u = 0.0

    def step(p, g, t):
        nonlocal m, u
        m = b1 * m + (1 - b1) * g
        u = numpy.maximum(b2 * u, numpy.abs(g))
        return p - lr(t) / (1 - b1 ** t) * m / (u + eps)
    return step


def ref_lion(lr, b1=0.9, b2=0.99):
    m = 0.0

    def step(p, g, t):
        nonlocal m
        p = p - lr(t) * numpy.sign(b1 * m + (1 - b1) * g)
        m = b2 * m + (1 - b2) * g
        return p
    return step


def ref_ftrl(lr, power=-0.5, init=0.1, l1=0.0, l2=0.0, l2s=0.0, beta=0.0):
    n, z = init, 0.0

    def step(p, g, t):
        nonlocal n, z
        eta = lr(t)
        new_n = n + g * g
        z = z + g + 2 * l2s * p - (new_n ** -power - n ** -power) / eta * p
        quadratic = new_n ** -power / eta + 2 * (l2 + beta / (2 * eta))
        n = new_n
        return (numpy.clip(z, -l1, l1) - z) / quadratic
    return step


def _constant(value):
    return lambda t: value


CASES = {
    "sgd": (lambda: optimizers.SGD(0.05), lambda: ref_sgd(_constant(0.05))),
    "sgd_momentum": (lambda: optimizers.SGD(0.05, momentum=0.9),
                     lambda: ref_sgd(_constant(0.05), 0.9)),
    "sgd_nesterov": (lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                     lambda: ref_sgd(_constant(0.05), 0.9, True)),
    "adam": (lambda: optimizers.Adam(0.05), lambda: ref_adam(_constant(0.05))),
    "adam_betas": (lambda: optimizers.Adam(0.05, beta_1=0.5, beta_2=0.9, epsilon=1e-3),
                   lambda: ref_adam(_constant(0.05), 0.5, 0.9, 1e-3)),
    "amsgrad": (lambda: optimizers.Adam(0.05, amsgrad=True),
                lambda: ref_adam(_constant(0.05), amsgrad=True)),
    "nadam": (lambda: optimizers.Nadam(0.05), lambda: ref_nadam(_constant(0.05))),
    "adagrad": (lambda: optimizers.Adagrad(0.1), lambda: ref_adagrad(_constant(0.1))),
    "adagrad_init": (lambda: optimizers.Adagrad(0.1, initial_accumulator_value=0.0),
                     lambda: ref_adagrad(_constant(0.1), 0.0)),
    "adadelta": (lambda: optimizers.Adadelta(1.0), lambda: ref_adadelta(_constant(1.0))),
    "rmsprop": (lambda: optimizers.RMSprop(0.01), lambda: ref_rmsprop(_constant(0.01))),
    "rmsprop_momentum": (lambda: optimizers.RMSprop(0.01, momentum=0.8),
                         lambda: ref_rmsprop(_constant(0.01), momentum=0.8)),
    "rmsprop_centered": (lambda: optimizers.RMSprop(0.01, centered=True),
                         lambda: ref_rmsprop(_constant(0.01), centered=True)),
    "rmsprop_centered_momentum": (
        lambda: optimizers.RMSprop(0.01, rho=0.8, momentum=0.5, centered=True),
        lambda: ref_rmsprop(_constant(0.01), rho=0.8, momentum=0.5, centered=True)),
    "adamax": (lambda: optimizers.Adamax(0.05), lambda: ref_adamax(_constant(0.05))),
    "adamax_betas": (lambda: optimizers.Adamax(0.05, beta_1=0.5, beta_2=0.9),
                     lambda: ref_adamax(_constant(0.05), 0.5, 0.9)),
    "lion": (lambda: optimizers.Lion(0.01), lambda: ref_lion(_constant(0.01))),
    "lion_betas": (lambda: optimizers.Lion(0.01, beta_1=0.5, beta_2=0.9),
                   lambda: ref_lion(_constant(0.01), 0.5, 0.9)),
    "ftrl": (lambda: optimizers.Ftrl(0.1), lambda: ref_ftrl(_constant(0.1))),
    "ftrl_regularized": (
        lambda: optimizers.Ftrl(0.1, learning_rate_power=-0.7, l1_regularization_strength=0.01,
                                l2_regularization_strength=0.02,
                                l2_shrinkage_regularization_strength=0.01, beta=0.1),
        lambda: ref_ftrl(_constant(0.1), -0.7, 0.1, 0.01, 0.02, 0.01, 0.1)),
}

BACKENDS = ["numpy", "cpu"]
TOLERANCE = {"float64": 1e-10, "float32": 2e-4}


def _run(make_opt, make_ref, backend, dtype, weight_decay=None, clip=None, scale=1.0,
         lr_of_step=None):
    """Run both for STEPS steps; return (fastnn trajectory, reference trajectory)."""
    a, b, p0 = _problem(scale)
    ref = make_ref()
    p_ref = p0.copy()
    ref_traj = []
    with use_backend(backend) as ops:
        opt = make_opt()
        store = FakeStore(ops.asarray(p0, dtype=dtype))
        got = []
        for t in range(1, STEPS + 1):
            store.grads[...] = _grad(a, b, store.params.astype("float64"))
            opt.apply(store)
            got.append(ops.to_numpy(store.params).astype("float64").copy())
            g = _clip(_grad(a, b, p_ref), **(clip or {}))
            if weight_decay:
                p_ref = p_ref - lr_of_step(t) * weight_decay * p_ref
            p_ref = ref(p_ref, g, t)
            ref_traj.append(p_ref.copy())
    return numpy.array(got), numpy.array(ref_traj)


def _assert_close(got, want, dtype):
    tol = TOLERANCE[dtype]
    numpy.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    assert not numpy.allclose(want[0], want[-1]), "the problem should move the parameters"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_trajectory_matches_docstring_rule(case, dtype, backend):
    make_opt, make_ref = CASES[case]
    got, want = _run(make_opt, make_ref, backend, dtype)
    _assert_close(got, want, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, make_opt, make_ref", [
    ("sgd", lambda: optimizers.SGD(0.05, momentum=0.9, weight_decay=0.1),
     lambda: ref_sgd(_constant(0.05), 0.9)),
    ("adam", lambda: optimizers.Adam(0.05, weight_decay=0.1), lambda: ref_adam(_constant(0.05))),
    ("adamw", lambda: optimizers.AdamW(0.05), lambda: ref_adam(_constant(0.05))),
    ("nadam", lambda: optimizers.Nadam(0.05, weight_decay=0.1),
     lambda: ref_nadam(_constant(0.05))),
    ("adagrad", lambda: optimizers.Adagrad(0.1, weight_decay=0.1),
     lambda: ref_adagrad(_constant(0.1))),
    ("adadelta", lambda: optimizers.Adadelta(1.0, weight_decay=0.1),
     lambda: ref_adadelta(_constant(1.0))),
    ("rmsprop", lambda: optimizers.RMSprop(0.01, weight_decay=0.1),
     lambda: ref_rmsprop(_constant(0.01))),
])
def test_decoupled_weight_decay(name, make_opt, make_ref, backend):
    wd = make_opt().weight_decay
    assert wd in (0.1, 0.004)
    lr = make_opt().learning_rate
    got, want = _run(make_opt, make_ref, backend, "float64", weight_decay=wd,
                     lr_of_step=_constant(lr))
    _assert_close(got, want, "float64")
    plain, _ = _run(lambda: type(make_opt()).from_config(
        {**make_opt().get_config(), "weight_decay": 0.0}), make_ref, backend, "float64")
    assert not numpy.allclose(plain, got), "weight decay should change the trajectory"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("clip", [{"clipnorm": 0.5}, {"clipvalue": 0.2},
                                  {"global_clipnorm": 0.5}])
@pytest.mark.parametrize("case", ["sgd_momentum", "adam", "rmsprop"])
def test_gradient_clipping(case, clip, backend):
    make_opt, make_ref = CASES[case]

    def clipped():
        return type(make_opt()).from_config({**make_opt().get_config(), **clip})
    got, want = _run(clipped, make_ref, backend, "float64", clip=clip, scale=20.0)
    _assert_close(got, want, "float64")
    unclipped, _ = _run(make_opt, make_ref, backend, "float64", scale=20.0)
    assert not numpy.allclose(unclipped, got), "these gradients are large enough to clip"


@pytest.mark.parametrize("backend", BACKENDS)
def test_learning_rate_schedule_is_followed_step_by_step(backend):
    schedule = schedules.ExponentialDecay(0.1, decay_steps=5, decay_rate=0.5)
    lr = lambda t: 0.1 * 0.5 ** ((t - 1) / 5)  # step t uses the schedule at t - 1 steps taken
    got, want = _run(lambda: optimizers.SGD(schedule, momentum=0.5, weight_decay=0.01),
                     lambda: ref_sgd(lr, 0.5), backend, "float64", weight_decay=0.01,
                     lr_of_step=lr)
    _assert_close(got, want, "float64")


def test_frozen_ranges_are_left_alone():
    a, b, p0 = _problem()
    opt = optimizers.Adam(0.1)
    store = FakeStore(p0.copy(), ranges=[(3, SIZE)])
    for _ in range(5):
        store.grads[...] = _grad(a, b, store.params)
        opt.apply(store)
    numpy.testing.assert_array_equal(store.params[:3], p0[:3])
    assert not numpy.allclose(store.params[3:], p0[3:])


# ----------------------------------------------------------------------------- EMA
def test_ema_follows_keras_rule():
    a, b, p0 = _problem()
    opt = optimizers.SGD(0.05, use_ema=True, ema_momentum=0.9)
    store = FakeStore(p0.copy())
    ema = None
    for t in range(1, 6):
        store.grads[...] = _grad(a, b, store.params)
        opt.apply(store)
        # Keras 3: the first step copies the weights, later ones average.
        ema = store.params.copy() if ema is None else 0.9 * ema + 0.1 * store.params
        numpy.testing.assert_allclose(opt.state["ema"], ema, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_ends_with_ema_weights(backend):
    with use_backend(backend):
        _check_fit_ends_with_ema_weights()


def _check_fit_ends_with_ema_weights():
    fastnn.utils.set_random_seed(0)
    rng = numpy.random.default_rng(1)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = x @ numpy.array([[1.0], [-2.0], [0.5]], dtype="float32")
    model = fastnn.Sequential([fastnn.layers.Dense(1, input_shape=(3,))])
    model.compile(optimizer=optimizers.SGD(0.05, use_ema=True, ema_momentum=0.99), loss="mse")
    seen = []
    record = fastnn.callbacks.Callback()
    record.on_train_batch_end = lambda batch, logs=None: seen.append(
        numpy.concatenate([w.ravel() for w in model.get_weights()]))
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[record])
    ema = seen[0]
    for params in seen[1:]:
        ema = 0.99 * ema + 0.01 * params
    final = numpy.concatenate([w.ravel() for w in model.get_weights()])
    numpy.testing.assert_allclose(final, ema, rtol=1e-5, atol=1e-6)
    assert not numpy.allclose(final, seen[-1], atol=1e-4), "EMA differs from the last weights"


# ----------------------------------------------------------------------------- config and validation
ALL = [optimizers.SGD(0.02, momentum=0.5, nesterov=True, clipnorm=1.0),
       optimizers.Adam(0.003, beta_1=0.8, amsgrad=True, global_clipnorm=2.0),
       optimizers.AdamW(weight_decay=0.01, use_ema=True, ema_momentum=0.9),
       optimizers.Nadam(0.002, epsilon=1e-5, clipvalue=0.3),
       optimizers.Adagrad(0.05, initial_accumulator_value=0.2),
       optimizers.Adadelta(0.5, rho=0.9),
       optimizers.RMSprop(0.002, rho=0.8, momentum=0.3, centered=True, weight_decay=0.001),
       optimizers.Adamax(0.002, beta_2=0.99, clipnorm=1.0),
       optimizers.Lion(0.0003, beta_1=0.95, weight_decay=0.01),
       optimizers.Ftrl(0.05, l1_regularization_strength=0.001, beta=0.5),
       optimizers.SGD(schedules.CosineDecay(0.1, 100, alpha=0.1, warmup_target=0.2,
                                            warmup_steps=10))]


@pytest.mark.parametrize("opt", ALL, ids=lambda o: type(o).__name__)
def test_config_round_trip(opt):
    import json
    config = json.loads(json.dumps(optimizers.serialize(opt)))  # plain data only
    again = optimizers.get(config)
    assert type(again) is type(opt)
    assert again.get_config() == opt.get_config()
    for step in (0, 5, 50):
        opt.iterations = again.iterations = step
        assert again.learning_rate == opt.learning_rate


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "nadam", "adagrad", "adadelta",
                                  "rmsprop", "Adam", "RMSprop"])
def test_string_names(name):
    assert type(optimizers.get(name)).__name__.lower() == name.lower()


def test_keras_defaults():
    assert optimizers.SGD().learning_rate == 0.01
    adam = optimizers.Adam()
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (0.001, 0.9, 0.999,
                                                                            1e-7)
    assert optimizers.AdamW().weight_decay == 0.004
    rms = optimizers.RMSprop()
    assert (rms.learning_rate, rms.rho, rms.momentum, rms.centered) == (0.001, 0.9, 0.0, False)
    assert optimizers.Adagrad().initial_accumulator_value == 0.1
    assert optimizers.Adadelta().rho == 0.95


@pytest.mark.parametrize("make", [
    lambda: optimizers.SGD(-0.1),
    lambda: optimizers.SGD(float("nan")),
    lambda: optimizers.SGD("fast"),
    lambda: optimizers.SGD(momentum=1.5),
    lambda: optimizers.SGD(momentum=-0.1),
    lambda: optimizers.Adam(beta_1=1.0),
    lambda: optimizers.Adam(beta_2=-0.5),
    lambda: optimizers.Adam(epsilon=0),
    lambda: optimizers.Nadam(epsilon=-1e-7),
    lambda: optimizers.RMSprop(rho=2.0),
    lambda: optimizers.Adadelta(rho=1.0),
    lambda: optimizers.Adagrad(initial_accumulator_value=-1),
    lambda: optimizers.Adam(weight_decay=-0.1),
    lambda: optimizers.Adam(clipnorm=0),
    lambda: optimizers.Adam(clipvalue=-1),
    lambda: optimizers.Adam(global_clipnorm=float("inf")),
    lambda: optimizers.Adam(clipnorm=1.0, clipvalue=1.0),
    lambda: optimizers.Adam(use_ema=True, ema_momentum=1.5),
])
def test_bad_hyperparameters_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="adam"):
        optimizers.get("adamm")


def test_learning_rate_can_be_set_but_not_over_a_schedule():
    opt = optimizers.SGD(0.1)
    opt.learning_rate = 0.01
    assert opt.learning_rate == 0.01
    with pytest.raises(ValueError):
        opt.learning_rate = -1.0
    scheduled = optimizers.SGD(schedules.ExponentialDecay(0.1, 10, 0.5))
    with pytest.raises(TypeError, match="LearningRateSchedule"):
        scheduled.learning_rate = 0.01
