"""fastnn against its peers on the benchmark workloads, side by side in one run.

    python bench/compare.py                       # everything, 1 and 2 threads
    python bench/compare.py --smoke               # tiny sizes, 1 repeat: checks the harness
    python bench/compare.py --threads 1 --only train_small,infer_b1 --json out.json

Each (framework, thread count) runs in its own worker process (this script
with ``--worker``), with OMP/OpenBLAS/MKL thread variables set before any
import, so thread settings and imported libraries never leak between
columns. A worker times every workload after a warm-up and reports medians;
this parent prints the table (speed-ups vs fastnn, fraction of the GEMM
floor) and the JSON. See bench/README.md for what each column means.
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy

import _workloads as wl
from _repo import child_env

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FRAMEWORKS = ("fastnn", "fastnn_int8", "fastnn_bf16", "torch", "sklearn", "numpy",
              "onnxruntime", "onnxruntime_int8", "floor", "floor_scipy")
# Which framework takes part in which kind of workload. The low-precision rows time
# inference only; on digits they report the quantized model's accuracy.
KINDS = {
    "fastnn": {"train", "infer", "digits"},
    "fastnn_int8": {"infer", "digits"},
    "fastnn_bf16": {"infer", "digits"},
    "torch": {"train", "infer", "digits"},
    "sklearn": {"train", "digits"},
    "numpy": {"train", "infer", "digits"},
    "onnxruntime": {"infer"},
    "onnxruntime_int8": {"infer"},
    "floor": {"train", "infer", "digits"},
    "floor_scipy": {"train"},
}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
REFERENCE = {"train": "fastnn", "digits": "fastnn", "infer": "fastnn.predict_on_batch"}


# ====================================================================== worker side
# Per-repeat lists of a digits row, pooled over rounds, and the median each one feeds.
POOLED = {"accuracies": "accuracy", "accuracies_fp32": "accuracy_fp32",
          "rel_errors": "rel_error"}


def run_worker(framework, threads, specs, repeats):
    """Time every workload of ``specs`` on one framework; returns a JSON-able dict."""
    from _runners import RUNNERS, Unavailable
    runner = RUNNERS[framework]()
    report = {"framework": framework, "threads": threads, "results": {}}
    try:
        runner.setup(threads)
    except Unavailable as exc:
        report["skipped"] = str(exc)
        return report
    for name, spec in specs.items():
        if spec["kind"] not in KINDS[framework]:
            continue
        try:
            rows = _run_workload(runner, spec, repeats)
        except Unavailable as exc:  # this framework cannot build this workload's model
            rows = {framework: {"unavailable": str(exc)}}
        except Exception as exc:  # one broken workload must not hide the others
            rows = {framework: {"error": f"{type(exc).__name__}: {exc}",
                                "traceback": traceback.format_exc(limit=6)}}
        report["results"][name] = rows
    report["versions"] = runner.versions()
    return report


def _run_workload(runner, spec, repeats):
    from _runners import output_error
    kind, dims, batch = spec["kind"], spec["dims"], spec["batch"]
    if kind == "train":
        x, y = wl.synthetic(spec)
        xp, yp = runner.prepare(x), runner.prepare(y)
        trainer = runner.trainer(dims, batch, wl.SEED, **wl.model_options(spec))
        warm = min(x.shape[0], 4 * batch)
        trainer.epoch(xp[:warm], yp[:warm])  # warm-up: first-call costs, allocations
        times = wl.measure(lambda: trainer.epoch(xp, yp), repeats, warmup=0)
        return {runner.name: dict(wl.summary(times), unit="epoch",
                                  samples=int(x.shape[0]))}
    if kind == "infer":
        x, _ = wl.synthetic(spec)
        xp = runner.prepare(x)
        calls = spec["calls"]
        rows = {}
        for row, fn in runner.predictors(dims, batch, wl.SEED):
            def loop(fn=fn):
                for _ in range(calls):
                    fn(xp)
            with runner.inference_context():
                times = wl.measure(loop, repeats, warmup=1)
            rows[row] = dict(wl.summary(times, per=calls), unit="call", batch=batch,
                             **runner.fidelity(row, fn, xp))
        return rows
    # digits: a fresh model per repeat, `epochs` epochs, then the test accuracy.
    x_train, x_test, y_train, y_test = wl.digits_split()
    xtr, ytr, xte = runner.prepare(x_train), runner.prepare(y_train), runner.prepare(x_test)
    options = wl.model_options(spec)
    runner.trainer(dims, batch, wl.SEED, **options).train(xtr[:256], ytr[:256], 1)  # warm-up
    times, lists = [], {key: [] for key in POOLED}
    for _ in range(repeats):
        trainer = runner.trainer(dims, batch, wl.SEED, **options)
        times += wl.measure(lambda: trainer.train(xtr, ytr, spec["epochs"]), 1, warmup=0)
        proba = trainer.predict(xte)
        if proba is not None:
            lists["accuracies"].append(_accuracy(proba, y_test))
        reference = getattr(trainer, "reference_predict", None)  # low-precision rows
        if reference is not None:
            ref_proba = reference(xte)
            lists["accuracies_fp32"].append(_accuracy(ref_proba, y_test))
            lists["rel_errors"].append(output_error(proba, ref_proba)["rel_error"])
    row = dict(wl.summary(times), unit="run", epochs=spec["epochs"])
    for key, values in lists.items():
        if values:
            row[key] = values
            row[POOLED[key]] = float(numpy.median(values))
    return {runner.name: row}


def _accuracy(proba, labels):
    return float((numpy.argmax(numpy.asarray(proba), axis=1) == labels).mean())


# ====================================================================== parent side
def worker_env(threads):
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    env = child_env(env)
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def spawn(framework, threads, args, timeout):
    """Run one worker process; returns its report (an error report if it failed)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", framework,
               "--threads", str(threads), "--repeats", str(args.repeats),
               "--worker-out", str(out)]
        if args.smoke:
            cmd.append("--smoke")
        if args.only:
            cmd += ["--only", ",".join(args.only)]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=worker_env(threads), capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"framework": framework, "threads": threads, "results": {},
                    "error": f"worker timed out after {timeout} s"}
        wall = time.perf_counter() - start
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            return {"framework": framework, "threads": threads, "results": {},
                    "error": f"worker exited with {proc.returncode}: {tail}", "wall_s": wall}
        report = json.loads(out.read_text())
        report["wall_s"] = wall
        return report


def _pool(row, other):
    """Add another round's measurements of the same row: repeats pooled, median redone."""
    if "error" in row or "error" in other:
        row.setdefault("error", other.get("error"))
        return
    if "unavailable" in row or "unavailable" in other:
        return
    row["times_s"] = row["times_s"] + other["times_s"]
    row["time_s"] = statistics.median(row["times_s"])
    for key, median_key in POOLED.items():
        if key in other:
            row[key] = row.get(key, []) + other[key]
            row[median_key] = float(numpy.median(row[key]))


def merge(reports, specs, thread_counts):
    """results[threads][workload][row] with ratios to fastnn and to the floor; the
    reports of several rounds are pooled row by row."""
    results = {str(t): {name: {} for name in specs} for t in thread_counts}
    for rep in reports:
        for name, rows in rep.get("results", {}).items():
            merged = results[str(rep["threads"])][name]
            for row_name, row in rows.items():
                if row_name in merged:
                    _pool(merged[row_name], row)
                else:
                    merged[row_name] = dict(row)
    for by_workload in results.values():
        for name, rows in by_workload.items():
            kind = specs[name]["kind"]
            ref = rows.get(REFERENCE[kind], {}).get("time_s")
            floor = rows.get("floor", {}).get("time_s")
            for row in rows.values():
                t = row.get("time_s")
                if not t:
                    continue
                # How many times faster fastnn is than this row (> 1: fastnn wins).
                row["fastnn_speedup"] = t / ref if ref else None
                # Fraction of the GEMM floor's speed this row reaches (1.0 = at the floor).
                row["of_floor"] = floor / t if floor else None
                if kind == "infer":
                    row["samples_per_s"] = row["batch"] / t
    return results


def _value(kind, name, row):
    if kind == "train":
        return f"{row['time_s'] * 1e3:.1f}", "ms/epoch"
    if kind == "infer" and name == "infer_b1":
        return f"{row['time_s'] * 1e6:.1f}", "us/call"
    if kind == "infer":
        return f"{row['samples_per_s']:,.0f}", "samples/s"
    return f"{row['time_s']:.2f}", "s"


def _spread(row):
    ts = row.get("times_s") or []
    if len(ts) < 2:
        return "-"
    return f"{(max(ts) - min(ts)) / row['time_s'] * 100:.0f}%"


def format_table(results, specs, skipped):
    lines = []
    for threads, by_workload in results.items():
        lines.append(f"\n=== {threads} thread{'s' if threads != '1' else ''} ===")
        for name, rows in by_workload.items():
            spec = specs[name]
            lines.append(f"\n{name}: {wl.describe(spec)}")
            if not rows:
                lines.append("  (no results)")
                continue
            unit = _value(spec["kind"], name, {"time_s": 1.0, "samples_per_s": 1.0})[1]
            header = f"  {'framework':<30}{unit:>12}{'spread':>8}{'fastnn x':>10}{'of floor':>10}"
            if spec["kind"] == "digits":
                header += f"{'accuracy':>10}"
            low_precision = any("rel_error" in row for row in rows.values())
            if low_precision:
                header += f"{'rel err':>10}"
            lines.append(header)
            for row_name, row in rows.items():
                if "error" in row:
                    lines.append(f"  {row_name:<30}  error: {row['error'][:80]}")
                    continue
                if "unavailable" in row:
                    lines.append(f"  {row_name:<30}  unavailable: {row['unavailable'][:80]}")
                    continue
                value, _ = _value(spec["kind"], name, row)
                speed = row.get("fastnn_speedup")
                floor = row.get("of_floor")
                line = (f"  {row_name:<30}{value:>12}{_spread(row):>8}"
                        f"{(f'{speed:.2f}x' if speed else '-'):>10}"
                        f"{(f'{floor:.2f}' if floor else '-'):>10}")
                if spec["kind"] == "digits":
                    acc = row.get("accuracy")
                    line += f"{(f'{acc:.4f}' if acc is not None else '-'):>10}"
                if low_precision:
                    err = row.get("rel_error")
                    line += f"{(f'{err:.1e}' if err is not None else '-'):>10}"
                lines.append(line)
    if skipped:
        lines.append("")
        for what, why in skipped.items():
            lines.append(f"skipped {what}: {why}")
    lines.append("\nfastnn x: this row's time / fastnn's (above 1: fastnn is faster). "
                 "of floor: the GEMM floor's time / this row's (1.00 = at the BLAS bound).")
    if any("rel_error" in row for by_workload in results.values()
           for rows in by_workload.values() for row in rows.values()):
        lines.append("rel err: ||low - fp32|| / ||fp32|| of a low-precision row's outputs "
                     "against the fp32 model with the same weights, on the same inputs.")
    return "\n".join(lines)


def fastnn_checkout():
    """The directory holding the fastnn the workers import (PYTHONPATH first), else this
    checkout: its commit is the one measured."""
    spec = importlib.util.find_spec("fastnn")
    if spec is not None and spec.origin:
        return Path(spec.origin).resolve().parent.parent
    return REPO


def machine_info():
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "machine": platform.machine(), "cpu": platform.processor() or None,
            "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        info["fastnn_commit"] = subprocess.run(
            ["git", "-C", str(fastnn_checkout()), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["fastnn_commit"] = None
    return info


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true",
                   help="tiny epochs, few calls, 1 repeat: checks that everything runs")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="thread counts to compare (default: 1 2)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per measurement, after warm-up (default 5; smoke 1)")
    p.add_argument("--json", metavar="PATH",
                   help="write the JSON here (default: print it after the table; '-' = stdout)")
    p.add_argument("--only", type=lambda s: [w for w in s.split(",") if w],
                   help=f"comma-separated workloads out of {','.join(wl.WORKLOADS)}")
    p.add_argument("--frameworks", type=lambda s: [f for f in s.split(",") if f],
                   default=list(FRAMEWORKS),
                   help=f"comma-separated, out of {','.join(FRAMEWORKS)} (default: all)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run every worker this many times, round-robin, and pool their "
                        "repeats: host noise then falls on every row alike (default 1)")
    p.add_argument("--timeout", type=float, default=3600,
                   help="seconds before one worker process is abandoned (default 3600)")
    p.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in args.only or []:
        if name not in wl.WORKLOADS:
            p.error(f"unknown workload {name!r}; known: {', '.join(wl.WORKLOADS)}")
    for name in args.frameworks:
        if name not in FRAMEWORKS:
            p.error(f"unknown framework {name!r}; known: {', '.join(FRAMEWORKS)}")
    if any(t < 1 for t in args.threads):
        p.error("--threads needs positive counts")
    if args.repeats is None:
        args.repeats = 1 if args.smoke else 5
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if not args.smoke and args.repeats * args.rounds < 5 and not args.worker:
        print("note: fewer than 5 repeats; medians will be noisy", file=sys.stderr)
    return args


def main(argv=None):
    args = parse_args(argv)
    specs = wl.workloads(args.smoke, args.only)
    if args.worker:
        report = run_worker(args.worker, args.threads[0], specs, args.repeats)
        Path(args.worker_out).write_text(json.dumps(report))
        return 0

    started = time.perf_counter()
    reports, skipped, errors = [], {}, {}
    for round_index in range(args.rounds):
        for threads in args.threads:
            for framework in args.frameworks:
                if not any(s["kind"] in KINDS[framework] for s in specs.values()):
                    continue
                print(f"[compare] round {round_index + 1}/{args.rounds}: {framework}, "
                      f"{threads} thread(s)...", file=sys.stderr, flush=True)
                rep = spawn(framework, threads, args, args.timeout)
                print(f"[compare]   done in {rep.get('wall_s', 0):.1f} s", file=sys.stderr,
                      flush=True)
                if "skipped" in rep:
                    skipped.setdefault(framework, rep["skipped"])
                if "error" in rep:
                    errors[f"{framework}@{threads}"] = rep["error"]
                reports.append(rep)

    results = merge(reports, specs, args.threads)
    for threads, by_workload in results.items():
        for name, rows in by_workload.items():
            for row_name, row in rows.items():
                if "error" in row:
                    errors[f"{row_name}@{threads}/{name}"] = row["error"]
    doc = {
        "meta": dict(machine_info(),
                     date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                     smoke=args.smoke, repeats=args.repeats, rounds=args.rounds,
                     threads=args.threads,
                     frameworks=args.frameworks, wall_s=time.perf_counter() - started,
                     versions={f"{r['framework']}@{r['threads']}": r.get("versions", {})
                               for r in reports},
                     worker_wall_s={f"{r['framework']}@{r['threads']}": r.get("wall_s")
                                    for r in reports}),
        "workloads": {name: dict(spec, dims=list(spec["dims"]), description=wl.describe(spec))
                      for name, spec in specs.items()},
        "results": results,
        "skipped": skipped,
        "errors": errors,
    }
    worker_errors = {k: f"error: {v}" for k, v in errors.items() if "/" not in k}
    table = format_table(results, specs, dict(skipped, **worker_errors))
    text = json.dumps(doc, indent=2)
    if args.json and args.json != "-":
        Path(args.json).write_text(text + "\n")
        print(table)
        print(f"\nJSON written to {args.json}")
    else:
        print(table)
        print()
        print(text)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
