"""fastnn on a loaded machine: default thread settings against one thread.

    python bench/contention.py                   # two busy-loop hogs, 3 rounds
    python bench/contention.py --hogs 0          # the same without contention
    python bench/contention.py --rounds 5 --json out.json

A server's normal state is a machine whose cores other processes keep busy.
This script starts ``--hogs`` busy-loop processes (default 2: every core of
the 2-core development VM), then times the small workloads in worker
processes that alternate between two settings: ``default`` (whatever fastnn
picks by itself, with no thread variables in the environment) and ``one``
(``fastnn.set_num_threads(1)``). Workers of the two settings alternate
round by round so the host's noise falls on both alike; the table gives
medians and the ratio default / one (the target is at most 1.5).

Workloads (smaller than bench/compare.py's where a slow setting would take
minutes under contention; the sizes are printed):
    train_small   64-128-128-10, batch 32, one epoch of 2048 samples
    digits        64-128-64-10 on load_digits, batch 32, 3 epochs
    infer_b1      784-512-512-10, ``predict_on_batch`` on one row
    fit100        64-256-256-10, batch 32, one epoch of 100 samples
    evaluate100   64-256-256-10, ``evaluate`` on 100 samples, batch 32
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _repo import child_env

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
SETTINGS = ("default", "one")
WORKLOADS = {
    "train_small": "64-128-128-10, batch 32, 1 epoch of 2048 samples (ms)",
    "digits": "64-128-64-10 on load_digits, batch 32, 3 epochs (ms)",
    "infer_b1": "784-512-512-10, predict_on_batch of 1 row (us)",
    "fit100": "64-256-256-10, batch 32, 1 epoch of 100 samples (ms)",
    "evaluate100": "64-256-256-10, evaluate on 100 samples, batch 32 (ms)",
}
UNITS = {"infer_b1": 1e6}


# ====================================================================== worker side
def _model(dims, seed=0):
    from _runners import fastnn_mlp
    return fastnn_mlp(dims, seed)


def _timed(fn, repeats):
    import _workloads as wl
    return wl.measure(fn, repeats, warmup=1)


def run_worker(setting, repeats, smoke=False):
    """Seconds per run of every workload, median of ``repeats`` (after one warm-up)."""
    import _workloads as wl
    import numpy

    import fastnn
    if setting == "one":
        fastnn.set_num_threads(1)
    out = {"threads": fastnn.get_num_threads()}

    x, y = wl.synthetic({"kind": "train", "dims": (64, 128, 128, 10),
                          "samples": 256 if smoke else 2048})
    m = _model((64, 128, 128, 10))
    out["train_small"] = _timed(
        lambda: m.fit(x, y, batch_size=32, epochs=1, shuffle=True, verbose=0), repeats)

    xtr, _, ytr, _ = wl.digits_split()

    def digits():
        d = _model((64, 128, 64, 10))
        d.fit(xtr, ytr, batch_size=32, epochs=1 if smoke else 3, shuffle=True, verbose=0)
    out["digits"] = _timed(digits, repeats)

    big = _model(wl.MEDIUM)
    row = numpy.random.default_rng(0).standard_normal((1, 784), dtype=numpy.float32)
    calls = 5 if smoke else 200
    t = _timed(lambda: [big.predict_on_batch(row) for _ in range(calls)], repeats)
    out["infer_b1"] = [s / calls for s in t]

    x100, y100 = wl.synthetic({"kind": "train", "dims": (64, 256, 256, 10), "samples": 100})
    m100 = _model((64, 256, 256, 10))
    out["fit100"] = _timed(
        lambda: m100.fit(x100, y100, batch_size=32, epochs=1, shuffle=True, verbose=0),
        repeats)
    out["evaluate100"] = _timed(
        lambda: m100.evaluate(x100, y100, batch_size=32, verbose=0), repeats)
    return out


# ====================================================================== parent side
def worker_env():
    return child_env({k: v for k, v in os.environ.items() if k not in THREAD_VARS})


def start_hogs(n):
    code = "while True: pass"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def stop_hogs(hogs):
    for proc in hogs:
        proc.kill()
    for proc in hogs:
        proc.wait()


def run_setting(setting, repeats, timeout, smoke=False):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", setting,
               "--repeats", str(repeats), "--worker-out", str(path)]
        if smoke:
            cmd.append("--smoke")
        proc = subprocess.run(cmd, env=worker_env(), capture_output=True, text=True,
                              timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{setting} worker failed:\n{proc.stderr[-2000:]}")
        return json.loads(path.read_text())


def format_table(pooled, threads, hogs):
    lines = [(f"{hogs} busy-loop process(es) running; default uses {threads['default']} "
              f"thread(s), one uses {threads['one']}"),
             f"{'workload':<13}{'default':>11}{'one':>11}{'default/one':>13}  unit"]
    for name in WORKLOADS:
        scale = UNITS.get(name, 1e3)
        d = statistics.median(pooled["default"][name]) * scale
        o = statistics.median(pooled["one"][name]) * scale
        unit = "us" if scale == 1e6 else "ms"
        lines.append(f"{name:<13}{d:>11.1f}{o:>11.1f}{d / o:>12.2f}x  {unit}")
    lines.append("")
    lines += [f"  {name}: {what}" for name, what in WORKLOADS.items()]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hogs", type=int, default=2, help="busy-loop processes (default 2)")
    p.add_argument("--rounds", type=int, default=3,
                   help="worker pairs (default, one), alternating (default 3)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per worker (default 3)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per worker")
    p.add_argument("--json", metavar="PATH", help="also write the raw times here")
    p.add_argument("--smoke", action="store_true",
                   help="tiny epochs and few calls: checks that the script runs")
    p.add_argument("--worker", choices=SETTINGS, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        report = run_worker(args.worker, args.repeats, args.smoke)
        Path(args.worker_out).write_text(json.dumps(report))
        return 0

    pooled = {s: {name: [] for name in WORKLOADS} for s in SETTINGS}
    threads = {}
    hogs = start_hogs(args.hogs)
    started = time.perf_counter()
    try:
        time.sleep(0.5)  # let the hogs reach full speed
        for r in range(args.rounds):
            for setting in (SETTINGS if r % 2 == 0 else SETTINGS[::-1]):
                print(f"[contention] round {r + 1}/{args.rounds}: {setting}", file=sys.stderr,
                      flush=True)
                rep = run_setting(setting, args.repeats, args.timeout, args.smoke)
                threads[setting] = rep.pop("threads")
                for name, times in rep.items():
                    pooled[setting][name] += times
    finally:
        stop_hogs(hogs)
    print(format_table(pooled, threads, args.hogs))
    print(f"\n({time.perf_counter() - started:.0f} s; CPU: see /proc/cpuinfo)")
    if args.json:
        Path(args.json).write_text(json.dumps({"hogs": args.hogs, "threads": threads,
                                               "times_s": pooled}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
