"""Initializers, regularizers and constraints against Keras."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

import fastnn  # noqa: E402
from compat_marks import assert_close, cases  # noqa: E402

RNG = np.random.default_rng(6)
W = RNG.normal(size=(5, 4)).astype("float32")

# ---------------------------------------------------------------- initializers
INITIALIZERS = ["zeros", "ones", "constant", "random_normal", "random_uniform",
                "truncated_normal", "glorot_uniform", "glorot_normal", "he_normal",
                "he_uniform", "lecun_normal", "lecun_uniform", "variance_scaling",
                "orthogonal", "identity"]
INIT_MISSING = {}
SHAPE = (120, 80)


def initializer(lib, name):
    # keras.initializers.get("constant") fails in Keras 3.15 (from_config needs a value)
    return lib.initializers.Constant(0.3) if name == "constant" else lib.initializers.get(name)


@pytest.mark.parametrize("name", cases(INITIALIZERS, INIT_MISSING))
def test_initializer_statistics(name):
    want = np.asarray(initializer(keras, name)(SHAPE, dtype="float32"))
    got = np.asarray(initializer(fastnn, name)(SHAPE, dtype="float32"))
    assert got.shape == want.shape and got.dtype == want.dtype
    assert_close(got.std(), want.std(), rtol=0.08, atol=1e-6)
    assert_close(got.mean(), want.mean(), atol=0.02)
    assert_close(np.abs(got).max(), np.abs(want).max(), rtol=0.35, atol=1e-6)


@pytest.mark.parametrize("name", cases(INITIALIZERS, INIT_MISSING))
def test_initializer_config_keys(name):
    k = initializer(keras, name).get_config()
    f = initializer(fastnn, name).get_config()
    # input_axes/output_axes: fan computation over einsum axes (not needed for (in, out) kernels)
    assert set(k) - {"input_axes", "output_axes"} <= set(f)


@pytest.mark.parametrize("name", cases(INITIALIZERS, INIT_MISSING))
def test_initializer_serialized_class_name(name):
    k = keras.initializers.serialize(initializer(keras, name))
    f = fastnn.initializers.serialize(initializer(fastnn, name))
    assert f["class_name"] == k["class_name"]


def test_seeded_initializer_repeats():
    for lib in (keras, fastnn):
        a = np.asarray(lib.initializers.GlorotUniform(seed=3)((4, 3)))
        b = np.asarray(lib.initializers.GlorotUniform(seed=3)((4, 3)))
        assert np.array_equal(a, b)


# ---------------------------------------------------------------- regularizers
REGULARIZERS = {
    "l1": ("l1", dict(l1=0.01)), "l2": ("l2", dict(l2=0.02)),
    "l1_l2": ("l1_l2", dict(l1=0.01, l2=0.02)), "L1": ("L1", dict(l1=0.03)),
    "L2": ("L2", dict(l2=0.04)), "L1L2": ("L1L2", dict(l1=0.01, l2=0.01)),
    "l1_default": ("l1", {}), "l2_default": ("l2", {}),
    "OrthogonalRegularizer": ("OrthogonalRegularizer", dict(factor=0.01)),
    "OrthogonalRegularizer_columns": ("OrthogonalRegularizer", dict(factor=0.1,
                                                                    mode="columns")),
}
REG_IDS = sorted(REGULARIZERS)
REG_MISSING = {}


def regularizer(lib, reg_id):
    name, kwargs = REGULARIZERS[reg_id]
    return getattr(lib.regularizers, name)(**kwargs)


@pytest.mark.parametrize("reg_id", cases(REG_IDS, REG_MISSING))
def test_regularizer_penalty(reg_id):
    # a Keras tensor: Keras' NumPy path of OrthogonalRegularizer(mode="columns") fails
    want = float(regularizer(keras, reg_id)(keras.ops.convert_to_tensor(W)))
    assert_close(float(regularizer(fastnn, reg_id)(W)), want)


@pytest.mark.parametrize("reg_id", cases(REG_IDS, REG_MISSING))
def test_regularizer_config(reg_id):
    k, f = regularizer(keras, reg_id).get_config(), regularizer(fastnn, reg_id).get_config()
    assert set(f) == set(k)
    for key in k:
        if isinstance(k[key], str):
            assert f[key] == k[key]
        else:
            assert_close(f[key], k[key])


@pytest.mark.parametrize("name", ["l1", "l2", "L1L2"])
def test_regularizer_by_string(name):
    k, f = keras.regularizers.get(name), fastnn.regularizers.get(name)
    assert_close(float(f(W)), float(k(W)))


def test_kernel_regularizer_adds_to_the_loss():
    out = []
    x = RNG.normal(size=(6, 5)).astype("float32")
    y = RNG.normal(size=(6, 4)).astype("float32")
    for lib in (keras, fastnn):
        m = lib.Sequential([lib.Input((5,)), lib.layers.Dense(
            4, kernel_regularizer=lib.regularizers.l2(0.1),
            bias_regularizer=lib.regularizers.l1(0.05))])
        if not m.built:
            m.build((None, 5))
        m.set_weights([W, np.full(4, 0.3, "float32")])
        m.compile(optimizer="sgd", loss="mse")
        out.append(m.evaluate(x, y, verbose=0))
    assert_close(out[1], out[0], rtol=1e-5)


def test_activity_regularizer_adds_to_the_loss():
    out = []
    x = RNG.normal(size=(6, 5)).astype("float32")
    y = RNG.normal(size=(6, 4)).astype("float32")
    for lib in (keras, fastnn):
        m = lib.Sequential([lib.Input((5,)), lib.layers.Dense(
            4, activity_regularizer=lib.regularizers.l2(0.1))])
        if not m.built:
            m.build((None, 5))
        m.set_weights([W, np.zeros(4, "float32")])
        m.compile(optimizer="sgd", loss="mse")
        out.append(m.evaluate(x, y, verbose=0))
    assert_close(out[1], out[0], rtol=1e-5)



# ---------------------------------------------------------------- constraints
CONSTRAINTS = {
    "MaxNorm": dict(max_value=1.5), "MaxNorm_axis1": dict(max_value=1.0, axis=1),
    "NonNeg": {}, "UnitNorm": {}, "UnitNorm_axis1": dict(axis=1),
    "MinMaxNorm": dict(min_value=0.5, max_value=1.2, rate=0.7),
}
CON_IDS = sorted(CONSTRAINTS)
CON_MISSING = {}


def constraint(lib, con_id):
    return getattr(lib.constraints, con_id.split("_")[0])(**CONSTRAINTS[con_id])


@pytest.mark.parametrize("con_id", cases(CON_IDS, CON_MISSING))
def test_constraint_values(con_id):
    assert_close(constraint(fastnn, con_id)(W), constraint(keras, con_id)(W))


@pytest.mark.parametrize("con_id", cases(CON_IDS, CON_MISSING))
def test_constraint_config(con_id):
    assert constraint(fastnn, con_id).get_config() == constraint(keras, con_id).get_config()


@pytest.mark.parametrize("name", ["max_norm", "non_neg", "unit_norm", "min_max_norm"])
def test_constraint_by_string(name):
    assert_close(fastnn.constraints.get(name)(W), keras.constraints.get(name)(W))


@pytest.mark.parametrize("where", ["kernel_constraint", "bias_constraint"])
def test_constraint_applied_after_each_step(where):
    out = []
    x = RNG.normal(size=(6, 5)).astype("float32")
    y = 3 * RNG.normal(size=(6, 4)).astype("float32")
    for lib in (keras, fastnn):
        m = lib.Sequential([lib.Input((5,)), lib.layers.Dense(
            4, **{where: lib.constraints.MaxNorm(0.5)})])
        if not m.built:
            m.build((None, 5))
        m.set_weights([W, np.full(4, 0.3, "float32")])
        m.compile(optimizer=lib.optimizers.SGD(0.1), loss="mse")
        m.train_on_batch(x, y)
        m.train_on_batch(x, y)
        out.append(m.get_weights())
    for g, w in zip(*out):
        assert_close(g, w, rtol=1e-5)
