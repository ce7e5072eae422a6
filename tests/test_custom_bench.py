"""bench/custom_code.py still runs (tiny sizes; speed is never asserted here)."""
import subprocess
import sys


def test_custom_code_bench_runs(repo_root, subprocess_env):
    proc = subprocess.run(
        [sys.executable, str(repo_root / "bench" / "custom_code.py"), "--batches", "8",
         "--steps", "2", "--rounds", "1", "--width", "16", "--backend", "numpy"],
        cwd=repo_root, env=subprocess_env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[2:]]
    assert [row[0] for row in rows] == ["lambda", "loss", "loss_lbl"]
    assert all(float(row[-1]) > 0 for row in rows)
