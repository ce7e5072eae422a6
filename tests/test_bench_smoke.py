"""The benchmark suite (bench/) still runs: compare.py in smoke mode, and the
pytest-benchmark files once each as plain tests. Speed is never asserted."""
import json
import statistics
import subprocess
import sys

import numpy
import pytest

pytest.importorskip("sklearn")  # the digits workload loads its data from scikit-learn

# The peers that need nothing beyond the test extra; torch/ORT are optional.
FRAMEWORKS = ("fastnn", "numpy", "floor")


@pytest.fixture(scope="module")
def bench_dir(repo_root):
    return repo_root / "bench"


def _workloads(bench_dir):
    sys.path.insert(0, str(bench_dir))
    try:
        import _workloads
        return dict(_workloads.WORKLOADS)
    finally:
        sys.path.remove(str(bench_dir))


def test_compare_smoke(tmp_path, bench_dir, subprocess_env):
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [sys.executable, str(bench_dir / "compare.py"), "--smoke", "--threads", "1", "2",
         "--frameworks", ",".join(FRAMEWORKS), "--json", str(out)],
        cwd=bench_dir.parent, env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["meta"]["smoke"] is True
    assert not doc["errors"] and not doc["skipped"]
    workloads = _workloads(bench_dir)
    assert set(doc["workloads"]) == set(workloads)
    for threads in ("1", "2"):
        results = doc["results"][threads]
        for name, spec in workloads.items():
            rows = results[name]
            expected = {"floor", "numpy"}
            expected |= ({"fastnn.predict_on_batch", "fastnn.predict"}
                         if spec["kind"] == "infer" else {"fastnn"})
            assert expected <= set(rows), (threads, name, sorted(rows))
            for row_name in expected:
                row = rows[row_name]
                assert row["time_s"] > 0, (threads, name, row_name, row)
                assert row["fastnn_speedup"] > 0 and row["of_floor"] > 0, row
                if spec["kind"] == "infer":
                    assert row["samples_per_s"] > 0
                if spec["kind"] == "digits" and row_name != "floor":
                    assert 0 < row["accuracy"] <= 1
    # The table names every workload.
    for name in workloads:
        assert name in proc.stdout


def test_benchmark_files_run_once(tmp_path, bench_dir, subprocess_env):
    pytest.importorskip("pytest_benchmark")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(bench_dir), "--benchmark-disable", "-q",
         "-p", "no:cacheprovider"],
        cwd=tmp_path, env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_compare_rounds_pool_the_repeats(tmp_path, bench_dir, subprocess_env):
    """--rounds runs every worker again, round-robin, and pools the repeats per row."""
    out = tmp_path / "rounds.json"
    proc = subprocess.run(
        [sys.executable, str(bench_dir / "compare.py"), "--smoke", "--threads", "1",
         "--rounds", "2", "--only", "train_small,digits", "--frameworks", "fastnn,floor",
         "--json", str(out)],
        cwd=bench_dir.parent, env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["meta"]["rounds"] == 2
    rows = doc["results"]["1"]
    for name in ("train_small", "digits"):
        for row in rows[name].values():
            assert len(row["times_s"]) == 2  # smoke: 1 repeat per round
            assert row["time_s"] == pytest.approx(statistics.median(row["times_s"]))
    assert len(rows["digits"]["fastnn"]["accuracies"]) == 2


def test_profile_step_runs(bench_dir, subprocess_env):
    proc = subprocess.run(
        [sys.executable, str(bench_dir / "profile_step.py"), "--workload", "train_small",
         "--threads", "1", "--rounds", "1", "--steps", "2"],
        cwd=bench_dir.parent, env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for row in ("floor_scipy", "compiled step", "step + Adam", "fit"):
        assert row in proc.stdout


def test_numpy_batchnorm_mlp_gradients_match_finite_differences(bench_dir):
    """The NumPy peer's BatchNorm + dropout backward, in float64, against central
    differences of its own loss (the dropout mask redrawn identically each call)."""
    sys.path.insert(0, str(bench_dir))
    try:
        from _numpy_mlp import NumpyBatchNormMLP
    finally:
        sys.path.remove(str(bench_dir))
    net = NumpyBatchNormMLP((5, 7, 6, 3), 8, seed=1, dropout=0.25)
    rng = numpy.random.default_rng(3)
    net.weights = [w.astype(numpy.float64) for w in net.weights]
    net.biases = [rng.uniform(-0.5, 0.5, b.shape) for b in net.biases]
    net.gamma = [rng.uniform(0.5, 1.5, g.shape) for g in net.gamma]
    net.beta = [rng.uniform(-0.5, 0.5, b.shape) for b in net.beta]
    net.params = ([p for pair in zip(net.weights, net.biases) for p in pair]
                  + net.gamma + net.beta)
    x, y = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    state = net.rng.bit_generator.state
    captured = []
    net._adam = captured.append  # keep the gradients, leave the parameters

    def loss():
        net.rng.bit_generator.state = state
        return net.step(x, y)

    loss()
    grads = captured[0]
    assert len(grads) == len(net.params)
    dropped = False
    for p, g in zip(net.params, grads):
        numeric = numpy.zeros_like(p)
        for idx in numpy.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + 1e-6
            up = loss()
            p[idx] = old - 1e-6
            down = loss()
            p[idx] = old
            numeric[idx] = (up - down) / 2e-6
        numpy.testing.assert_allclose(g, numeric, rtol=1e-4, atol=1e-7)
        dropped |= bool((g == 0).any())
    assert dropped  # some units were dropped, so the mask took part


def test_compare_reports_a_model_a_framework_cannot_build(tmp_path, bench_dir, subprocess_env):
    """MLPClassifier has no BatchNorm: its train_medium_bn row says why, and the run
    still succeeds with fastnn's row measured."""
    out = tmp_path / "bn.json"
    proc = subprocess.run(
        [sys.executable, str(bench_dir / "compare.py"), "--smoke", "--threads", "1",
         "--only", "train_medium_bn", "--frameworks", "fastnn,sklearn", "--json", str(out)],
        cwd=bench_dir.parent, env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    rows = doc["results"]["1"]["train_medium_bn"]
    assert "batch normalization" in rows["sklearn"]["unavailable"]
    assert rows["fastnn"]["time_s"] > 0
    assert not doc["errors"] and not doc["skipped"]
    assert "unavailable: MLPClassifier" in proc.stdout


def test_quantize_accuracy_bench_runs(bench_dir, subprocess_env, tmp_path):
    """The low-precision accuracy report: int8 within half a point of float32 on
    digits, and an error figure for every quantized layer of the large model."""
    pytest.importorskip("sklearn")
    out = tmp_path / "quantize.json"
    proc = subprocess.run(
        [sys.executable, str(bench_dir / "quantize_accuracy.py"), "--json", str(out)],
        cwd=bench_dir.parent, env=subprocess_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    digits = report["digits"]
    assert abs(digits["int8_accuracy"] - digits["fp32_accuracy"]) <= 0.005
    large = report["train_large_model"]
    assert len(large["int8_layer_errors"]) == 3 and 0 < large["int8_output_rel_error"] < 0.1
