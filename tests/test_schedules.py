"""Learning-rate schedules against Keras 3's formulas, written out independently."""
import json
import math

import numpy
import pytest

from fastnn import optimizers
from fastnn.optimizers import schedules

STEPS = range(0, 60)


def keras_exponential(step, lr0, decay_steps, rate, staircase):
    p = step / decay_steps
    return lr0 * rate ** (math.floor(p) if staircase else p)


def keras_inverse_time(step, lr0, decay_steps, rate, staircase):
    p = step / decay_steps
    return lr0 / (1 + rate * (math.floor(p) if staircase else p))


def keras_piecewise(step, boundaries, values):
    for b, v in zip(boundaries, values):
        if step <= b:
            return v
    return values[-1]


def keras_cosine(step, lr0, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
    def decay(s, peak):
        fraction = s / decay_steps
        return peak * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * fraction)) + alpha)
    if warmup_target is None:
        return decay(min(step, decay_steps), lr0)
    s = min(step, decay_steps + warmup_steps)
    if s < warmup_steps:
        return (warmup_target - lr0) * s / warmup_steps + lr0
    return decay(s - warmup_steps, warmup_target)


CASES = [
    (schedules.ExponentialDecay(0.1, 10, 0.5),
     lambda s: keras_exponential(s, 0.1, 10, 0.5, False)),
    (schedules.ExponentialDecay(0.1, 7, 0.9, staircase=True),
     lambda s: keras_exponential(s, 0.1, 7, 0.9, True)),
    (schedules.InverseTimeDecay(0.2, 5, 0.5), lambda s: keras_inverse_time(s, 0.2, 5, 0.5, False)),
    (schedules.InverseTimeDecay(0.2, 5, 0.5, staircase=True),
     lambda s: keras_inverse_time(s, 0.2, 5, 0.5, True)),
    (schedules.PiecewiseConstantDecay([10, 30], [0.1, 0.01, 0.001]),
     lambda s: keras_piecewise(s, [10, 30], [0.1, 0.01, 0.001])),
    (schedules.CosineDecay(0.1, 40), lambda s: keras_cosine(s, 0.1, 40)),
    (schedules.CosineDecay(0.1, 40, alpha=0.2), lambda s: keras_cosine(s, 0.1, 40, 0.2)),
    (schedules.CosineDecay(0.0, 30, alpha=0.1, warmup_target=0.5, warmup_steps=10),
     lambda s: keras_cosine(s, 0.0, 30, 0.1, 0.5, 10)),
]
IDS = ["exp", "exp_staircase", "inverse", "inverse_staircase", "piecewise", "cosine",
       "cosine_alpha", "cosine_warmup"]


@pytest.mark.parametrize("schedule, formula", CASES, ids=IDS)
def test_values_match_keras_formula(schedule, formula):
    got = [schedule(s) for s in STEPS]
    want = [formula(s) for s in STEPS]
    numpy.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert len(set(numpy.round(got, 12))) > 1, "the schedule should change over 60 steps"


@pytest.mark.parametrize("schedule, formula", CASES, ids=IDS)
def test_config_round_trip(schedule, formula):
    again = schedules.get(json.loads(json.dumps(schedules.serialize(schedule))))
    assert type(again) is type(schedule) and again.get_config() == schedule.get_config()
    assert [again(s) for s in STEPS] == [schedule(s) for s in STEPS]


@pytest.mark.parametrize("schedule, formula", CASES, ids=IDS)
def test_optimizer_follows_schedule_step_by_step(schedule, formula):
    """Plain SGD on a constant gradient of 1 moves p by exactly -lr each step."""
    class Store:
        size = 1
        params = numpy.zeros(1)
        grads = numpy.ones(1)

        def trainable_ranges(self):
            return [(0, 1)]

        trainable_weight_ranges = trainable_ranges

    store = Store()
    opt = optimizers.SGD(learning_rate=schedule)
    for step in STEPS:
        assert opt.learning_rate == pytest.approx(formula(step), rel=1e-12, abs=1e-15)
        before = store.params[0]
        opt.apply(store)
        assert before - store.params[0] == pytest.approx(formula(step), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("make", [
    lambda: schedules.ExponentialDecay(0.1, 0, 0.5),
    lambda: schedules.ExponentialDecay(0.1, "ten", 0.5),
    lambda: schedules.InverseTimeDecay(float("nan"), 10, 0.5),
    lambda: schedules.PiecewiseConstantDecay([10, 5], [0.1, 0.2, 0.3]),
    lambda: schedules.PiecewiseConstantDecay([10], [0.1]),
    lambda: schedules.CosineDecay(0.1, -5),
    lambda: schedules.CosineDecay(0.1, 10, warmup_target=0.2, warmup_steps=-1),
    lambda: schedules.get("cosine")])
def test_bad_arguments_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_polynomial_decay_formula_and_cycle():
    s = schedules.PolynomialDecay(0.1, 10, end_learning_rate=0.01, power=2.0)
    for step in (0, 3, 10, 25):
        p = min(step, 10) / 10
        assert s(step) == pytest.approx((0.1 - 0.01) * (1 - p) ** 2 + 0.01)
    cyc = schedules.PolynomialDecay(0.1, 10, cycle=True)
    assert cyc(15) == pytest.approx((0.1 - 1e-4) * (1 - 15 / 20) + 1e-4)


def test_cosine_decay_restarts_restarts():
    s = schedules.CosineDecayRestarts(1.0, 10, t_mul=1.0, m_mul=0.5)
    assert s(0) == pytest.approx(1.0) and s(5) == pytest.approx(0.5)
    assert s(10) == pytest.approx(0.5)  # the second period starts at half the peak
    longer = schedules.CosineDecayRestarts(1.0, 10, t_mul=2.0)
    assert longer(10) == pytest.approx(1.0) and longer(20) == pytest.approx(0.5)


@pytest.mark.parametrize("make", [lambda: schedules.PolynomialDecay(0.1, 10, power=3.0),
                                  lambda: schedules.CosineDecayRestarts(0.1, 5, alpha=0.1)])
def test_new_schedules_round_trip(make):
    s = make()
    again = schedules.get(schedules.serialize(s))
    assert [again(i) for i in range(30)] == [s(i) for i in range(30)]


def test_cosine_decay_restarts_rejects_a_zero_period():
    with pytest.raises(ValueError, match="first_decay_steps"):
        schedules.CosineDecayRestarts(0.1, 0)
