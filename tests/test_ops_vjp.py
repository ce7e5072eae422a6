"""Every differentiable ``fastnn.ops`` function: its recorded vector-Jacobian product
against central finite differences in float64, on hypothesis-drawn shapes (with
broadcasting for the binary ops), on the "numpy" and "cpu" backends."""
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastnn import ops
from fastnn.backend import use_backend
from fastnn.ops import Tape, Tensor

BACKENDS = ["numpy", "cpu"]
SETTINGS = settings(max_examples=12, deadline=None)


def numeric_vjp(fn, arrays, weights, eps=1e-6):
    """d sum(fn(*arrays) * weights) / d arrays, by central differences."""
    grads = []
    for k, base in enumerate(arrays):
        g = numpy.zeros_like(base)
        for i in range(base.size):
            values = []
            for shift in (eps, -eps):
                moved = [a.copy() for a in arrays]
                moved[k].reshape(-1)[i] += shift
                values.append(float(numpy.sum(numpy.asarray(fn(*moved)) * weights)))
            g.reshape(-1)[i] = (values[0] - values[1]) / (2 * eps)
        grads.append(g)
    return grads


def check_vjp(fn, *arrays, seed=0, tol=1e-6):
    arrays = [numpy.array(a, dtype="float64") for a in arrays]
    plain = numpy.asarray(fn(*arrays))
    tape = Tape()
    tensors = [tape.watch(a) for a in arrays]
    out = fn(*tensors)
    assert isinstance(out, Tensor), "a differentiable op on Tensors returns a Tensor"
    numpy.testing.assert_allclose(numpy.asarray(out.value), plain, rtol=1e-12, atol=1e-12)
    weights = numpy.random.default_rng(seed).standard_normal(plain.shape)
    analytic = tape.gradient(out, weights, tensors)
    numeric = numeric_vjp(fn, arrays, weights)
    for a, g, n in zip(arrays, analytic, numeric):
        assert g is not None
        g = numpy.asarray(g)
        assert g.shape == a.shape
        scale = max(1.0, numpy.abs(n).max(initial=0.0))
        assert numpy.abs(g - n).max(initial=0.0) <= tol * scale, (g, n)


def floats(shape, lo=-2.0, hi=2.0, away=None, unique=False):
    """Arrays in [lo, hi]; with ``away``, entries at least 0.05 away from those points;
    with ``unique``, entries on a grid of step 0.01 without repeats (no ties, where an op
    has no derivative)."""
    if unique:
        grid = st.integers(int(lo * 100), int(hi * 100)).map(lambda i: i / 100.0)
        return hnp.arrays("float64", shape, elements=grid, unique=True)
    elements = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    if away is not None:
        elements = elements.filter(lambda v: all(abs(v - p) > 0.05 for p in away))
    return hnp.arrays("float64", shape, elements=elements)


shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)
pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)

UNARY = {
    "exp": (ops.exp, {}), "expm1": (ops.expm1, {}), "log": (ops.log, {"lo": 0.2}),
    "log1p": (ops.log1p, {"lo": -0.8}), "log2": (ops.log2, {"lo": 0.2}),
    "log10": (ops.log10, {"lo": 0.2}), "sqrt": (ops.sqrt, {"lo": 0.2}),
    "square": (ops.square, {}), "abs": (ops.abs, {"away": [0]}),
    "absolute": (ops.absolute, {"away": [0]}), "negative": (ops.negative, {}),
    "reciprocal": (ops.reciprocal, {"lo": 0.3}), "sin": (ops.sin, {}), "cos": (ops.cos, {}),
    "erf": (ops.erf, {}), "tanh": (ops.tanh, {}), "sigmoid": (ops.sigmoid, {}),
    "relu": (ops.relu, {"away": [0]}), "relu6": (ops.relu6, {"lo": -7, "hi": 7,
                                                             "away": [0, 6]}),
    "softplus": (ops.softplus, {}), "silu": (ops.silu, {}), "swish": (ops.swish, {}),
    "selu": (ops.selu, {"away": [0]}), "elu": (ops.elu, {"away": [0]}),
    "leaky_relu": (ops.leaky_relu, {"away": [0]}), "gelu": (ops.gelu, {}),
    "gelu_exact": (lambda x: ops.gelu(x, approximate=False), {}),
    "softsign": (ops.softsign, {"away": [0]}),
    "hard_sigmoid": (ops.hard_sigmoid, {"lo": -4, "hi": 4, "away": [-3, 3]}),
    "hard_silu": (ops.hard_silu, {"lo": -4, "hi": 4, "away": [-3, 3]}),
    "log_sigmoid": (ops.log_sigmoid, {}),
    "softmax": (ops.softmax, {}), "softmax_axis0": (lambda x: ops.softmax(x, axis=0), {}),
    "log_softmax": (ops.log_softmax, {}),
    "log_softmax_axis0": (lambda x: ops.log_softmax(x, axis=0), {}),
    "normalize": (ops.normalize, {"away": [0]}),
    "normalize_l1": (lambda x: ops.normalize(x, order=1), {"away": [0]}),
    "sum": (ops.sum, {}), "sum_axis": (lambda x: ops.sum(x, axis=-1, keepdims=True), {}),
    "mean": (lambda x: ops.mean(x, axis=0), {}), "max": (lambda x: ops.max(x, axis=-1), {"unique": True}),
    "min": (ops.min, {"unique": True}), "prod": (lambda x: ops.prod(x, axis=0), {"lo": 0.5, "hi": 1.5}),
    "logsumexp": (lambda x: ops.logsumexp(x, axis=-1), {}),
    "logsumexp_all": (ops.logsumexp, {}),
    "std": (lambda x: ops.std(ops.concatenate([ops.ravel(x), [10.0]])),
            {"unique": True, "lo": 0, "hi": 9}),
    "std_axis": (lambda x: ops.std(ops.concatenate([x, x[..., :1] + 20.0], axis=-1),
                                   axis=-1), {}), "var": (ops.var, {}),
    "cumsum": (ops.cumsum, {}), "cumsum_axis": (lambda x: ops.cumsum(x, axis=-1), {}),
    "reshape": (lambda x: ops.reshape(x, (-1,)), {}), "ravel": (ops.ravel, {}),
    "transpose": (ops.transpose, {}),
    "expand_dims": (lambda x: ops.expand_dims(x, 1), {}),
    "squeeze": (lambda x: ops.squeeze(ops.expand_dims(x, 0)), {}),
    "broadcast_to": (lambda x: ops.broadcast_to(x, (2,) + x.shape), {}),
    "tile": (lambda x: ops.tile(x, 2), {}),
    "get_item": (lambda x: x[..., :1] * x[0], {}),
    "take": (lambda x: ops.take(x, [0, 0, -1], axis=0), {}),
    "take_flat": (lambda x: ops.take(x, [[0, -1], [0, 0]]), {}),
    "take_along_axis": (lambda x: ops.take_along_axis(
        x, numpy.zeros(x.shape[:-1] + (2,), "int64"), axis=-1), {}),
    "split": (lambda x: ops.split(x, [1], axis=-1)[0] * 2 + ops.sum(
        ops.split(x, [1], axis=-1)[1]), {}),
    "slice": (lambda x: ops.slice(x, (0,) * x.ndim, (1,) * x.ndim), {}),
    "cast": (lambda x: ops.cast(x, "float64") * 2.0, {}),
    "clip": (lambda x: ops.clip(x, -0.5, 0.5), {"away": [-0.5, 0.5]}),
    "concatenate": (lambda x: ops.concatenate([x, ops.square(x)], axis=-1), {}),
    "stack": (lambda x: ops.stack([x, ops.exp(x)], axis=-1), {}),
    "swapaxes": (lambda x: ops.swapaxes(x, 0, -1), {}),
    "moveaxis": (lambda x: ops.moveaxis(x, 0, -1), {}),
    "where": (lambda x: ops.where(x > 0, x, ops.square(x)), {"away": [0]}),
    "outer": (lambda x: ops.outer(x, ops.exp(x)), {}),
    "operators": (lambda x: (-x + 1.5) * x / 2.0 - x ** 2 + 2.0 ** x - abs(x) / (x * x + 1),
                  {"away": [0]}),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_vjp(name, backend):
    fn, domain = UNARY[name]

    @SETTINGS
    @given(st.data())
    def run(data):
        x = data.draw(shapes.flatmap(lambda s: floats(s, **domain)))
        with use_backend(backend):
            check_vjp(fn, x)
    run()


BINARY = {
    "add": (ops.add, {}), "subtract": (ops.subtract, {}), "multiply": (ops.multiply, {}),
    "divide": (ops.divide, {"b": {"lo": 0.5}}), "true_divide": (ops.true_divide,
                                                                  {"b": {"lo": 0.5}}),
    "power": (ops.power, {"a": {"lo": 0.5}}),
    "maximum": (ops.maximum, {"a": {"lo": 0.1, "hi": 1}, "b": {"lo": -1, "hi": 0}}),
    "minimum": (ops.minimum, {"a": {"lo": -1, "hi": 1}, "b": {"lo": 1.1, "hi": 2}}),
    "mod": (ops.mod, {"a": {"lo": 0.1, "hi": 0.9}, "b": {"lo": 1.5, "hi": 2.0}}),
    "where_both": (lambda a, b: ops.where(a > 0, a * b, a - b), {"a": {"away": [0]}}),
    "matmul_operator": (lambda a, b: ops.reshape(a, (-1, 1)) @ ops.reshape(b, (1, -1)), {}),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_vjp_with_broadcasting(name, backend):
    fn, domains = BINARY[name]

    @SETTINGS
    @given(st.data())
    def run(data):
        (sa, sb), _ = data.draw(pairs)
        a = data.draw(floats(sa, **domains.get("a", {})))
        b = data.draw(floats(sb, **domains.get("b", {})))
        with use_backend(backend):
            check_vjp(fn, a, b)
    run()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ndims", [(2, 2), (1, 2), (2, 1), (1, 1), (3, 2), (3, 3), (2, 3)])
def test_matmul_vjp(ndims, backend):
    @SETTINGS
    @given(st.data())
    def run(data):
        n, k, m, b = (data.draw(st.integers(1, 3)) for _ in range(4))
        shape_a = {1: (k,), 2: (n, k), 3: (b, n, k)}[ndims[0]]
        shape_b = {1: (k,), 2: (k, m), 3: (b, k, m)}[ndims[1]]
        x = data.draw(floats(shape_a))
        y = data.draw(floats(shape_b))
        with use_backend(backend):
            check_vjp(ops.matmul, x, y)
            check_vjp(ops.dot, x, y)
    run()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("axes", [2, 1, 0, ([0], [1]), ([1, 0], [0, 2]), ([2], [0])])
def test_tensordot_vjp(axes, backend):
    @SETTINGS
    @given(st.data())
    def run(data):
        d = [data.draw(st.integers(1, 3)) for _ in range(3)]
        shapes_ = {2: ((2, d[0], d[1]), (d[0], d[1], 2)), 1: ((d[0], d[1], 2), (2, d[2])),
                   0: ((d[0], 2), (d[1],))}
        if isinstance(axes, int):
            sa, sb = shapes_[axes]
        else:
            sa = (d[0], d[1], d[2])
            sb = {1: (2, d[0]), 2: (d[1], 2, d[0])}[len(axes[0]) if axes[1] != [0] else 1]
            if axes == ([2], [0]):
                sb = (d[2], 2)
            if axes == ([1, 0], [0, 2]):
                sb = (d[1], 2, d[0])
        x = data.draw(floats(sa))
        y = data.draw(floats(sb))
        with use_backend(backend):
            check_vjp(lambda a, b: ops.tensordot(a, b, axes=axes), x, y)
    run()


@pytest.mark.parametrize("backend", BACKENDS)
def test_dot_of_higher_rank_arrays(backend):
    rng = numpy.random.default_rng(1)
    with use_backend(backend):
        check_vjp(ops.dot, rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 4, 3)))
        check_vjp(ops.dot, rng.normal(size=(2, 3, 4)), rng.normal(size=(4,)))
        assert numpy.allclose(ops.dot(numpy.ones((2, 3, 4)), numpy.ones((2, 4, 3))),
                              numpy.dot(numpy.ones((2, 3, 4)), numpy.ones((2, 4, 3))))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("from_logits", [False, True])
def test_crossentropy_vjps(backend, from_logits):
    rng = numpy.random.default_rng(2)
    logits = rng.normal(size=(4, 3))
    probs = numpy.exp(logits) / numpy.exp(logits).sum(-1, keepdims=True)
    out = logits if from_logits else probs
    onehot = numpy.eye(3)[[0, 2, 1, 2]]
    ids = numpy.array([0, 2, 1, 2])
    with use_backend(backend):
        check_vjp(lambda p: ops.categorical_crossentropy(onehot, p, from_logits=from_logits),
                  out)
        check_vjp(lambda p: ops.sparse_categorical_crossentropy(ids, p,
                                                                from_logits=from_logits), out)
        bin_out = logits if from_logits else 1 / (1 + numpy.exp(-logits))
        check_vjp(lambda p: ops.binary_crossentropy(onehot, p, from_logits=from_logits),
                  bin_out)


def test_nothing_is_recorded_without_tensors():
    x = numpy.ones((2, 3))
    for fn in (ops.exp, ops.relu, ops.softmax, lambda v: ops.matmul(v, v.T), ops.sum):
        y = fn(x)
        assert not isinstance(y, Tensor)
    tape = Tape()
    assert tape.gradient(ops.exp(x), numpy.ones((2, 3)), [tape.watch(x)]) == [None]


def test_non_differentiable_ops_return_plain_arrays_on_a_tape():
    tape = Tape()
    t = tape.watch(numpy.array([[1.0, -2.0], [3.0, 0.5]]))
    for y in (ops.argmax(t, axis=1), ops.greater(t, 0), ops.sign(t), ops.floor(t),
              t > 0, ops.isfinite(t), ops.round(t), ops.stop_gradient(t)):
        assert not isinstance(y, Tensor)
    numpy.testing.assert_array_equal(ops.argmax(t, axis=1), [0, 0])


def test_gradient_accumulates_over_repeated_uses():
    tape = Tape()
    x = numpy.array([1.0, 2.0, 3.0])
    t = tape.watch(x)
    y = ops.sum(t * t) + ops.sum(t) * 3.0
    (g,) = tape.gradient(y, 1.0, [t])
    numpy.testing.assert_allclose(g, 2 * x + 3)


def test_cast_to_float32_passes_the_gradient_back_in_the_input_dtype():
    tape = Tape()
    t = tape.watch(numpy.array([1.0, 2.0]))
    y = ops.cast(t, "float32")
    assert y.dtype == numpy.float32
    (g,) = tape.gradient(y, numpy.ones(2, "float32"), [t])
    assert g.dtype == numpy.float64
    numpy.testing.assert_array_equal(g, [1.0, 1.0])
