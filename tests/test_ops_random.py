"""``fastnn.random``: Keras' signatures and seed semantics (an int repeats, a
SeedGenerator advances, None follows fastnn's seeded stream)."""
import inspect
import os

import numpy as np
import pytest

import fastnn
from fastnn import ops, random
from fastnn.ops import Tape

DRAWS = {
    "normal": lambda seed: random.normal((3, 4), seed=seed),
    "uniform": lambda seed: random.uniform((3, 4), minval=-1, maxval=2, seed=seed),
    "truncated_normal": lambda seed: random.truncated_normal((50,), stddev=2.0, seed=seed),
    "randint": lambda seed: random.randint((10,), 0, 5, seed=seed),
    "dropout": lambda seed: random.dropout(np.ones((4, 5), "float32"), 0.5, seed=seed),
    "shuffle": lambda seed: random.shuffle(np.arange(10.0), seed=seed),
    "categorical": lambda seed: random.categorical(np.zeros((2, 4)), 6, seed=seed),
}


@pytest.mark.parametrize("name", sorted(DRAWS))
def test_seed_semantics(name):
    draw = DRAWS[name]
    np.testing.assert_array_equal(draw(3), draw(3))
    gen = random.SeedGenerator(5)
    first, second = draw(gen), draw(gen)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, draw(random.SeedGenerator(5)))
    fastnn.utils.set_random_seed(11)
    a = draw(None)
    fastnn.utils.set_random_seed(11)
    np.testing.assert_array_equal(a, draw(None))


def test_distributions_and_dtypes():
    x = random.normal((20000,), mean=1.0, stddev=2.0, seed=0)
    assert x.dtype == np.float32 and abs(x.mean() - 1) < 0.05 and abs(x.std() - 2) < 0.05
    u = random.uniform((1000,), minval=-1, maxval=2, dtype="float64", seed=0)
    assert u.dtype == np.float64 and u.min() >= -1 and u.max() < 2
    t = random.truncated_normal((1000,), stddev=2.0, seed=0)
    assert np.abs(t).max() <= 4.0
    assert random.randint((100,), 2, 5, seed=0).dtype == np.int32
    d = random.dropout(np.ones((1000,), "float32"), 0.25, seed=0)
    np.testing.assert_allclose(np.unique(d), [0.0, 1 / 0.75], rtol=1e-6)
    assert d.dtype == np.float32
    assert sorted(random.shuffle(np.arange(6.0), seed=1)) == list(range(6))
    with pytest.raises(ValueError, match="seed"):
        random.normal((2,), seed="x")


def test_dropout_and_shuffle_are_differentiable():
    tape = Tape()
    t = tape.watch(np.arange(1.0, 7.0))
    y = ops.sum(random.dropout(t, 0.5, seed=2) * 3.0) + ops.sum(random.shuffle(t, seed=1))
    (g,) = tape.gradient(y, 1.0, [t])
    kept = random.dropout(np.ones(6), 0.5, seed=2) > 0
    np.testing.assert_allclose(g, np.where(kept, 6.0, 0.0) + 1.0)


def test_signatures_match_keras():
    os.environ["KERAS_BACKEND"] = "jax"
    keras = pytest.importorskip("keras")
    for name in ("normal", "uniform", "truncated_normal", "randint", "dropout", "shuffle",
                 "categorical"):
        assert inspect.signature(getattr(random, name)) == \
            inspect.signature(getattr(keras.random, name)), name
