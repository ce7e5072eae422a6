"""int8 and bf16 weight kernels (fastnn._kernels._quant) against the NumPy reference
(``Ops.quantize_int8``, ``int8_dense``, ``to_bf16``, ``bf16_dense``) on every
instruction-set path this CPU runs.

int8 results must equal the reference bit for bit (exact int32 accumulators, one
float epilogue formula); bf16 products agree to float32 rounding."""
import subprocess
import sys
import threading

import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastnn._kernels import _quant
from fastnn.backend.cpu_ops import CpuOps
from fastnn.backend.ops import Ops

REF = Ops()
CPU = CpuOps()

# Every int8 path this CPU runs, plus the AVX-VNNI tiling run with EVEX vpdpbusd where
# the CPU has AVX512-VNNI (the hook that exercises that code without AVX-VNNI).
PATHS = list(_quant.available())
if "avx512vnni" in PATHS and "avxvnni" not in PATHS:
    PATHS.append("avxvnni-evex")

DIMS = [1, 2, 3, 4, 5, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 129]


def use_path(name):
    """Select path ``name`` (see PATHS); returns what ``isa()`` then reports."""
    if name == "avxvnni-evex":
        _quant.set_isa("avx512vnni")
        return _quant._use_ymm_vnni_tiles(True)
    _quant._use_ymm_vnni_tiles(False)
    return _quant.set_isa(name)


@pytest.fixture(autouse=True)
def _reset_path():
    yield
    _quant._use_ymm_vnni_tiles(False)
    _quant.set_isa(None)


def random_case(rng, m, k, n, zero_rows=(), zero_cols=(), scale=1.0):
    x = (scale * rng.standard_normal((m, k))).astype(numpy.float32)
    W = rng.standard_normal((k, n)).astype(numpy.float32)
    b = rng.standard_normal(n).astype(numpy.float32)
    for i in zero_rows:
        x[i % m] = 0
    for j in zero_cols:
        W[:, j % n] = 0
    return x, W, b


def test_paths_are_reported_and_selectable():
    assert PATHS[0] == "portable"
    for name in PATHS:
        assert use_path(name)["int8"] == name
    assert _quant.set_isa("portable") == {"int8": "portable", "bf16": "portable"}


def test_set_isa_only_lowers():
    best = _quant.set_isa(None)["int8"]
    assert best == _quant.available()[-1]
    # Asking for more than the CPU has gives what the CPU has, never more.
    assert _quant.set_isa("avx512vnni")["int8"] == best
    if "avxvnni" not in _quant.available() and "avx2" in _quant.available():
        assert _quant.set_isa("avxvnni")["int8"] == "avx2"
    with pytest.raises(ValueError, match="unknown instruction set 'sse9'"):
        _quant.set_isa("sse9")


@pytest.mark.parametrize("name", ["portable", "avx2", "avx512vnni"])
def test_fastnn_isa_environment_variable(name, subprocess_env):
    code = "from fastnn._kernels import _quant; print(_quant.isa()['int8'])"
    env = dict(subprocess_env, FASTNN_ISA=name)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    available = _quant.available()
    expected = name if name in available else max(
        (p for p in available if _LEVEL[p] <= _LEVEL[name]), key=_LEVEL.get)
    assert out.stdout.strip() == expected


_LEVEL = {"portable": 0, "avx2": 1, "avxvnni": 2, "avx512vnni": 3}


def test_fastnn_isa_unknown_value_warns(subprocess_env):
    code = ("import warnings; warnings.simplefilter('always')\n"
            "from fastnn._kernels import _quant; print(_quant.isa()['int8'])")
    env = dict(subprocess_env, FASTNN_ISA="sse9")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "FASTNN_ISA ignored" in out.stderr
    assert out.stdout.strip() == _quant.available()[-1]


# ------------------------------------------------------------------ int8 quantization
def test_quantize_int8_matches_reference_and_rounds_half_to_even():
    # Column 0 has max 127 (scale 1): 0.5, 1.5, 2.5, -2.5 round to 0, 2, 2, -2.
    W = numpy.zeros((6, 3), numpy.float32)
    W[:, 0] = [0.5, 1.5, 2.5, -2.5, 127.0, -3.0]
    W[:, 2] = [1e-3, -2e-3, 0, 0, 0, 0]  # column 1 stays all zero: scale 1
    Wq, s = REF.quantize_int8(W)
    assert Wq.dtype == numpy.int8 and s.dtype == numpy.float32
    numpy.testing.assert_array_equal(Wq[:, 0], [0, 2, 2, -2, 127, -3])
    numpy.testing.assert_array_equal(Wq[:, 1], 0)
    assert s[1] == 1.0
    numpy.testing.assert_array_equal(Wq[:2, 2], [64, -127])  # 63.5 -> 64 (even)


def test_int8_rounds_activations_half_to_even():
    # Row max 127 gives s_x = 1; W = 127 * I gives Wq = 127 * I, s_w = 1, so y = 127 * xq.
    x = numpy.array([[0.5, 1.5, 2.5, -0.5, -1.5, 127.0]], numpy.float32)
    W = numpy.eye(6, dtype=numpy.float32) * 127
    Wq, s = REF.quantize_int8(W)
    p = _quant.pack_int8(Wq)
    for name in PATHS:
        use_path(name)
        y = _quant.int8_dense(x, p, s, None)
        numpy.testing.assert_array_equal(y / 127, [[0, 2, 2, 0, -2, 127]], err_msg=name)


def test_int8_activations_near_halves_and_tiny_or_huge_rows():
    # Values at (or a rounding away from) q + 1/2 times the row's scale, where a
    # multiply by 1/s could round differently from the division; rows with subnormal
    # and huge maxima.
    rng = numpy.random.default_rng(11)
    m, k = 60, 75
    maxima = numpy.float32(10.0) ** rng.uniform(-30, 30, m).astype(numpy.float32)
    maxima[:3] = [1e-40, 3e-45, 3e38]
    s = numpy.where(maxima == 0, 1, maxima / numpy.float32(127)).astype(numpy.float32)
    q = rng.integers(-127, 127, (m, k)) + 0.5
    x = (q * s[:, None]).astype(numpy.float32)
    x = numpy.nextafter(x, rng.choice([-numpy.inf, 0, numpy.inf], (m, k)).astype(numpy.float32))
    x[:, 0] = maxima
    x[::7, 3] = 0
    W = rng.standard_normal((k, 20)).astype(numpy.float32)
    Wq, sw = REF.quantize_int8(W)
    with numpy.errstate(over="ignore"):  # the 3e38 row's outputs overflow to inf
        expected = REF.int8_dense(x, Wq, sw)
    assert numpy.all(expected[1] == 0)  # scale underflows: 1, and the row quantizes to 0
    p = _quant.pack_int8(Wq)
    for name in PATHS:
        use_path(name)
        numpy.testing.assert_array_equal(_quant.int8_dense(x, p, sw, None), expected,
                                         err_msg=f"path {name}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 70), k=st.sampled_from(DIMS + [784]), n=st.sampled_from(DIMS),
       seed=st.integers(0, 2**31 - 1), zero_rows=st.lists(st.integers(0, 69), max_size=3),
       zero_cols=st.lists(st.integers(0, 128), max_size=3), relu=st.booleans(),
       use_bias=st.booleans(), scale=st.sampled_from([1e-3, 1.0, 300.0]))
def test_int8_dense_equals_reference_on_every_path(m, k, n, seed, zero_rows, zero_cols, relu,
                                                   use_bias, scale):
    rng = numpy.random.default_rng(seed)
    x, W, b = random_case(rng, m, k, n, zero_rows, zero_cols, scale)
    b = b if use_bias else None
    Wq, s = REF.quantize_int8(W)
    expected = REF.int8_dense(x, Wq, s, b, relu=relu)
    p = _quant.pack_int8(Wq)
    for name in PATHS:
        use_path(name)
        out = numpy.full((m, n), numpy.nan, numpy.float32)
        y = _quant.int8_dense(x, p, s, b, out, 1, relu)
        assert y is out
        numpy.testing.assert_array_equal(y, expected, err_msg=f"path {name}")


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 70), k=st.sampled_from(DIMS + [784]), n=st.sampled_from(DIMS),
       seed=st.integers(0, 2**31 - 1))
def test_int8_accumulators_are_exact(m, k, n, seed):
    rng = numpy.random.default_rng(seed)
    xq = rng.integers(-127, 128, (m, k)).astype(numpy.int8)
    Wq = rng.integers(-127, 128, (k, n)).astype(numpy.int8)
    expected = xq.astype(numpy.int32) @ Wq.astype(numpy.int32)
    p = _quant.pack_int8(Wq)
    for name in PATHS:
        use_path(name)
        numpy.testing.assert_array_equal(_quant.int8_matmul_acc(xq, p), expected,
                                         err_msg=f"path {name}")


@pytest.mark.parametrize("xv,wv", [(127, 127), (-127, 127), (127, -127), (-127, -127)])
def test_int8_accumulators_exact_at_the_extremes(xv, wv):
    # Every pair of products at +-2 * 127 * 127: where a saturating int16 step would clip.
    k, n = 784, 40
    xq = numpy.full((5, k), xv, numpy.int8)
    xq[1, ::2] = -xv
    Wq = numpy.full((k, n), wv, numpy.int8)
    Wq[::3, 1] = -wv
    expected = xq.astype(numpy.int32) @ Wq.astype(numpy.int32)
    assert numpy.abs(expected).max() == k * 127 * 127
    p = _quant.pack_int8(Wq)
    for name in PATHS:
        use_path(name)
        numpy.testing.assert_array_equal(_quant.int8_matmul_acc(xq, p), expected,
                                         err_msg=f"path {name}")


def test_int8_dense_full_scale_rows_on_every_path():
    # Rows whose quantized values are all +-127 against full-scale weights.
    rng = numpy.random.default_rng(3)
    x = numpy.where(rng.random((9, 300)) < 0.5, -1.0, 1.0).astype(numpy.float32)
    W = numpy.where(rng.random((300, 70)) < 0.5, -2.0, 2.0).astype(numpy.float32)
    Wq, s = REF.quantize_int8(W)
    expected = REF.int8_dense(x, Wq, s)
    p = _quant.pack_int8(Wq)
    for name in PATHS:
        use_path(name)
        numpy.testing.assert_array_equal(_quant.int8_dense(x, p, s, None), expected)


def test_int8_rows_holding_an_infinity_match_the_reference_on_every_path():
    # An inf row scale is not finite: x / inf makes the finite values 0 and the inf NaN,
    # whose level is the row's lowest, in the kernels and in the reference alike.
    x = numpy.array([[numpy.inf, 1, 2, 3], [1, -numpy.inf, 2, 3], [1, 2, 3, 4]],
                    numpy.float32)
    W = numpy.array([[1, 0], [0, 1], [1, 1], [-1, 1]], numpy.float32)
    Wq, s = REF.quantize_int8(W)
    with numpy.errstate(invalid="ignore", over="ignore"):
        expected = REF.int8_dense(x, Wq, s)
    p = _quant.pack_int8(Wq)
    for name in PATHS:
        use_path(name)
        with numpy.errstate(invalid="ignore", over="ignore"):
            numpy.testing.assert_array_equal(_quant.int8_dense(x, p, s, None), expected,
                                             err_msg=name)


def test_int8_rows_without_a_sign_bit_are_quantized_to_uint8():
    # Row max 255 gives s_x = 1 on a uint8 row: 0.5, 1.5, 2.5 round to 0, 2, 2 and 200
    # stays 200; the same values with one -0.0 make an int8 row (s_x = 255 / 127).
    x = numpy.array([[0.5, 1.5, 2.5, 200.0, 0.0, 255.0],
                     [0.5, 1.5, 2.5, 200.0, -0.0, 255.0]], numpy.float32)
    W = numpy.eye(6, dtype=numpy.float32) * 127
    Wq, s = REF.quantize_int8(W)
    expected = REF.int8_dense(x, Wq, s)
    numpy.testing.assert_array_equal(expected[0] / 127, [0, 2, 2, 200, 0, 255])
    sx = numpy.float32(255) / numpy.float32(127)
    numpy.testing.assert_array_equal(expected[1], numpy.rint(x[1] / sx) * 127 * sx)
    p = _quant.pack_int8(Wq)
    for name in PATHS:
        use_path(name)
        numpy.testing.assert_array_equal(_quant.int8_dense(x, p, s, None), expected,
                                         err_msg=name)


def test_int8_uint8_rows_near_halves_and_mixed_with_int8_rows():
    # Non-negative rows with values a rounding away from (q + 1/2) * s_x, s_x = max / 255,
    # interleaved with signed rows and all-zero rows, on every path and tile height.
    rng = numpy.random.default_rng(12)
    m, k = 61, 77
    maxima = numpy.float32(10.0) ** rng.uniform(-20, 20, m).astype(numpy.float32)
    s = (maxima / numpy.float32(255)).astype(numpy.float32)
    q = rng.integers(0, 255, (m, k)) + 0.5
    x = (q * s[:, None]).astype(numpy.float32)
    x = numpy.nextafter(x, rng.choice([0, numpy.inf], (m, k)).astype(numpy.float32))
    x[:, 0] = maxima
    x[::3] *= numpy.where(rng.random((1, k)) < 0.5, -1, 1).astype(numpy.float32)
    x[5::9] = 0
    W = rng.standard_normal((k, 37)).astype(numpy.float32)
    Wq, sw = REF.quantize_int8(W)
    b = rng.standard_normal(37).astype(numpy.float32)
    expected = REF.int8_dense(x, Wq, sw, b, relu=True)
    p = _quant.pack_int8(Wq)
    for name in PATHS:
        use_path(name)
        for rows in (slice(None), slice(0, 1), slice(3, 11)):
            numpy.testing.assert_array_equal(
                _quant.int8_dense(numpy.ascontiguousarray(x[rows]), p, sw, b, None, 1, True),
                expected[rows], err_msg=f"path {name}")


def test_int8_uint8_rows_halve_the_error():
    # The same non-negative rows quantized to uint8 (as given) and to int8 (one -0.0
    # added): the uint8 rows' error against float32 is about half.
    rng = numpy.random.default_rng(13)
    x = numpy.maximum(rng.standard_normal((64, 256)), 0).astype(numpy.float32)
    W = rng.standard_normal((256, 64)).astype(numpy.float32)
    Wq, s = REF.quantize_int8(W)
    exact = x.astype(numpy.float64) @ (Wq * s).astype(numpy.float64)
    signed = x.copy()
    signed[:, -1] = numpy.where(signed[:, -1] == 0, -0.0, signed[:, -1])
    signed[signed[:, -1] != 0, 0] = -0.0
    p = _quant.pack_int8(Wq)
    err_u8 = numpy.linalg.norm(_quant.int8_dense(x, p, s, None) - exact)
    err_s8 = numpy.linalg.norm(_quant.int8_dense(signed, p, s, None) - exact)
    assert err_u8 < 0.6 * err_s8


def test_int8_deep_rows_stay_int8():
    # Past U8_MAX_K a uint8 row could overflow the int32 sums: every row is int8 there.
    k = _quant.U8_MAX_K + 1
    x = numpy.full((2, k), 1.0, numpy.float32)
    x[1, ::2] = 0.5
    Wq = numpy.full((k, 3), 127, numpy.int8)
    s = numpy.ones(3, numpy.float32)
    expected = REF.int8_dense(x, Wq, s)
    f32 = numpy.float32  # float32 throughout, as the reference (NumPy 1.x promotes a
    # float32 scalar with a Python int to float64)
    assert expected[0, 0] == f32(k * 127 * 127) * (f32(1) / f32(127))
    p = _quant.pack_int8(Wq)
    for name in PATHS:
        use_path(name)
        numpy.testing.assert_array_equal(_quant.int8_dense(x, p, s, None), expected,
                                         err_msg=name)
    with pytest.raises(ValueError, match="overflow"):
        _quant.int8_matmul_acc(numpy.zeros((1, k), numpy.uint8), p)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 70), k=st.sampled_from(DIMS + [784]), n=st.sampled_from(DIMS),
       seed=st.integers(0, 2**31 - 1))
def test_int8_uint8_accumulators_are_exact(m, k, n, seed):
    rng = numpy.random.default_rng(seed)
    xq = rng.integers(0, 256, (m, k)).astype(numpy.uint8)
    Wq = rng.integers(-127, 128, (k, n)).astype(numpy.int8)
    expected = xq.astype(numpy.int32) @ Wq.astype(numpy.int32)
    p = _quant.pack_int8(Wq)
    for name in PATHS:
        use_path(name)
        numpy.testing.assert_array_equal(_quant.int8_matmul_acc(xq, p), expected,
                                         err_msg=f"path {name}")


@pytest.mark.parametrize("wv", [127, -127])
def test_int8_uint8_accumulators_exact_at_the_extremes(wv):
    # Pairs of products at +-2 * 255 * 127: past int16, where vpmaddubsw would saturate.
    k, n = 784, 40
    xq = numpy.full((5, k), 255, numpy.uint8)
    xq[1, ::2] = 0
    Wq = numpy.full((k, n), wv, numpy.int8)
    Wq[::3, 1] = -wv
    expected = xq.astype(numpy.int32) @ Wq.astype(numpy.int32)
    assert numpy.abs(expected).max() == k * 255 * 127
    p = _quant.pack_int8(Wq)
    for name in PATHS:
        use_path(name)
        numpy.testing.assert_array_equal(_quant.int8_matmul_acc(xq, p), expected,
                                         err_msg=f"path {name}")


def test_int8_threads_give_identical_results():
    rng = numpy.random.default_rng(4)
    x, W, b = random_case(rng, 64, 784, 512)  # 2.6e7 multiply-adds: the OpenMP split
    Wq, s = REF.quantize_int8(W)
    p = _quant.pack_int8(Wq)
    expected = REF.int8_dense(x, Wq, s, b, relu=True)
    numpy.testing.assert_array_equal(_quant.int8_dense(x, p, s, b, None, 2, True), expected)
    results, errors = {}, []

    def worker(t):
        try:
            xs = x[t % 4 * 16:(t % 4 + 1) * 16]
            for _ in range(20):
                y = _quant.int8_dense(xs, p, s, b, None, 1, True)
                if not numpy.array_equal(y, expected[t % 4 * 16:(t % 4 + 1) * 16]):
                    results[t] = "differs"
                    return
            results[t] = "same"
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == {t: "same" for t in range(8)}


def test_int8_empty_batch():
    Wq, s = REF.quantize_int8(numpy.ones((5, 3), numpy.float32))
    y = _quant.int8_dense(numpy.zeros((0, 5), numpy.float32), _quant.pack_int8(Wq), s, None)
    assert y.shape == (0, 3)


# ------------------------------------------------------------------------- bf16
def test_to_bf16_matches_reference_bit_for_bit():
    rng = numpy.random.default_rng(5)
    specials = numpy.array([0.0, -0.0, 1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20,
                            -(1 + 2**-8), 3.4e38, -3.4e38, 1e-40, -1e-45, numpy.inf,
                            -numpy.inf, numpy.nan, -numpy.nan, 65504.0, 1.00390625],
                           numpy.float32)
    bits = rng.integers(0, 2**32, 17 * 240, dtype=numpy.uint64).astype(numpy.uint32)
    W = numpy.concatenate([specials, bits.view(numpy.float32),
                           rng.standard_normal(17 * 60).astype(numpy.float32)]).reshape(-1, 17)
    got = _quant.to_bf16(W)
    assert got.dtype == numpy.uint16 and got.shape == W.shape
    numpy.testing.assert_array_equal(got, REF.to_bf16(W))
    # Ties go to even: 1 + 2^-8 lies halfway between bf16 1 and 1 + 2^-7.
    assert got.ravel()[3] == 0x3F80 and got.ravel()[4] == 0x3F82
    assert got.ravel()[5] == 0x3F81  # just above the tie: rounds up
    assert got.ravel()[7] == 0x7F80  # 3.4e38 lies past the largest bf16's rounding edge: inf
    w = (got.astype(numpy.uint32) << 16).view(numpy.float32)
    assert numpy.isnan(w.ravel()[13]) and numpy.isnan(w.ravel()[14])


def test_to_bf16_matches_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = numpy.random.default_rng(6)
    bits = rng.integers(0, 2**32, 20000, dtype=numpy.uint64).astype(numpy.uint32)
    W = bits.view(numpy.float32)
    W = W[numpy.isfinite(W)].reshape(1, -1)
    expected = W.astype(ml_dtypes.bfloat16).view(numpy.uint16)
    numpy.testing.assert_array_equal(_quant.to_bf16(W), expected)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(1, 70), k=st.sampled_from(DIMS), n=st.sampled_from(DIMS),
       seed=st.integers(0, 2**31 - 1), relu=st.booleans(), use_bias=st.booleans())
def test_bf16_dense_matches_reference_on_every_path(m, k, n, seed, relu, use_bias):
    rng = numpy.random.default_rng(seed)
    x, W, b = random_case(rng, m, k, n)
    b = b if use_bias else None
    Wb = _quant.to_bf16(W)
    expected = REF.bf16_dense(x, Wb, b, relu=relu)
    wf = (Wb.astype(numpy.uint32) << 16).view(numpy.float32).astype(numpy.float64)
    bound = numpy.abs(x).astype(numpy.float64) @ numpy.abs(wf) + (0 if b is None else numpy.abs(b))
    p = _quant.pack_bf16(Wb)
    for name in ("portable", "avx2", "avx512vnni"):
        if name not in _quant.available():
            continue
        _quant.set_isa(name)
        y = _quant.bf16_dense(x, p, b, None, 1, relu)
        # float32 sums in another order: within a few roundings of the magnitudes summed
        assert numpy.all(numpy.abs(y - expected) <= 1e-5 * bound + 1e-30), _quant.isa()


def test_bf16_threads_give_identical_results():
    rng = numpy.random.default_rng(7)
    x, W, b = random_case(rng, 64, 784, 512)
    p = _quant.pack_bf16(_quant.to_bf16(W))
    one = _quant.bf16_dense(x, p, b, None, 1)
    numpy.testing.assert_array_equal(_quant.bf16_dense(x, p, b, None, 2), one)
    outs = [None] * 6

    def worker(t):
        outs[t] = _quant.bf16_dense(x, p, b, None, 1)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for o in outs:
        numpy.testing.assert_array_equal(o, one)


# -------------------------------------------------------------- backend methods
def test_cpu_ops_methods_match_reference():
    rng = numpy.random.default_rng(8)
    x, W, b = random_case(rng, 7, 33, 20)
    Wq, s = CPU.quantize_int8(W)
    packed = CPU.pack_int8(Wq)
    assert isinstance(packed, _quant.PackedInt8)
    expected = REF.int8_dense(x, REF.pack_int8(Wq), s, b, relu=True)
    numpy.testing.assert_array_equal(CPU.int8_dense(x, packed, s, b, relu=True), expected)
    # float64 input is converted; a plain matrix takes the reference code
    numpy.testing.assert_array_equal(CPU.int8_dense(x.astype(numpy.float64), packed, s, b,
                                                    relu=True), expected)
    numpy.testing.assert_array_equal(CPU.int8_dense(x, Wq, s, b, relu=True), expected)
    out = numpy.empty((7, 20), numpy.float32)
    assert CPU.int8_dense(x, packed, s, b, out=out) is out
    Wb = CPU.to_bf16(W)
    numpy.testing.assert_array_equal(Wb, REF.to_bf16(W))
    numpy.testing.assert_allclose(CPU.bf16_dense(x, CPU.pack_bf16(Wb), b),
                                  REF.bf16_dense(x, Wb, b), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def packed_case():
    rng = numpy.random.default_rng(9)
    x, W, b = random_case(rng, 4, 10, 6)
    Wq, s = REF.quantize_int8(W)
    return x, _quant.pack_int8(Wq), s, b, _quant.pack_bf16(_quant.to_bf16(W))


@pytest.mark.parametrize("change,exc,match", [
    (dict(x=numpy.zeros((4, 10), numpy.float64)), TypeError, "x must be float32"),
    (dict(x=numpy.zeros((4, 20), numpy.float32)[:, ::2]), ValueError, "x must be C-contiguous"),
    (dict(x=numpy.zeros((4, 9), numpy.float32)), ValueError, "x has 9 columns"),
    (dict(x=numpy.zeros(10, numpy.float32)), ValueError, "x must be 2-D"),
    (dict(x=[[0.0] * 10]), TypeError, "x must be a numpy.ndarray"),
    (dict(scales=numpy.ones(5, numpy.float32)), ValueError, r"scales must have shape \(6,\)"),
    (dict(scales=numpy.ones(6, numpy.float64)), TypeError, "scales must be float32"),
    (dict(bias=numpy.ones(7, numpy.float32)), ValueError, r"bias must have shape \(6,\)"),
    (dict(out=numpy.empty((4, 5), numpy.float32)), ValueError, r"out must have shape \(4, 6\)"),
    (dict(out=numpy.empty((4, 6), numpy.float64)), TypeError, "out must be float32"),
])
def test_int8_dense_bad_input(packed_case, change, exc, match):
    x, p, s, b, _ = packed_case
    args = dict(x=x, scales=s, bias=b, out=None)
    args.update(change)
    with pytest.raises(exc, match=match):
        _quant.int8_dense(args["x"], p, args["scales"], args["bias"], args["out"])


def test_bad_weights_and_packed_objects(packed_case):
    x, p, s, b, pb = packed_case
    with pytest.raises(TypeError, match="Wq must be int8"):
        _quant.pack_int8(numpy.zeros((3, 3), numpy.float32))
    with pytest.raises(ValueError, match=r"\[-127, 127\]"):
        _quant.pack_int8(numpy.full((3, 3), -128, numpy.int8))
    with pytest.raises(ValueError, match="Wq must be 2-D"):
        _quant.pack_int8(numpy.zeros(3, numpy.int8))
    with pytest.raises(ValueError, match="must not be empty"):
        _quant.pack_int8(numpy.zeros((0, 3), numpy.int8))
    with pytest.raises(ValueError, match="overflow the int32"):
        _quant.pack_int8(numpy.zeros((_quant.MAX_K + 1, 1), numpy.int8))
    assert _quant.MAX_K * 127 * 127 < 2**31 <= (_quant.MAX_K + 1) * 127 * 127
    with pytest.raises(TypeError, match="Wb must be uint16"):
        _quant.pack_bf16(numpy.zeros((3, 3), numpy.float32))
    with pytest.raises(ValueError, match="NaN or infinite"):
        REF.quantize_int8(numpy.array([[numpy.nan]], numpy.float32))
    with pytest.raises(TypeError, match="W must be a float array"):
        REF.quantize_int8(numpy.zeros((2, 2), numpy.int32))
    with pytest.raises(TypeError, match="W must be a float array"):
        _quant.to_bf16(numpy.zeros((2, 2), numpy.int32))
    with pytest.raises(TypeError):
        _quant.int8_dense(x, pb, s, b)  # a bf16 pack where an int8 one belongs
    with pytest.raises(TypeError):
        _quant.bf16_dense(x, p, b)
    with pytest.raises(ValueError, match="out must not overlap x"):
        sq = numpy.zeros((4, 6), numpy.float32)
        Wq, s6 = REF.quantize_int8(numpy.ones((6, 6), numpy.float32))
        _quant.int8_dense(sq, _quant.pack_int8(Wq), s6, None, sq)
    with pytest.raises(ValueError, match="x has 9 columns"):
        _quant.bf16_dense(numpy.zeros((2, 9), numpy.float32), pb, b)
    with pytest.raises(TypeError, match="not picklable"):
        import pickle
        pickle.dumps(p)


def test_benchmark_script_runs(repo_root, subprocess_env):
    proc = subprocess.run(
        [sys.executable, str(repo_root / "bench" / "quant_kernels.py"), "--smoke", "--no-ort",
         "--batches", "3", "--threads", "1"],
        cwd=repo_root, env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for name in _quant.available():
        assert f"int8 {name}" in proc.stdout
    assert "fp32 fastnn" in proc.stdout and "bf16 " in proc.stdout
