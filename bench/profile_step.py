"""Where a fastnn training step's time goes, next to the GEMM floor, in one process.

For one workload of ``_workloads.py`` and each thread count, times (per step or
call, medians of interleaved rounds so host noise hits every row alike); for a
training workload:

  floor            the step's GEMMs through NumPy's BLAS (the floor)
  floor_scipy      the same GEMMs through fastnn's gemm: its own sgemm where routed
                   (docs/gemm.md), else scipy's BLAS
  compiled step    the executor's one-call Segment.train_step: GEMMs + elementwise/loss passes
  step + Adam      the same followed by the optimizer update, as in fit
  fit              one shuffled epoch of model.fit, divided by its steps

The differences between rows are the BLAS library's share, fastnn's elementwise
passes, Adam, and the Python loop (batch gathering, metrics, callbacks). For an
inference workload: the forward GEMMs (floor, floor_scipy), the compiled forward
pass, and ``predict_on_batch``.

    python bench/profile_step.py --workload train_medium --threads 1 2
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _numpy_mlp import GemmFloor  # noqa: E402
from _runners import fastnn_mlp  # noqa: E402
from _workloads import SEED, WORKLOADS, synthetic  # noqa: E402


SETTLE_S = 0.3


def _per_step_ms(fn, steps):
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps * 1e3


def profile(workload, threads, rounds, steps):
    import fastnn
    from fastnn._kernels import _blas

    spec = WORKLOADS[workload]
    dims, batch = spec["dims"], spec["batch"]
    fastnn.set_num_threads(threads)
    x, y = synthetic(spec, SEED)
    model = fastnn_mlp(dims, SEED, batchnorm=spec.get("batchnorm", False),
                       dropout=spec.get("dropout", 0.0))
    model.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0)  # warm-up
    executor = model._train_executor(fastnn.backend.get_ops(), batch)
    if executor._one_call is None:
        raise SystemExit(f"{workload} does not train in one compiled call: {executor!r}")
    part = executor.parts[0]
    segment, (op, smoothing, eps) = part.segment, executor._one_call
    team = segment.team_size(batch, threads)
    xb, yb = numpy.ascontiguousarray(x[:batch]), numpy.ascontiguousarray(y[:batch])
    floor = GemmFloor(dims, batch, SEED)
    floor_scipy = GemmFloor(dims, batch, SEED, gemm=_blas.gemm)
    n_steps = -(-spec["samples"] // batch)

    def compiled_step():
        segment.train_step(xb, yb, None, op, smoothing, eps, 1.0 / batch, part.seeds(True),
                           team)

    def step_and_adam():
        compiled_step()
        model.optimizer.apply(model._store)

    def fit_step():
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)

    rows = {"floor": (floor.step, steps), "floor_scipy": (floor_scipy.step, steps),
            "compiled step": (compiled_step, steps), "step + Adam": (step_and_adam, steps),
            "fit": (fit_step, 1)}
    times = {name: [] for name in rows}
    for name, (fn, count) in rows.items():  # warm-up
        fn()
    for _ in range(rounds):
        for name, (fn, count) in rows.items():
            # NumPy and scipy each bring an OpenBLAS whose workers spin for ~0.1 s after a
            # multi-threaded call; a row timed then fights the other pool for the cores.
            time.sleep(SETTLE_S)
            per_call = _per_step_ms(fn, count)
            times[name].append(per_call / n_steps if name == "fit" else per_call)
    return {name: statistics.median(values) for name, values in times.items()}, team


def profile_inference(workload, threads, rounds, calls):
    """Per call: the forward GEMMs through NumPy's and scipy's BLAS, then fastnn's
    compiled forward pass alone and through ``predict_on_batch``."""
    import fastnn
    from fastnn._kernels import _blas

    spec = WORKLOADS[workload]
    dims, batch = spec["dims"], spec["batch"]
    fastnn.set_num_threads(threads)
    x, _ = synthetic(spec, SEED)
    model = fastnn_mlp(dims, SEED)
    model.predict_on_batch(x)
    executor = model._inference_executor()
    floor = GemmFloor(dims, batch, SEED)
    floor_scipy = GemmFloor(dims, batch, SEED, gemm=_blas.gemm)
    rows = {"floor": floor.forward, "floor_scipy": floor_scipy.forward,
            "compiled forward": lambda: executor.predict(x, threads),
            "predict_on_batch": lambda: model.predict_on_batch(x)}
    times = {name: [] for name in rows}
    for fn in rows.values():
        fn()
    for _ in range(rounds):
        for name, fn in rows.items():
            time.sleep(SETTLE_S)
            times[name].append(_per_step_ms(fn, calls))
    return {name: statistics.median(values) for name, values in times.items()}


def report(workload, threads, medians, team):
    floor = medians["floor"]
    team_line = "" if team is None else f", team of {team} in the compiled step"
    unit = "ms/step" if team is not None else "ms/call"
    print(f"\n{workload}, {threads} thread(s){team_line}")
    print(f"  {'row':16s} {unit:>8s} {'of floor':>9s}  share")
    previous = None
    labels = {"floor_scipy": "fastnn's gemm vs NumPy's BLAS", "compiled step": "bias/act/loss passes",
              "step + Adam": "Adam", "fit": "Python loop, gather, metrics",
              "compiled forward": "bias/act, NaN scan, allocation",
              "predict_on_batch": "Python API"}
    for name, value in medians.items():
        share = ""
        if previous is not None:
            share = f"{labels[name]}: {value - medians[previous]:+.3f} ms"
        print(f"  {name:16s} {value:8.3f} {floor / value:9.2f}  {share}")
        previous = name


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="train_medium",
                        choices=[n for n, s in WORKLOADS.items() if s["kind"] != "digits"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20,
                        help="steps (training) or calls (inference) timed per round")
    args = parser.parse_args(argv)
    for threads in args.threads:
        if WORKLOADS[args.workload]["kind"] == "infer":
            medians, team = profile_inference(args.workload, threads, args.rounds,
                                              args.steps), None
        else:
            medians, team = profile(args.workload, threads, args.rounds, args.steps)
        report(args.workload, threads, medians, team)


if __name__ == "__main__":
    main()
