"""A/B: compare.py against two fastnn checkouts, alternately, then head / base per row.

    python bench/compare_commits.py /work/base . --only infer_b1 --frameworks fastnn
    python bench/compare_commits.py BASE HEAD --rounds 3 --json ab.json \\
        --only train_medium,infer_b256 --frameworks fastnn,torch --threads 1 2 --repeats 3

Each checkout must hold a built fastnn (``setup.py build_ext --inplace``). The
harness is always this script's own ``bench/compare.py``; only the fastnn package
changes: every compare.py run gets ``PYTHONPATH=<checkout>``, so its workers
import that checkout's fastnn (each worker records ``fastnn.__file__``, checked
here). Runs alternate base, head, base, head, ... for ``--rounds`` rounds, so a
noisy minute falls on both; the repeats of all rounds are pooled per row and the
table shows the medians and head / base (below 1: head is faster). Peers that do
not import fastnn (torch, onnxruntime) make a control: their ratio shows the noise.
Every other option goes to compare.py unchanged.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMPARE = HERE / "compare.py"
LABELS = ("base", "head")


def checkout_env(checkout):
    """The environment of a compare.py run that must import ``checkout``'s fastnn."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(checkout), env.get("PYTHONPATH", "")) if p)
    return env


def imported_fastnn(checkout):
    """``fastnn.__file__`` as a child with ``checkout_env`` imports it; raises if it is
    not ``checkout``'s own (not built, or shadowed by another fastnn)."""
    proc = subprocess.run([sys.executable, "-c", "import fastnn; print(fastnn.__file__)"],
                          env=checkout_env(checkout), cwd=checkout, capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"cannot import fastnn from {checkout}:\n{proc.stderr.strip()[-2000:]}"
                         "\n(build it there: python setup.py build_ext --inplace -q)")
    path = Path(proc.stdout.strip()).resolve()
    if not path.is_relative_to(checkout):
        raise SystemExit(f"with PYTHONPATH={checkout} the child imports {path}, another fastnn")
    return str(path)


def commit_of(checkout):
    proc = subprocess.run(["git", "-C", str(checkout), "describe", "--always", "--dirty"],
                          capture_output=True, text=True, timeout=30)
    return proc.stdout.strip() or None


def run_compare(checkout, passthrough, timeout):
    """One compare.py run against ``checkout``; returns its JSON document."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "compare.json"
        cmd = [sys.executable, str(COMPARE), *passthrough, "--json", str(out)]
        proc = subprocess.run(cmd, env=checkout_env(checkout), cwd=checkout,
                              capture_output=True, text=True, timeout=timeout)
        if not out.exists():
            raise SystemExit(f"compare.py failed against {checkout} (exit {proc.returncode}):\n"
                             f"{proc.stderr.strip()[-3000:]}")
        doc = json.loads(out.read_text())
    doc["meta"]["exit_code"] = proc.returncode
    return doc


def check_workers(doc, checkout):
    """Every fastnn worker of ``doc`` imported ``checkout``'s fastnn; returns the files."""
    files = set()
    for worker, versions in doc["meta"]["versions"].items():
        path = versions.get("fastnn_file")
        if path is None:
            continue
        if not Path(path).resolve().is_relative_to(checkout):
            raise SystemExit(f"worker {worker} imported {path}, not {checkout}'s fastnn")
        files.add(path)
    return sorted(files)


def pool(docs):
    """times[threads][workload][row] = every repeat of every round of ``docs``."""
    times = {}
    for doc in docs:
        for threads, by_workload in doc["results"].items():
            for name, rows in by_workload.items():
                for row_name, row in rows.items():
                    if "times_s" in row:
                        (times.setdefault(threads, {}).setdefault(name, {})
                         .setdefault(row_name, []).extend(row["times_s"]))
    return times


def summarize(pooled, workloads):
    """Per threads, workload and row: base and head medians (seconds) and head / base."""
    out = {}
    base, head = pooled["base"], pooled["head"]
    for threads in sorted(set(base) | set(head), key=int):
        for name in workloads:
            rows_b, rows_h = base.get(threads, {}).get(name, {}), head.get(threads, {}).get(name, {})
            for row in list(rows_b) + [r for r in rows_h if r not in rows_b]:
                tb, th = rows_b.get(row), rows_h.get(row)
                mb = statistics.median(tb) if tb else None
                mh = statistics.median(th) if th else None
                out.setdefault(threads, {}).setdefault(name, {})[row] = {
                    "base_s": mb, "head_s": mh, "ratio": mh / mb if mb and mh else None,
                    "base_n": len(tb or []), "head_n": len(th or [])}
    return out


def _fmt(seconds, name, workloads):
    if seconds is None:
        return "-"
    spec = workloads[name]
    if spec["kind"] == "train":
        return f"{seconds * 1e3:.1f} ms"
    if spec["kind"] == "infer" and spec["batch"] == 1:
        return f"{seconds * 1e6:.1f} us"
    if spec["kind"] == "infer":
        return f"{spec['batch'] / seconds:,.0f}/s"
    return f"{seconds:.2f} s"


def format_summary(summary, workloads, checkouts):
    lines = [f"base: {checkouts['base']['path']} ({checkouts['base']['commit']})",
             f"head: {checkouts['head']['path']} ({checkouts['head']['commit']})"]
    for threads, by_workload in summary.items():
        lines.append(f"\n=== {threads} thread{'s' if threads != '1' else ''} ===")
        lines.append(f"  {'workload':<16}{'row':<30}{'base':>14}{'head':>14}{'head/base':>11}")
        for name, rows in by_workload.items():
            for row, s in rows.items():
                ratio = f"{s['ratio']:.3f}" if s["ratio"] else "-"
                lines.append(f"  {name:<16}{row:<30}{_fmt(s['base_s'], name, workloads):>14}"
                             f"{_fmt(s['head_s'], name, workloads):>14}{ratio:>11}")
    lines.append("\nMedians over every repeat of every round (infer_b256: samples/s of the "
                 "median call). head/base: ratio of median times (below 1: head is faster).")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Any other option (--only, --frameworks, --threads, "
                                       "--repeats, --smoke, ...) is passed to compare.py.")
    p.add_argument("base", type=Path, help="the base checkout (built in place)")
    p.add_argument("head", type=Path, help="the head checkout (built in place)")
    p.add_argument("--rounds", type=int, default=2,
                   help="base, head pairs to run, alternately (default 2)")
    p.add_argument("--json", metavar="PATH", help="write every round's JSON and the summary here")
    p.add_argument("--timeout", type=float, default=7200,
                   help="seconds before one compare.py run is abandoned (default 7200)")
    args, passthrough = p.parse_known_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if "--json" in passthrough or "--rounds" in passthrough:
        p.error("--json and --rounds are this script's own options")
    args.base, args.head = args.base.resolve(), args.head.resolve()
    return args, passthrough


def main(argv=None):
    args, passthrough = parse_args(argv)
    checkouts = {}
    for label, path in zip(LABELS, (args.base, args.head)):
        checkouts[label] = {"path": str(path), "commit": commit_of(path),
                            "fastnn_file": imported_fastnn(path)}
        print(f"[ab] {label}: {path} ({checkouts[label]['commit']}) imports "
              f"{checkouts[label]['fastnn_file']}", file=sys.stderr, flush=True)
    docs = {label: [] for label in LABELS}
    for round_index in range(args.rounds):
        for label in LABELS:
            path = Path(checkouts[label]["path"])
            print(f"[ab] round {round_index + 1}/{args.rounds}: {label}...", file=sys.stderr,
                  flush=True)
            doc = run_compare(path, passthrough, args.timeout)
            files = check_workers(doc, path)
            print(f"[ab]   workers imported {', '.join(files) or '(no fastnn worker)'}; "
                  f"{doc['meta']['wall_s']:.0f} s", file=sys.stderr, flush=True)
            if doc["errors"]:
                print(f"[ab]   errors: {doc['errors']}", file=sys.stderr, flush=True)
            docs[label].append(doc)
    workloads = docs["base"][0]["workloads"]
    summary = summarize({label: pool(docs[label]) for label in LABELS}, workloads)
    print(format_summary(summary, workloads, checkouts))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "meta": {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                     "rounds": args.rounds, "compare_args": passthrough,
                     "checkouts": checkouts},
            "summary": summary, "runs": docs}, indent=2) + "\n")
        print(f"\nJSON written to {args.json}")
    return 1 if any(d["errors"] for runs in docs.values() for d in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
