"""Micro-benchmarks: each kernel on the "cpu" Ops against the "numpy" reference Ops.

Run: ``python -m pytest bench/test_kernels_bench.py --benchmark-only``.
Each group holds one kernel at one size on both backends. ``extra_info``
holds the GFLOP/s a GEMM implies, and for the memory-bound kernels the GB/s
implied by reading every input once and writing every output once (the
least traffic the kernel can do: compare it with the machine's bandwidth).
"""
import numpy
import pytest

from fastnn.backend import get_ops

BACKENDS = ["cpu", "numpy"]
F4 = 4  # bytes per float32

# 128 x 512: a medium-model activation (below the OpenMP threshold);
# 2048 x 2048: large enough for threads and to leave the caches.
ELEMENTWISE_SHAPES = [(128, 512), (2048, 2048)]


def _rng():
    return numpy.random.default_rng(0)


def _randn(*shape):
    return _rng().standard_normal(shape, dtype=numpy.float32)


def _id(shape):
    return "x".join(str(d) for d in shape)


# (name, m, n, k, trans_a, trans_b): the three products of a Dense layer.
GEMMS = [
    ("small_fwd", 32, 128, 64, False, False),
    ("medium_fwd", 128, 512, 784, False, False),
    ("medium_dW", 784, 512, 128, True, False),
    ("medium_dx", 128, 784, 512, False, True),
    ("large_fwd", 512, 2048, 2048, False, False),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", GEMMS, ids=[g[0] for g in GEMMS])
def test_gemm(benchmark, rate, backend, case):
    name, m, n, k, trans_a, trans_b = case
    ops = get_ops(backend)
    a = _randn(k, m) if trans_a else _randn(m, k)
    b = _randn(n, k) if trans_b else _randn(k, n)
    out = numpy.empty((m, n), numpy.float32)
    benchmark.group = f"gemm {name} {m}x{n}x{k}"
    benchmark(ops.gemm, a, b, out=out, trans_a=trans_a, trans_b=trans_b)
    rate(flops=2 * m * n * k)
    numpy.testing.assert_allclose(out, (a.T if trans_a else a) @ (b.T if trans_b else b),
                                  rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES, ids=_id)
def test_relu(benchmark, rate, backend, shape):
    ops = get_ops(backend)
    x = _randn(*shape)
    out = numpy.empty_like(x)
    benchmark.group = f"relu {_id(shape)}"
    benchmark(ops.relu, x, out=out)
    rate(bytes=2 * x.size * F4)
    assert (out >= 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES, ids=_id)
def test_backprop_relu(benchmark, rate, backend, shape):
    ops = get_ops(backend)
    x = _randn(*shape)
    y = numpy.maximum(x, 0)
    dy = _randn(*shape)
    out = numpy.empty_like(x)
    benchmark.group = f"backprop_relu {_id(shape)}"
    benchmark(ops.backprop_relu, dy, x, y, out=out)
    rate(bytes=3 * x.size * F4)  # dy and y in, dx out (x is not read)
    numpy.testing.assert_array_equal(out, dy * (y > 0))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(128, 10), (4096, 1000)], ids=_id)
def test_softmax_cross_entropy(benchmark, rate, backend, shape):
    ops = get_ops(backend)
    n, k = shape
    logits = _randn(n, k)
    labels = _rng().integers(0, k, n)
    probs = numpy.empty_like(logits)
    grad = numpy.empty_like(logits)
    benchmark.group = f"softmax_cross_entropy {_id(shape)}"
    loss = benchmark(ops.softmax_cross_entropy, logits, labels, probs, grad_out=grad,
                     grad_scale=1.0 / n)
    rate(bytes=3 * logits.size * F4 + labels.nbytes)
    assert numpy.isfinite(loss) and loss > 0
    numpy.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-4)


# Parameters of the medium (784-512-512-10) and large (784-2048-2048-10) models.
ADAM_SIZES = [669_706, 5_824_522]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", ADAM_SIZES)
def test_adam_step(benchmark, rate, backend, size):
    ops = get_ops(backend)
    param, grad = _randn(size), _randn(size) * numpy.float32(0.01)
    m, v = numpy.zeros_like(param), numpy.zeros_like(param)
    step = iter(range(1, 10**9))
    benchmark.group = f"adam_step {size}"
    benchmark(lambda: ops.adam_step(param, grad, m, v, 1e-3, 0.9, 0.999, 1e-7, next(step)))
    rate(bytes=7 * size * F4)  # param, grad, m, v in; param, m, v out
    assert numpy.isfinite(param).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES, ids=_id)
def test_dropout_mask(benchmark, rate, backend, shape):
    ops = get_ops(backend)
    out = numpy.empty(shape, numpy.float32)
    benchmark.group = f"dropout_mask {_id(shape)}"
    benchmark(ops.dropout_mask, shape, 0.5, 1234, out=out)
    rate(bytes=out.nbytes)  # write-only; a counter-based hash per entry
    assert set(numpy.unique(out)) <= {0.0, 2.0}


BATCHNORM_SHAPES = [(128, 512), (1024, 2048)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", BATCHNORM_SHAPES, ids=_id)
def test_batchnorm_forward(benchmark, rate, backend, shape):
    ops = get_ops(backend)
    x = _randn(*shape)
    gamma, beta = numpy.ones(shape[1], numpy.float32), numpy.zeros(shape[1], numpy.float32)
    out, xhat = numpy.empty_like(x), numpy.empty_like(x)
    benchmark.group = f"batchnorm_forward {_id(shape)}"
    benchmark(ops.batchnorm_forward, x, gamma, beta, 1e-3, out=out, xhat_out=xhat)
    rate(bytes=3 * x.size * F4)  # x in; y and xhat out
    numpy.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", BATCHNORM_SHAPES, ids=_id)
def test_batchnorm_backward(benchmark, rate, backend, shape):
    ops = get_ops(backend)
    x = _randn(*shape)
    gamma = numpy.ones(shape[1], numpy.float32)
    _, _, _, inv_std = get_ops("numpy").batchnorm_forward(
        x, gamma, numpy.zeros_like(gamma), 1e-3, xhat_out=(xhat := numpy.empty_like(x)))
    dy = _randn(*shape)
    dx = numpy.empty_like(x)
    dgamma, dbeta = numpy.empty_like(gamma), numpy.empty_like(gamma)
    benchmark.group = f"batchnorm_backward {_id(shape)}"
    benchmark(ops.batchnorm_backward, dy, xhat, gamma, inv_std, dx_out=dx, dgamma_out=dgamma,
              dbeta_out=dbeta)
    rate(bytes=3 * x.size * F4)  # dy and xhat in; dx out
    numpy.testing.assert_allclose(dbeta, dy.sum(axis=0), rtol=1e-3, atol=1e-2)
