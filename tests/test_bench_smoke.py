"""The benchmark suite (bench/) still runs: compare.py in smoke mode, and the
pytest-benchmark files once each as plain tests. Speed is never asserted."""
import json
import statistics
import subprocess
import sys

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
