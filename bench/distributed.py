"""Data-parallel training on MPI against one process, on the same cores.

For train_medium and train_large (``_workloads.py``: Adam, one shuffled epoch,
the global batch of the workload), times

  1 proc x 2 thr    one process, ``fastnn.set_num_threads(2)``
  2 ranks x 1 thr   ``mpiexec -n 2``, one thread each, every rank on half of each batch

and, for the MPI run, the gradient allreduce's share of the epoch (its time
summed over the steps, as rank 0 sees it: waiting for the slower rank counts)
and the allreduce of the same buffer alone (both ranks idle, 20 calls), from
which the bandwidth figure in docs/distributed.md's cost model comes.
Configurations alternate in rounds, so host noise falls on both alike.

    python bench/distributed.py                      # both workloads, 3 rounds
    python bench/distributed.py --smoke              # tiny epochs (seconds)
    python bench/distributed.py --only train_medium --rounds 5 --json out.json
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
from _repo import child_env  # noqa: E402

from _workloads import SEED, describe, workloads

NAMES = ("train_medium", "train_large")


# ---------------------------------------------------------------------- worker
def worker(name, smoke, mpi, threads, repeats):
    from _runners import fastnn_mlp
    from _workloads import synthetic

    import fastnn
    spec = workloads(smoke, [name])[name]
    fastnn.set_num_threads(threads)
    x, y = synthetic(spec, SEED)
    model = fastnn_mlp(spec["dims"], SEED)
    reduce_s = [0.0]
    comm = None
    if mpi:
        from fastnn import distributed
        distributed.init()
        model.optimizer = distributed.DistributedOptimizer(model.optimizer)
        comm = model.optimizer.parallel.comm
        _time_gradient_allreduce(comm, reduce_s)
    batch = spec["batch"]
    model.fit(x[:4 * batch], y[:4 * batch], batch_size=batch, epochs=1, verbose=0)  # warm-up
    epochs, reduces = [], []
    for _ in range(repeats):
        reduce_s[0] = 0.0
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, shuffle=True, verbose=0)
        epochs.append(time.perf_counter() - start)
        reduces.append(reduce_s[0])
    result = {"epoch_s": epochs, "samples": int(x.shape[0]), "steps": -(-x.shape[0] // batch),
              "params": int(model._store.size)}
    if mpi:
        result["allreduce_in_step_s"] = reduces
        result["allreduce_alone_s"] = _allreduce_alone(comm, model._store.grads.copy())
        if comm.rank != 0:
            return
    print(json.dumps(result))


def _time_gradient_allreduce(comm, total):
    """Add the time of every gradient allreduce to ``total[0]``."""
    inner = comm.allreduce_

    def timed(buf, what="allreduce"):
        start = time.perf_counter()
        out = inner(buf, what)
        if what == "gradient allreduce":
            total[0] += time.perf_counter() - start
        return out

    comm.allreduce_ = timed


def _allreduce_alone(comm, buf, calls=20):
    comm.barrier()
    start = time.perf_counter()
    for _ in range(calls):
        comm.allreduce_(buf)
    return (time.perf_counter() - start) / calls


# ---------------------------------------------------------------------- driver
def _env(threads):
    return child_env(OMP_NUM_THREADS=str(threads))


def _mpiexec():
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def _launch(name, args, mpi):
    threads = 1 if mpi else 2
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name,
           "--threads", str(threads), "--repeats", str(args.repeats)]
    if args.smoke:
        cmd.append("--smoke")
    if mpi:
        cmd = [_mpiexec(), "-n", "2"] + cmd + ["--mpi"]
    proc = subprocess.run(cmd, env=_env(threads), capture_output=True, text=True,
                          timeout=1800, check=False)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(NAMES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="epochs timed per launch")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--worker")
    parser.add_argument("--mpi", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.smoke, args.mpi, args.threads, args.repeats)
    if _mpiexec() is None:
        sys.exit("no mpiexec found: pip install \"fastnn-toolkit[mpi]\"")
    names = [n for n in args.only.split(",") if n]
    runs = {n: {"single": [], "mpi": []} for n in names}
    for _ in range(args.rounds):
        for name in names:
            for kind in ("single", "mpi"):
                runs[name][kind].append(_launch(name, args, kind == "mpi"))
    rows = []
    load = os.getloadavg()[0]
    print(f"load average at the end: {load:.1f} on {os.cpu_count()} CPUs; samples/s: median "
          f"epoch (fastest epoch)")
    print("| workload | 1 proc x 2 thr | 2 ranks x 1 thr | ranks / proc, median (fastest) "
          "| allreduce share of a step | allreduce alone | grads |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        single = [t for r in runs[name]["single"] for t in r["epoch_s"]]
        mpi = [t for r in runs[name]["mpi"] for t in r["epoch_s"]]
        reduce = [t for r in runs[name]["mpi"] for t in r["allreduce_in_step_s"]]
        alone = statistics.median(r["allreduce_alone_s"] for r in runs[name]["mpi"])
        first = runs[name]["mpi"][0]
        n, params, steps = first["samples"], first["params"], first["steps"]
        s1, s2 = n / statistics.median(single), n / statistics.median(mpi)
        b1, b2 = n / min(single), n / min(mpi)
        share = statistics.median(r / t for r, t in zip(reduce, mpi))
        row = {"workload": name, "describe": describe(workloads(args.smoke, [name])[name]),
               "single_samples_per_s": s1, "mpi_samples_per_s": s2,
               "single_best_samples_per_s": b1, "mpi_best_samples_per_s": b2,
               "allreduce_share": share, "allreduce_alone_ms": alone * 1e3,
               "allreduce_per_step_ms": statistics.median(reduce) / steps * 1e3,
               "step_ms_mpi": statistics.median(mpi) / steps * 1e3,
               "params": params, "raw": runs[name]}
        rows.append(row)
        print(f"| {name} | {s1:,.0f} ({b1:,.0f}) | {s2:,.0f} ({b2:,.0f}) | {s2 / s1:.2f} "
              f"({b2 / b1:.2f}) | {share:.1%} ({row['allreduce_per_step_ms']:.2f} of "
              f"{row['step_ms_mpi']:.1f} ms) | {alone * 1e3:.2f} ms | "
              f"{params * 4 / 2**20:.1f} MiB |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": args.rounds, "smoke": args.smoke,
                                               "load_average": load, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
