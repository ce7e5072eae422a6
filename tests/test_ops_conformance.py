"""Every backend against the reference ``Ops``: one suite, parametrized over backends.

Each ``check_*`` runs one Ops method (or a forward/backward pair) on random
data of a given shape and dtype on the backend under test and on the
reference, and compares results, in-place ``out=`` use and returned objects.
``test_fixed`` runs every check on shapes that matter (1 element, odd sizes,
> 2^17 elements so the OpenMP path runs, rank 3); ``test_random`` lets
hypothesis pick checks, shapes and seeds.
"""
import math

import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastnn.backend import available_backends, get_num_threads, get_ops, set_num_threads
from fastnn.backend.ops import Ops

REF = Ops()
BACKENDS = ["cpu", "cupy"]
DTYPES = [numpy.float32, numpy.float64]
LARGE = (520, 257)  # 133,640 elements: above the threshold set below, so kernels use threads
FIXED_SHAPES = [(1, 1), (1, 10), (3, 7), (2, 3, 5), LARGE]


@pytest.fixture(autouse=True)
def threaded_path_for_large(monkeypatch):
    """Lower the cpu kernels' threading thresholds so LARGE runs their OpenMP path."""
    from fastnn.backend import cpu_ops
    monkeypatch.setattr(cpu_ops, "LIGHT_MIN_SIZE", 1 << 17)
    monkeypatch.setattr(cpu_ops, "HEAVY_MIN_SIZE", 1 << 17)


@pytest.fixture(params=BACKENDS)
def ops(request):
    if request.param not in available_backends():
        pytest.skip(f"backend {request.param!r} is not available on this machine")
    return get_ops(request.param)


# ---------------------------------------------------------------- helpers
def dev(ops, a):
    """``a`` on the backend: NumPy arrays pass unchanged (non-contiguous views included)."""
    if a is None or ops.xp is numpy:
        return a
    return ops.asarray(a)


def host(ops, a):
    return None if a is None else ops.to_numpy(a)


def assert_close(got, want, dtype):
    """Relative 1e-5 (float32) or 1e-10 (float64), with an absolute floor at that fraction
    of the largest magnitude so values near zero are judged on the array's scale."""
    got = numpy.asarray(got)
    want = numpy.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    rtol = 1e-5 if dtype == numpy.float32 else 1e-10
    scale = float(numpy.max(numpy.abs(want))) if want.size else 0.0
    numpy.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(1.0, scale))


def as2d(shape):
    return (int(numpy.prod(shape[:-1])), shape[-1]) if len(shape) != 2 else shape


def randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def probs(rng, shape, dtype):
    """Rows of positive values summing to about one (away from the clip bounds)."""
    p = rng.uniform(0.05, 1.0, size=shape)
    return (p / p.sum(axis=-1, keepdims=True)).astype(dtype)


# ---------------------------------------------------------------- activations
ACTIVATIONS = {
    "linear": {}, "step": {}, "relu": {}, "leaky_relu": {"alpha": 0.3}, "elu": {"alpha": 0.7},
    "selu": {}, "sigmoid": {}, "tanh": {}, "softplus": {}, "gelu": {}, "silu": {},
    "softmax": {}, "relu6": {}, "softsign": {}, "hard_sigmoid": {}, "hard_silu": {},
    "exponential": {}, "mish": {}, "log_softmax": {}, "gelu_tanh": {},
}


def check_activation(name):
    kwargs = ACTIVATIONS[name]

    def check(ops, dtype, shape, rng):
        x = randn(rng, shape, dtype) * 3
        dy = randn(rng, shape, dtype)
        want = getattr(REF, name)(x.copy(), **kwargs)
        assert want.dtype == dtype
        assert_close(host(ops, getattr(ops, name)(dev(ops, x), **kwargs)), want, dtype)
        out = dev(ops, numpy.full(shape, numpy.nan, dtype))
        assert getattr(ops, name)(dev(ops, x), out=out, **kwargs) is out
        assert_close(host(ops, out), want, dtype)
        inplace = dev(ops, x.copy())
        assert getattr(ops, name)(inplace, out=inplace, **kwargs) is inplace
        assert_close(host(ops, inplace), want, dtype)

        back = getattr(REF, "backprop_" + name)(dy, x, want, **kwargs)
        got = getattr(ops, "backprop_" + name)(dev(ops, dy), dev(ops, x), dev(ops, want), **kwargs)
        assert_close(host(ops, got), back, dtype)
        inplace = dev(ops, dy.copy())
        got = getattr(ops, "backprop_" + name)(inplace, dev(ops, x), dev(ops, want), out=inplace,
                                               **kwargs)
        assert got is inplace
        assert_close(host(ops, inplace), back, dtype)
    return check


def check_noncontiguous_activations(ops, dtype, shape, rng):
    """Strided views are handled (the kernels decline them and the reference runs)."""
    x = randn(rng, (shape[0], 2 * shape[-1]), dtype)[:, ::2]
    for name, kwargs in ACTIVATIONS.items():
        y = getattr(REF, name)(x, **kwargs)
        assert_close(host(ops, getattr(ops, name)(dev(ops, x), **kwargs)), y, dtype)
        got = getattr(ops, "backprop_" + name)(dev(ops, x), dev(ops, x), dev(ops, y), **kwargs)
        assert_close(host(ops, got), getattr(REF, "backprop_" + name)(x, x, y, **kwargs), dtype)


# ---------------------------------------------------------------- small array methods
def check_multiply(ops, dtype, shape, rng):
    a, b = randn(rng, shape, dtype), randn(rng, shape, dtype)
    assert_close(host(ops, ops.multiply(dev(ops, a), dev(ops, b))), a * b, dtype)
    out = dev(ops, a.copy())
    assert ops.multiply(out, dev(ops, b), out=out) is out
    assert_close(host(ops, out), a * b, dtype)
    row = b.reshape(-1, shape[-1])[:1]  # broadcasting goes to the reference
    assert_close(host(ops, ops.multiply(dev(ops, a), dev(ops, row))), a * row, dtype)


def check_sum_rows(ops, dtype, shape, rng):
    x = randn(rng, as2d(shape), dtype)
    want = REF.sum_rows(x)
    assert_close(host(ops, ops.sum_rows(dev(ops, x))), want, dtype)
    out = dev(ops, numpy.zeros(x.shape[1], dtype))
    assert ops.sum_rows(dev(ops, x), out=out) is out
    assert_close(host(ops, out), want, dtype)


def check_sumsq(ops, dtype, shape, rng):
    x = randn(rng, shape, dtype)
    got = ops.sumsq(dev(ops, x))
    assert isinstance(got, float)
    assert got == pytest.approx(REF.sumsq(x), rel=1e-10)


def check_add_bias(ops, dtype, shape, rng):
    y, b = randn(rng, as2d(shape), dtype), randn(rng, as2d(shape)[1], dtype)
    got = dev(ops, y.copy())
    assert ops.add_bias(got, dev(ops, b)) is got
    assert_close(host(ops, got), y + b, dtype)


def check_clip_scale_ema(ops, dtype, shape, rng):
    x = randn(rng, shape, dtype)
    got = dev(ops, x.copy())
    assert ops.clip_by_value(got, 0.5) is got
    assert_close(host(ops, got), REF.clip_by_value(x.copy(), 0.5), dtype)
    got = dev(ops, x.copy())
    assert ops.scale(got, 0.3) is got
    assert_close(host(ops, got), REF.scale(x.copy(), 0.3), dtype)
    avg, value = randn(rng, shape, dtype), randn(rng, shape, dtype)
    want = avg.copy()
    REF.ema_update(want, value, 0.9)
    got = dev(ops, avg.copy())
    assert ops.ema_update(got, dev(ops, value), 0.9) is None
    assert_close(host(ops, got), want, dtype)


def check_gemm(ops, dtype, shape, rng):
    m, n = as2d(shape)
    k = int(rng.integers(1, 20))
    for trans_a in (False, True):
        for trans_b in (False, True):
            a = randn(rng, (k, m) if trans_a else (m, k), dtype)
            b = randn(rng, (n, k) if trans_b else (k, n), dtype)
            for alpha, beta in ((1.0, 0.0), (0.5, 0.0), (-2.0, 1.0), (1.5, 0.25)):
                want = REF.gemm(a, b, None, trans_a, trans_b, alpha)
                got = ops.gemm(dev(ops, a), dev(ops, b), None, trans_a, trans_b, alpha, beta)
                assert_close(host(ops, got), want, dtype)
                c = randn(rng, (m, n), dtype)
                want = REF.gemm(a, b, c.copy(), trans_a, trans_b, alpha, beta)
                out = dev(ops, c.copy())
                assert ops.gemm(dev(ops, a), dev(ops, b), out, trans_a, trans_b, alpha, beta) is out
                assert_close(host(ops, out), want, dtype)


def check_gemm_edge(ops, dtype, shape, rng):
    """Empty operands, non-contiguous operands and mixed dtypes go through the reference."""
    m, n = as2d(shape)
    for mm, kk, nn in ((0, 3, n), (m, 0, n), (m, 3, 0)):
        a, b = randn(rng, (mm, kk), dtype), randn(rng, (kk, nn), dtype)
        got = host(ops, ops.gemm(dev(ops, a), dev(ops, b)))
        assert got.shape == (mm, nn) and not got.any()
        out = dev(ops, numpy.ones((mm, nn), dtype))
        ops.gemm(dev(ops, a), dev(ops, b), out, beta=0.5)
        assert_close(host(ops, out), numpy.full((mm, nn), 0.5, dtype), dtype)
    a = randn(rng, (2 * m, 4), dtype)[::2]
    b = randn(rng, (n, 4), dtype).T
    assert_close(host(ops, ops.gemm(dev(ops, a), dev(ops, b))), a @ b, dtype)


def check_gemm_aliased(ops, dtype, shape, rng):
    """``out`` that is, or overlaps, an operand: the product of the operands' values
    before the call (the Ops contract allows ``out`` to be an input)."""
    m = max(as2d(shape)[0] % 23, 1)
    for trans_a, trans_b, alpha, beta in ((False, False, 1.0, 0.0), (True, False, 0.5, 0.0),
                                          (False, True, 1.0, 0.5), (True, True, -1.5, 2.0)):
        for target in ("a", "b", "overlap"):
            buf = randn(rng, (2 * m, m), dtype)
            a, b = buf[:m].copy(), randn(rng, (m, m), dtype)
            if target == "overlap":  # out starts halfway through a's rows
                a = buf[:m]
                out_host = buf[m // 2: m // 2 + m]
            else:
                out_host = a if target == "a" else b
            a64, b64 = a.astype("float64"), b.astype("float64")
            want = (alpha * (a64.T if trans_a else a64) @ (b64.T if trans_b else b64)
                    + beta * out_host.astype("float64"))
            if target == "overlap":
                dbuf = dev(ops, buf)
                da, out = dbuf[:m], dbuf[m // 2: m // 2 + m]
                db = dev(ops, b)
            else:
                da, db = dev(ops, a), dev(ops, b)
                out = da if target == "a" else db
            assert ops.gemm(da, db, out, trans_a, trans_b, alpha, beta) is out
            assert_close(host(ops, out), want.astype(dtype), dtype)


# ---------------------------------------------------------------- dropout
def check_dropout(ops, dtype, shape, rng):
    seed = int(rng.integers(-2**63, 2**63 - 1))
    for rate in (0.0, 0.1, 0.5, 0.9):
        want = REF.dropout_mask(shape, rate, seed, dtype=dtype)
        got = host(ops, ops.dropout_mask(shape, rate, seed, dtype=dtype))
        assert got.dtype == want.dtype and got.shape == want.shape
        numpy.testing.assert_array_equal(got, want)
        out = dev(ops, numpy.full(shape, numpy.nan, dtype))
        assert ops.dropout_mask(shape, rate, seed, dtype=dtype, out=out) is out
        numpy.testing.assert_array_equal(host(ops, out), want)


# ---------------------------------------------------------------- losses
def _targets(rng, kind, n, k, dtype):
    if kind == "ids32":
        return rng.integers(0, k, size=n).astype(numpy.int32)
    if kind == "ids64":
        return rng.integers(0, k, size=n).astype(numpy.int64)
    if kind == "onehot":
        return numpy.eye(k, dtype=dtype)[rng.integers(0, k, size=n)]
    return probs(rng, (n, k), dtype)  # a soft distribution


def _loss_case(ops, dtype, method, pred, targets, fused, **kwargs):
    """Compare loss, gradient and (fused) probabilities, with and without grad_out/weights."""
    n, k = pred.shape
    rng = numpy.random.default_rng(n * 31 + k)
    for weighted in (False, True):
        w = rng.uniform(0.1, 2.0, size=n) if weighted else None  # float64: cast like the ref
        for with_grad in (False, True):
            kw = dict(kwargs, sample_weight=w, grad_scale=0.5 if weighted else 1.0)
            ref_out = [numpy.zeros_like(pred) for _ in range(fused + with_grad)]
            dev_out = [dev(ops, numpy.full_like(pred, numpy.nan)) for _ in ref_out]
            if with_grad:
                kw_ref = dict(kw, grad_out=ref_out[-1])
                kw_dev = dict(kw, grad_out=dev_out[-1])
            else:
                kw_ref, kw_dev = kw, kw
            lead_ref = [pred, targets] + ref_out[:fused]
            lead_dev = [dev(ops, pred), dev(ops, targets)] + dev_out[:fused]
            want = getattr(REF, method)(*lead_ref, **kw_ref)
            got = getattr(ops, method)(*lead_dev, **kw_dev)
            assert isinstance(got, float)
            assert got == pytest.approx(want, rel=1e-5 if dtype == numpy.float32 else 1e-10,
                                        abs=1e-12)
            for g, r in zip(dev_out, ref_out):
                assert_close(host(ops, g), r, dtype)


def check_softmax_cross_entropy(ops, dtype, shape, rng):
    n, k = as2d(shape)
    logits = randn(rng, (n, k), dtype) * 3
    for kind in ("ids32", "ids64", "onehot", "soft"):
        for smoothing in (0.0, 0.1):
            _loss_case(ops, dtype, "softmax_cross_entropy", logits,
                       _targets(rng, kind, n, k, dtype), True, label_smoothing=smoothing)


def check_sigmoid_cross_entropy(ops, dtype, shape, rng):
    logits = randn(rng, as2d(shape), dtype) * 3
    t = (rng.uniform(size=logits.shape) > 0.5).astype(dtype)
    for smoothing in (0.0, 0.2):
        _loss_case(ops, dtype, "sigmoid_cross_entropy", logits, t, True,
                   label_smoothing=smoothing)


def check_crossentropy(ops, dtype, shape, rng):
    n, k = as2d(shape)
    pred = probs(rng, (n, k), dtype) * dtype(1.3)  # rows not normalised: the loss rescales
    for kind in ("ids32", "ids64", "onehot", "soft"):
        for smoothing in (0.0, 0.1):
            _loss_case(ops, dtype, "crossentropy_loss", pred, _targets(rng, kind, n, k, dtype),
                       False, label_smoothing=smoothing)
    pred[:, 0] = 1e-9  # clipped entries get no gradient
    _loss_case(ops, dtype, "crossentropy_loss", pred, _targets(rng, "soft", n, k, dtype), False)


def check_binary_crossentropy(ops, dtype, shape, rng):
    pred = rng.uniform(0.01, 0.99, size=as2d(shape)).astype(dtype)
    pred.flat[::3] = 1.0  # clipped
    t = (rng.uniform(size=pred.shape) > 0.5).astype(dtype)
    for smoothing in (0.0, 0.2):
        _loss_case(ops, dtype, "binary_crossentropy_loss", pred, t, False,
                   label_smoothing=smoothing)


def check_regression_losses(ops, dtype, shape, rng):
    pred, t = randn(rng, as2d(shape), dtype), randn(rng, as2d(shape), dtype)
    _loss_case(ops, dtype, "mean_squared_error_loss", pred, t, False)
    _loss_case(ops, dtype, "mean_absolute_error_loss", pred, t, False)
    for delta in (1.0, 0.3):
        _loss_case(ops, dtype, "huber_loss", pred, t, False, delta=delta)


def check_hinge_losses(ops, dtype, shape, rng):
    n, k = as2d(shape)
    pred = randn(rng, (n, k), dtype)
    for labels in ((0, 1), (-1, 1)):
        t = numpy.asarray(labels, dtype)[rng.integers(0, 2, size=(n, k))]
        _loss_case(ops, dtype, "hinge_loss", pred, t, False)
    for kind in ("ids32", "ids64", "onehot"):
        _loss_case(ops, dtype, "categorical_hinge_loss", pred, _targets(rng, kind, n, k, dtype),
                   False)


def check_bad_class_ids(ops, dtype, shape, rng):
    n, k = as2d(shape)
    logits = randn(rng, (n, k), dtype)
    for bad in (-1, k):
        ids = numpy.zeros(n, numpy.int64)
        ids[-1] = bad
        for method, args in (("softmax_cross_entropy", (numpy.empty_like(logits),)),
                             ("crossentropy_loss", ()), ("categorical_hinge_loss", ())):
            for backend in (REF, ops):
                with pytest.raises(ValueError, match="class ids"):
                    getattr(backend, method)(dev(backend, logits), dev(backend, ids),
                                             *[dev(backend, a) for a in args])


def check_noncontiguous_losses(ops, dtype, shape, rng):
    n, k = as2d(shape)
    logits = randn(rng, (n, 2 * k), dtype)[:, ::2]
    ids = rng.integers(0, k, size=2 * n)[::2]
    want = REF.softmax_cross_entropy(logits, ids, numpy.empty((n, k), dtype))
    got = ops.softmax_cross_entropy(dev(ops, logits), dev(ops, ids),
                                    dev(ops, numpy.empty((n, k), dtype)))
    assert got == pytest.approx(want, rel=1e-5)


# ---------------------------------------------------------------- normalisation
def _check_norm_backward(ops, dtype, method, dy, xhat, gamma, inv_std):
    """(dx, dgamma, dbeta) with fresh outputs, then into given ones with dx in place of dy."""
    want = getattr(REF, method)(dy, xhat, gamma, inv_std)
    args = [dev(ops, a) for a in (xhat, gamma, inv_std)]
    for g, w in zip(getattr(ops, method)(dev(ops, dy), *args), want):
        assert_close(host(ops, g), w, dtype)
    d = gamma.shape[0]
    outs = [dev(ops, dy.copy()), dev(ops, numpy.empty(d, dtype)), dev(ops, numpy.empty(d, dtype))]
    for g, o, w in zip(getattr(ops, method)(outs[0], *args, *outs), outs, want):
        assert g is o
        assert_close(host(ops, g), w, dtype)


def check_batchnorm(ops, dtype, shape, rng):
    x = randn(rng, as2d(shape), dtype) * 2 + 1
    d = x.shape[1]
    gamma, beta = randn(rng, d, dtype), randn(rng, d, dtype)
    xhat_ref = numpy.empty_like(x)
    want = REF.batchnorm_forward(x, gamma, beta, 1e-3, xhat_out=xhat_ref)
    got = ops.batchnorm_forward(dev(ops, x), dev(ops, gamma), dev(ops, beta), 1e-3)
    for g, w in zip(got, want):
        assert_close(host(ops, g), w, dtype)
    out, xhat = dev(ops, x.copy()), dev(ops, numpy.empty_like(x))
    got = ops.batchnorm_forward(out, dev(ops, gamma), dev(ops, beta), 1e-3, out=out,
                                xhat_out=xhat)
    assert got[0] is out
    assert_close(host(ops, out), want[0], dtype)
    assert_close(host(ops, xhat), xhat_ref, dtype)

    _check_norm_backward(ops, dtype, "batchnorm_backward", randn(rng, x.shape, dtype), xhat_ref,
                         gamma, want[3])

    mean, var = randn(rng, d, dtype), rng.uniform(0.1, 2, d).astype(dtype)
    want = REF.batchnorm_inference(x, gamma, beta, mean, var, 1e-3)
    got = ops.batchnorm_inference(dev(ops, x), dev(ops, gamma), dev(ops, beta), dev(ops, mean),
                                  dev(ops, var), 1e-3)
    assert_close(host(ops, got), want, dtype)
    out = dev(ops, x.copy())
    assert ops.batchnorm_inference(out, dev(ops, gamma), dev(ops, beta), dev(ops, mean),
                                   dev(ops, var), 1e-3, out=out) is out
    assert_close(host(ops, out), want, dtype)


def check_layernorm(ops, dtype, shape, rng):
    x = randn(rng, shape, dtype) * 2 + 1
    d = shape[-1]
    gamma, beta = randn(rng, d, dtype), randn(rng, d, dtype)
    xhat_ref = numpy.empty_like(x)
    want = REF.layernorm_forward(x, gamma, beta, 1e-3, xhat_out=xhat_ref)
    assert want[1].shape == shape[:-1]
    got = ops.layernorm_forward(dev(ops, x), dev(ops, gamma), dev(ops, beta), 1e-3)
    for g, w in zip(got, want):
        assert_close(host(ops, g), w, dtype)
    out, xhat = dev(ops, x.copy()), dev(ops, numpy.empty_like(x))
    got = ops.layernorm_forward(out, dev(ops, gamma), dev(ops, beta), 1e-3, out=out,
                                xhat_out=xhat)
    assert got[0] is out
    assert_close(host(ops, xhat), xhat_ref, dtype)

    _check_norm_backward(ops, dtype, "layernorm_backward", randn(rng, shape, dtype), xhat_ref,
                         gamma, want[1])


# ---------------------------------------------------------------- optimizer steps
OPTIMIZERS = {
    "sgd": [dict(momentum=0.0), dict(momentum=0.9), dict(momentum=0.9, nesterov=True),
            dict(momentum=0.5, weight_decay=0.01)],
    "adam": [dict(), dict(weight_decay=0.01), dict(amsgrad=True)],
    "adagrad": [dict(), dict(weight_decay=0.01)],
    "adadelta": [dict(), dict(weight_decay=0.01)],
    "rmsprop": [dict(), dict(momentum=0.9), dict(centered=True),
                dict(momentum=0.5, centered=True, weight_decay=0.01)],
    "nadam": [dict(), dict(weight_decay=0.01)],
}


def _run_step(backend, name, arrays, step, opts):
    """One optimizer step on ``arrays`` (param, grad, slots...) with options ``opts``."""
    p, g, *s = arrays
    wd = opts.get("weight_decay", 0.0)
    if name == "sgd":
        backend.sgd_step(p, g, s[0], 0.1, opts["momentum"], opts.get("nesterov", False), wd)
    elif name == "adam":
        backend.adam_step(p, g, s[0], s[1], 0.01, 0.9, 0.999, 1e-7, step, wd,
                          s[2] if opts.get("amsgrad") else None)
    elif name == "adagrad":
        backend.adagrad_step(p, g, s[0], 0.1, 1e-7, wd)
    elif name == "adadelta":
        backend.adadelta_step(p, g, s[0], s[1], 1.0, 0.95, 1e-7, wd)
    elif name == "rmsprop":
        momentum = opts.get("momentum", 0.0)
        backend.rmsprop_step(p, g, s[0], 0.01, 0.9, 1e-7, momentum,
                             s[1] if momentum else None, s[2] if opts.get("centered") else None,
                             wd)
    else:
        u = [0.9 * (1 - 0.5 * 0.96 ** (0.004 * t)) for t in (step, step + 1)]
        backend.nadam_step(p, g, s[0], s[1], 0.002, 0.9, 0.999, 1e-7, step, u[0], u[1],
                           math.prod([0.9 * (1 - 0.5 * 0.96 ** (0.004 * t))
                                      for t in range(1, step + 1)]), wd)


def check_optimizer(name):
    def check(ops, dtype, shape, rng):
        size = int(numpy.prod(shape))
        for opts in OPTIMIZERS[name]:
            arrays = [randn(rng, size, dtype), randn(rng, size, dtype)]
            # Slots start non-negative where the formula needs it (second moments).
            arrays += [numpy.abs(randn(rng, size, dtype)) * dtype(0.1) for _ in range(3)]
            if name == "rmsprop" and opts.get("centered"):
                arrays[2] += dtype(1)  # ms - mg^2 stays positive
            want = [a.copy() for a in arrays]
            got = [dev(ops, a.copy()) for a in arrays]
            for step in (1, 2):
                grad = randn(rng, size, dtype)
                want[1][...] = grad
                got[1][...] = dev(ops, grad)
                _run_step(REF, name, want, step, opts)
                _run_step(ops, name, got, step, opts)
            for g, w in zip(got, want):
                assert_close(host(ops, g), w, dtype)
    return check


# ---------------------------------------------------------------- registry and tests
CHECKS = {f"activation_{name}": check_activation(name) for name in ACTIVATIONS}
CHECKS.update({f"optimizer_{name}": check_optimizer(name) for name in OPTIMIZERS})
CHECKS.update({
    "noncontiguous_activations": check_noncontiguous_activations,
    "multiply": check_multiply, "sum_rows": check_sum_rows, "sumsq": check_sumsq,
    "add_bias": check_add_bias, "clip_scale_ema": check_clip_scale_ema, "gemm": check_gemm,
    "gemm_edge": check_gemm_edge, "gemm_aliased": check_gemm_aliased, "dropout": check_dropout,
    "softmax_cross_entropy": check_softmax_cross_entropy,
    "sigmoid_cross_entropy": check_sigmoid_cross_entropy, "crossentropy": check_crossentropy,
    "binary_crossentropy": check_binary_crossentropy,
    "regression_losses": check_regression_losses, "hinge_losses": check_hinge_losses,
    "bad_class_ids": check_bad_class_ids, "noncontiguous_losses": check_noncontiguous_losses,
    "batchnorm": check_batchnorm, "layernorm": check_layernorm,
})


@pytest.mark.parametrize("shape", FIXED_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("check", sorted(CHECKS))
def test_fixed(ops, check, dtype, shape):
    CHECKS[check](ops, dtype, shape, numpy.random.default_rng(0))


shapes = st.one_of(
    st.tuples(st.integers(1, 9), st.integers(1, 17)),
    st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 9)),
    st.tuples(st.integers(300, 700), st.integers(190, 260)),  # mostly above 2^17 elements
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(check=st.sampled_from(sorted(CHECKS)), dtype=st.sampled_from(DTYPES), shape=shapes,
       seed=st.integers(0, 2**32 - 1))
def test_random(ops, check, dtype, shape, seed):
    CHECKS[check](ops, dtype, shape, numpy.random.default_rng(seed))


@pytest.mark.parametrize("backend", ["numpy"] + BACKENDS)
def test_gemm_out_aliasing_an_input_on_every_backend(backend):
    """The reference backend too (the checks above compare it with the others)."""
    if backend not in available_backends():
        pytest.skip(f"backend {backend!r} is not available on this machine")
    for dtype in DTYPES:
        for shape in ((1, 1), (7, 3), (64, 64)):
            check_gemm_aliased(get_ops(backend), dtype, shape, numpy.random.default_rng(1))


def test_dropout_independent_of_thread_count(ops):
    shape, before = LARGE, get_num_threads()
    try:
        set_num_threads(1)
        one = host(ops, ops.dropout_mask(shape, 0.3, 12345))
        set_num_threads(2)
        two = host(ops, ops.dropout_mask(shape, 0.3, 12345))
    finally:
        set_num_threads(before)
    numpy.testing.assert_array_equal(one, two)
    numpy.testing.assert_array_equal(one, REF.dropout_mask(shape, 0.3, 12345))


@pytest.mark.parametrize("dtype", [numpy.float16, numpy.int32])
def test_other_dtypes_fall_back(ops, dtype):
    """Dtypes without a kernel give the reference's answer."""
    x = (numpy.arange(12).reshape(3, 4) - 6).astype(dtype)
    for name in ("relu", "step", "linear"):
        want = getattr(REF, name)(x)
        got = host(ops, getattr(ops, name)(dev(ops, x)))
        assert got.dtype == want.dtype
        numpy.testing.assert_array_equal(got, want)
    numpy.testing.assert_array_equal(host(ops, ops.sum_rows(dev(ops, x))), REF.sum_rows(x))


def test_mixed_dtypes_fall_back(ops):
    x32 = numpy.linspace(-2, 2, 12, dtype=numpy.float32).reshape(3, 4)
    out64 = numpy.empty((3, 4), numpy.float64)
    got = ops.relu(dev(ops, x32), out=dev(ops, out64))
    numpy.testing.assert_array_equal(host(ops, got), REF.relu(x32).astype(numpy.float64))
    param = dev(ops, numpy.zeros(4))
    ops.sgd_step(param, dev(ops, numpy.ones(4, numpy.float32)), None, 0.5)
    numpy.testing.assert_array_equal(host(ops, param), -0.5)


def test_cpu_kernels_take_the_fast_path(monkeypatch):
    """With contiguous float arrays no CpuOps override falls back to the reference."""
    from fastnn.backend.cpu_ops import CpuOps
    overridden = [n for n in vars(CpuOps) if not n.startswith("_") and callable(vars(CpuOps)[n])]

    def refuse(*args, **kwargs):
        raise AssertionError("fell back to the reference")
    for name in overridden:
        monkeypatch.setattr(Ops, name, refuse)
    cpu, rng = CpuOps(), numpy.random.default_rng(0)
    for dtype in DTYPES:
        x, dy = randn(rng, (5, 4), dtype), randn(rng, (5, 4), dtype)
        v, ids = randn(rng, 4, dtype), numpy.arange(5) % 4
        y = cpu.relu(x)
        for name, kwargs in ACTIVATIONS.items():
            getattr(cpu, name)(x, out=x.copy(), **kwargs)
            getattr(cpu, "backprop_" + name)(dy, x, y, out=dy.copy(), **kwargs)
        cpu.gemm(x, x, trans_b=True)
        cpu.add_bias(x.copy(), v)
        cpu.sum_rows(x)
        cpu.multiply(x, dy)
        cpu.sumsq(x)
        cpu.clip_by_value(x.copy(), 1.0)
        cpu.scale(x.copy(), 2.0)
        cpu.ema_update(x.copy(), dy, 0.9)
        cpu.dropout_mask((5, 4), 0.5, 1, dtype=dtype)
        p = numpy.empty_like(x)
        cpu.softmax_cross_entropy(x, ids, p, p.copy(), v[ids] ** 2, 0.5, 0.1)
        cpu.softmax_cross_entropy(x, cpu.softmax(x), p, p.copy())
        cpu.sigmoid_cross_entropy(x, y > 0, p, p.copy(), label_smoothing=0.1)
        pr = cpu.softmax(x)
        cpu.crossentropy_loss(pr, ids, p)
        cpu.binary_crossentropy_loss(pr, y > 0, p)
        for name in ("mean_squared_error_loss", "mean_absolute_error_loss", "huber_loss",
                     "hinge_loss"):
            getattr(cpu, name)(x, dy, p)
        cpu.categorical_hinge_loss(x, ids, p)
        xhat = numpy.empty_like(x)
        _, _, _, inv = cpu.batchnorm_forward(x, v, v, 1e-3, xhat_out=xhat)
        cpu.batchnorm_backward(dy, xhat, v, inv)
        cpu.batchnorm_inference(x, v, v, v, v ** 2, 1e-3)
        _, inv = cpu.layernorm_forward(x, v, v, 1e-3, xhat_out=xhat)
        cpu.layernorm_backward(dy, xhat, v, inv)
        slots = [numpy.abs(randn(rng, 20, dtype)) for _ in range(5)]
        cpu.sgd_step(*slots[:3], 0.1, 0.9, True, 0.01)
        cpu.adam_step(*slots[:4], 0.1, 0.9, 0.999, 1e-7, 3, 0.01, slots[4])
        cpu.adagrad_step(*slots[:3], 0.1, 1e-7)
        cpu.adadelta_step(*slots[:4], 1.0, 0.95, 1e-7)
        cpu.rmsprop_step(*slots[:3], 0.1, 0.9, 1e-7, 0.9, slots[3], slots[4])
        cpu.nadam_step(*slots[:4], 0.1, 0.9, 0.999, 1e-7, 2, 0.5, 0.5, 0.25)


# Ops methods each non-activation check compares (activations cover f and backprop_f).
COVERED = {
    "multiply", "sum_rows", "sumsq", "add_bias", "clip_by_value", "scale", "ema_update", "gemm",
    "dropout_mask", "softmax_cross_entropy", "sigmoid_cross_entropy", "crossentropy_loss",
    "binary_crossentropy_loss", "mean_squared_error_loss", "mean_absolute_error_loss",
    "huber_loss", "hinge_loss", "categorical_hinge_loss", "batchnorm_forward",
    "batchnorm_backward", "batchnorm_inference", "layernorm_forward", "layernorm_backward",
} | {f"{name}_step" for name in OPTIMIZERS} | set(ACTIVATIONS) | {
    f"backprop_{name}" for name in ACTIVATIONS}


# Overrides compared elsewhere, with the reason.
ELSEWHERE = {name: "low-precision weights: tests/test_quant_kernels.py compares every ISA path"
             for name in ("pack_int8", "int8_dense", "to_bf16", "pack_bf16", "bf16_dense")}


def test_every_kernel_has_a_conformance_check():
    """A method a backend overrides with its own code must be compared here."""
    from fastnn.backend.cpu_ops import CpuOps
    overridden = {n for n, f in vars(CpuOps).items() if callable(f) and not n.startswith("_")}
    assert overridden - COVERED - set(ELSEWHERE) == set()


# ---------------------------------------------------------------- the seam models use
@pytest.mark.parametrize("backend", ["numpy"] + BACKENDS)
def test_seam_methods(backend):
    """take_rows, owns, to_host and is_native: what models ask instead of naming numpy."""
    if backend not in available_backends():
        pytest.skip(f"backend {backend!r} is not available on this machine")
    ops = get_ops(backend)
    rng = numpy.random.default_rng(0)
    source = randn(rng, (9, 5), numpy.float32)
    idx = numpy.array([8, 0, 3, 3], dtype=numpy.int64)
    out = dev(ops, numpy.zeros((4, 5), numpy.float32))
    assert ops.take_rows(dev(ops, source), dev(ops, idx), out) is out
    numpy.testing.assert_array_equal(host(ops, out), source[idx])
    d = dev(ops, source)
    assert ops.owns(d) and not ops.owns([1.0, 2.0])
    h = ops.to_host(d)
    assert type(h) is numpy.ndarray
    numpy.testing.assert_array_equal(h, source)
    assert ops.to_host(source) is source  # host arrays are not copied
    assert ops.is_native == (ops.xp is numpy)


def test_register_backend_adds_one_ops_class():
    from fastnn import backend

    class Traced(Ops):
        name = "traced"
        calls = 0

        def gemm(self, a, b, out=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
            Traced.calls += 1
            return super().gemm(a, b, out, trans_a, trans_b, alpha, beta)

    backend.register_backend("traced", Traced)
    try:
        assert "traced" in backend.available_backends()
        with backend.use_backend("traced") as ops:
            assert isinstance(ops, Traced) and backend.get_ops() is ops
            import fastnn
            model = fastnn.Sequential([fastnn.layers.Dense(3, input_shape=(4,))])
            model.predict(numpy.ones((2, 4), numpy.float32))
        assert Traced.calls > 0
        backend.register_backend("broken", lambda: object())
        with pytest.raises(TypeError, match="not an Ops"):
            backend.get_ops("broken")
        with pytest.raises(ValueError, match="callable factory"):
            backend.register_backend("x", None)
    finally:
        for name in ("traced", "broken"):
            backend._factories.pop(name, None)
            backend._instances.pop(name, None)
    with pytest.raises(ValueError, match="Unknown backend"):
        backend.get_ops("traced")
