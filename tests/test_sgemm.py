"""The float32 GEMM of sgemm.h against a float64 NumPy reference, on every path the
CPU runs, and the routing of ``_blas.gemm`` between it and BLAS."""
import threading

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from fastnn._kernels import _blas

PATHS = [p for p in _blas.available() if p != "blas"]
LAYOUTS = [(False, False), (True, False), (False, True), (True, True)]
LAYOUT_IDS = ["NN", "TN", "NT", "TT"]
EPS = numpy.finfo(numpy.float32).eps

needs_path = pytest.mark.skipif(not PATHS, reason="the CPU has neither AVX2+FMA nor AVX-512F")


@pytest.fixture(autouse=True)
def _restore_isa():
    yield
    _blas.set_isa(None)


def _operands(rng, m, n, k, ta, tb, pad=0):
    """op(A) (m, k) and op(B) (k, n) as stored (transposed when asked), each a view
    of a wider parent when ``pad``: rows longer than the row, as gemm_share passes."""
    def make(rows, cols):
        parent = rng.uniform(-1, 1, size=(rows, cols + pad)).astype(numpy.float32)
        return parent[:, :cols]
    a = make(k, m) if ta else make(m, k)
    b = make(n, k) if tb else make(k, n)
    return a, b


def _check(a, b, out, ta, tb, base=None):
    """out against the float64 product, within the float32 bound k * eps * (|A| @ |B|)."""
    a64 = (a.T if ta else a).astype(numpy.float64)
    b64 = (b.T if tb else b).astype(numpy.float64)
    ref = a64 @ b64
    if base is not None:
        ref += base
    k = a64.shape[1]
    bound = 2 * (k + 2) * EPS * (numpy.abs(a64) @ numpy.abs(b64))
    if base is not None:
        bound += 2 * EPS * numpy.abs(base)
    err = numpy.abs(out.astype(numpy.float64) - ref)
    assert numpy.all(err <= bound + 1e-30), (float(err.max()), float((err - bound).max()))


EDGE_M = (1, 7, 12, 13, 17, 31, 33, 128)
EDGE_N = (1, 7, 10, 15, 16, 17, 31, 32, 33, 64)
EDGE_K = (1, 7, 16, 255, 256, 257, 784)


@needs_path
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("ta,tb", LAYOUTS, ids=LAYOUT_IDS)
def test_edge_shapes_match_reference(path, ta, tb):
    rng = numpy.random.default_rng(1)
    for m in EDGE_M:
        for n in EDGE_N:
            for k in EDGE_K:
                a, b = _operands(rng, m, n, k, ta, tb)
                out = numpy.full((m, n), numpy.nan, dtype=numpy.float32)  # beta 0 never reads it
                _blas.own_sgemm(a, b, out, ta, tb, isa=path)
                _check(a, b, out, ta, tb)


@needs_path
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("ta,tb", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("m,n,k", [(128, 512, 784), (784, 512, 128), (128, 10, 512),
                                   (33, 47, 300), (5, 3, 2)])
def test_strided_operands_and_output(path, ta, tb, m, n, k):
    rng = numpy.random.default_rng(2)
    a, b = _operands(rng, m, n, k, ta, tb, pad=5)
    parent = numpy.full((m, n + 9), 7.0, dtype=numpy.float32)
    out = parent[:, 3:3 + n]
    _blas.own_sgemm(a, b, out, ta, tb, isa=path)
    _check(a, b, out, ta, tb)
    # Columns of the parent outside the block are untouched by the masked stores.
    assert numpy.all(parent[:, :3] == 7.0) and numpy.all(parent[:, 3 + n:] == 7.0)


@needs_path
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("ta,tb", LAYOUTS, ids=LAYOUT_IDS)
def test_beta_one_accumulates(path, ta, tb):
    rng = numpy.random.default_rng(3)
    for m, n, k in [(128, 512, 600), (13, 10, 7), (40, 33, 257)]:
        a, b = _operands(rng, m, n, k, ta, tb)
        base = rng.uniform(-1, 1, size=(m, n)).astype(numpy.float32)
        out = base.copy()
        _blas.own_sgemm(a, b, out, ta, tb, beta=1.0, isa=path)
        _check(a, b, out, ta, tb, base=base.astype(numpy.float64))


@needs_path
@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 70), n=st.integers(1, 70), k=st.integers(1, 300),
       layout=st.sampled_from(LAYOUTS), path=st.sampled_from(PATHS or ["blas"]),
       pad=st.integers(0, 3), seed=st.integers(0, 2**31))
def test_property_any_shape(m, n, k, layout, path, pad, seed):
    ta, tb = layout
    rng = numpy.random.default_rng(seed)
    a, b = _operands(rng, m, n, k, ta, tb, pad=pad)
    out = numpy.empty((m, n), dtype=numpy.float32)
    _blas.own_sgemm(a, b, out, ta, tb, isa=path)
    _check(a, b, out, ta, tb)


def test_own_sgemm_refuses_bad_arguments():
    a = numpy.ones((4, 5), numpy.float32)
    b = numpy.ones((5, 6), numpy.float32)
    out = numpy.empty((4, 6), numpy.float32)
    with pytest.raises(ValueError, match="not available|do not agree|beta"):
        _blas.own_sgemm(a, b, out, isa="blas")
    _blas.set_isa("portable")
    with pytest.raises(ValueError, match="no path of our own"):
        _blas.own_sgemm(a, b, out)
    _blas.set_isa(None)
    if PATHS:
        with pytest.raises(ValueError, match="do not agree"):
            _blas.own_sgemm(a, b, numpy.empty((4, 5), numpy.float32))
        with pytest.raises(ValueError, match="beta"):
            _blas.own_sgemm(a, b, out, beta=0.5)
        with pytest.raises(ValueError, match="contiguous rows"):
            _blas.own_sgemm(numpy.ones((4, 10), numpy.float32)[:, ::2], b, out)


def test_set_isa_names_and_cap():
    assert _blas.set_isa("portable") == "blas"
    assert _blas.own_sgemm_wins(128, 512, 784) is False
    with pytest.raises(ValueError, match="unknown instruction set"):
        _blas.set_isa("sse9")
    assert _blas.isa() == "blas"  # a refused name leaves the cap as it was
    best = _blas.set_isa("native")
    assert best == (_blas.available()[-1])
    if "avx2" in _blas.available():
        assert _blas.set_isa("avx2") == "avx2"


@needs_path
@pytest.mark.parametrize("path", PATHS)
def test_gemm_routes_winning_shapes_to_own_kernel(path):
    """Under a one-thread BLAS pool, gemm gives the same bits as own_sgemm for a
    shape the policy sends to it, and BLAS's for one it keeps (float64 always BLAS)."""
    _blas.set_isa(path)
    rng = numpy.random.default_rng(4)
    a = rng.standard_normal((128, 784), dtype=numpy.float32)
    b = rng.standard_normal((784, 512), dtype=numpy.float32)
    assert _blas.own_sgemm_wins(128, 512, 784)
    with threadpool_limits(1):
        routed = numpy.empty((128, 512), numpy.float32)
        _blas.gemm(a, b, routed)
        own = numpy.empty_like(routed)
        _blas.own_sgemm(a, b, own)
        _blas.set_isa("portable")
        blas = numpy.empty_like(routed)
        _blas.gemm(a, b, blas)
    assert numpy.array_equal(routed, own)
    assert not numpy.array_equal(blas, own)  # the check above can tell the two apart
    _check(a, b, routed, False, False)


@needs_path
def test_a_blas_pool_of_several_threads_keeps_blas():
    """With OpenBLAS's pool above one thread (read from the library scipy's BLAS uses),
    gemm leaves even a winning shape to BLAS, which splits it over the cores."""
    from threadpoolctl import threadpool_info
    if not any(i.get("internal_api") == "openblas" for i in threadpool_info()):
        pytest.skip("scipy's BLAS is not OpenBLAS: its pool size is not read")
    rng = numpy.random.default_rng(9)
    a = rng.standard_normal((128, 784), dtype=numpy.float32)
    b = rng.standard_normal((784, 512), dtype=numpy.float32)
    own = numpy.empty((128, 512), numpy.float32)
    _blas.own_sgemm(a, b, own)
    one, two = numpy.empty_like(own), numpy.empty_like(own)
    with threadpool_limits(1):
        _blas.gemm(a, b, one)
    with threadpool_limits(2):
        _blas.gemm(a, b, two)
    assert numpy.array_equal(one, own)
    assert not numpy.array_equal(two, own)
    _check(a, b, two, False, False)


def test_routing_policy():
    """The measured policy: narrow and small products stay on BLAS on the AVX-512
    path, large A^T @ B on the AVX2 path, and products too big for L2 on both."""
    if "avx512" in _blas.available():
        _blas.set_isa("avx512")
        assert _blas.own_sgemm_wins(128, 512, 784)
        assert _blas.own_sgemm_wins(784, 512, 128, True, False)
        assert _blas.own_sgemm_wins(128, 512, 10, False, True)
        assert not _blas.own_sgemm_wins(128, 10, 512)
        assert not _blas.own_sgemm_wins(32, 128, 128)
        assert _blas.own_sgemm_wins(32, 128, 128, False, True)
        assert not _blas.own_sgemm_wins(512, 2048, 2048)
        assert not _blas.own_sgemm_wins(2, 512, 512, False, True)
        assert _blas.own_sgemm_wins(4, 512, 784)
    if "avx2" in _blas.available():
        _blas.set_isa("avx2")
        assert _blas.own_sgemm_wins(128, 512, 784)
        assert _blas.own_sgemm_wins(128, 10, 512)
        assert not _blas.own_sgemm_wins(784, 512, 128, True, False)
        assert _blas.own_sgemm_wins(128, 128, 32, True, False)
        assert not _blas.own_sgemm_wins(512, 2048, 2048, False, True)
        assert not _blas.own_sgemm_wins(128, 1, 512)
        assert not _blas.own_sgemm_wins(128, 512, 1, False, True)
        assert not _blas.own_sgemm_wins(1, 512, 512)
        assert not _blas.own_sgemm_wins(128, 512, 784, True, True)
    _blas.set_isa("portable")
    assert not _blas.own_sgemm_wins(128, 512, 784)


def test_gemm_float64_stays_exact():
    rng = numpy.random.default_rng(5)
    a = rng.standard_normal((64, 80))
    b = rng.standard_normal((80, 48))
    out = numpy.empty((64, 48))
    _blas.gemm(a, b, out)
    numpy.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)


@needs_path
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("ta,tb", LAYOUTS, ids=LAYOUT_IDS)
def test_gemm_alpha_beta_through_routing(path, ta, tb):
    """alpha and beta through gemm with every product our kernel can take sent to it
    (beta 0 and 1 run there; other alpha/beta fall back to BLAS)."""
    rng = numpy.random.default_rng(6)
    a, b = _operands(rng, 64, 96, 130, ta, tb)
    a, b = numpy.ascontiguousarray(a), numpy.ascontiguousarray(b)
    base = rng.standard_normal((64, 96)).astype(numpy.float32)
    _blas.set_isa(path)
    previous = _blas._route_all(True)
    try:
        with threadpool_limits(1):
            _check_alpha_beta(a, b, base, ta, tb)
    finally:
        _blas._route_all(previous)


def _check_alpha_beta(a, b, base, ta, tb):
    for alpha, beta in [(1.0, 0.0), (1.0, 1.0), (0.5, 0.0), (2.0, 0.25)]:
        out = base.copy()
        _blas.gemm(a, b, out, ta, tb, alpha, beta)
        ref = alpha * ((a.T if ta else a).astype(numpy.float64)
                       @ (b.T if tb else b).astype(numpy.float64)) + beta * base
        numpy.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


@needs_path
def test_concurrent_calls_are_independent():
    """Many threads at once (predict is called from many): no shared scratch."""
    rng = numpy.random.default_rng(7)
    cases = []
    for t in range(8):
        m, n, k = 40 + t, 100 + 3 * t, 300 + 7 * t
        a = rng.standard_normal((m, k), dtype=numpy.float32)
        b = rng.standard_normal((k, n), dtype=numpy.float32)
        cases.append((a, b, numpy.empty((m, n), numpy.float32)))
    errors = []

    def work(a, b, out):
        try:
            for _ in range(20):
                out[...] = numpy.nan
                _blas.own_sgemm(a, b, out)
                _check(a, b, out, False, False)
        except AssertionError as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=c) for c in cases]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


@needs_path
@pytest.mark.parametrize("path", PATHS)
def test_training_with_every_product_on_own_kernel_matches_blas(path):
    """fit and predict (Dense, BatchNorm, the compiled executor's gemm_share) with every
    float32 product sent to our kernel agree with the same run on BLAS."""
    import fastnn
    from fastnn import layers

    rng = numpy.random.default_rng(8)
    x = rng.standard_normal((96, 37)).astype(numpy.float32)
    y = rng.integers(0, 5, size=96)

    def run(cap, route):
        _blas.set_isa(cap)
        previous = _blas._route_all(route)
        threads = fastnn.get_num_threads()
        fastnn.set_num_threads(1)  # a one-thread BLAS pool: gemm may route to our kernel
        try:
            fastnn.utils.set_random_seed(3)
            model = fastnn.Sequential([fastnn.Input(shape=(37,)), layers.Dense(48),
                                       layers.BatchNormalization(), layers.ReLU(),
                                       layers.Dense(33, activation="relu"),
                                       layers.Dense(5, activation="softmax")])
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
            return [w.copy() for w in model.get_weights()], model.predict(x, verbose=0)
        finally:
            fastnn.set_num_threads(threads)
            _blas._route_all(previous)
            _blas.set_isa(None)

    ours_w, ours_p = run(path, True)
    blas_w, blas_p = run("portable", False)
    assert not numpy.array_equal(ours_p, blas_p)  # the two runs took different kernels
    for a, b in zip(ours_w, blas_w):
        numpy.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    numpy.testing.assert_allclose(ours_p, blas_p, rtol=1e-3, atol=1e-5)


def test_benchmark_script_runs(repo_root, subprocess_env):
    import subprocess
    import sys
    proc = subprocess.run(
        [sys.executable, str(repo_root / "bench" / "sgemm_shapes.py"), "--smoke",
         "--only", "train_small", "--shapes", "20x33x17:NT", "--fit", "train_small"],
        cwd=repo_root, env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    if PATHS:
        assert "train_small      total:" in proc.stdout and "20x33x17 NT" in proc.stdout
        assert "fit train_small: 256 samples" in proc.stdout
    else:
        assert "every product stays on BLAS" in proc.stdout
