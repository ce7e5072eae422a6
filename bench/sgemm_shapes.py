"""Our float32 GEMM (sgemm.h) against scipy's OpenBLAS sgemm on the products of the
benchmark workloads, one thread.

    python bench/sgemm_shapes.py                     # every workload, every path
    python bench/sgemm_shapes.py --only train_medium_bn --repeats 11
    python bench/sgemm_shapes.py --smoke             # tiny run: checks the harness only
    FASTNN_ISA=avx2 OPENBLAS_CORETYPE=Haswell python bench/sgemm_shapes.py
        # the AVX2 path's routing against OpenBLAS's AVX2 (Haswell) kernels
    python bench/sgemm_shapes.py --fit train_medium_bn train_small
        # also a whole one-thread epoch of fit, gemm routed as usual vs BLAS only

For each Dense layer of a training workload (dims d0..dL, batch b) a step makes
three products, row-major C = op(A) @ op(B): the forward ``fwd`` (b x d_in) @
(d_in x d_out) (NN), the weight gradient ``dW`` X^T @ dZ (TN, d_in x d_out) and,
past the first layer, the input gradient ``dX`` dZ @ W^T (NT, b x d_in);
inference workloads make the forward ones only. Each product is timed with
``_blas.gemm`` on each of our paths, every shape routed to our kernel
(``set_isa(path)``, ``_route_all``), and with ``_blas.gemm`` held to BLAS
(``set_isa("portable")``): the same call, in turn within each repeat, so host noise falls on
both alike; the figure is the best repeat's mean time of one call. "routed" says
whether ``_blas.gemm`` sends the shape to our kernel (``own_sgemm_wins``), and the
totals add, per workload, what ``gemm`` does as routed against BLAS everywhere.
"""
import argparse
import os
import sys
import time

import numpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _repo import use_checkout_if_not_installed  # noqa: E402

use_checkout_if_not_installed()

from threadpoolctl import threadpool_limits  # noqa: E402

from _workloads import WORKLOADS  # noqa: E402
from fastnn._kernels import _blas  # noqa: E402

DEFAULT = ("train_small", "train_medium_bn", "train_large", "infer_b256")


def products(spec):
    """(name, m, n, k, trans_a, trans_b) of one step of a workload."""
    dims, b = spec["dims"], spec["batch"]
    out = []
    for layer, (din, dout) in enumerate(zip(dims[:-1], dims[1:])):
        out.append((f"fwd{layer}", b, dout, din, False, False))
        if spec["kind"] == "train":
            out.append((f"dW{layer}", din, dout, b, True, False))
            if layer > 0:
                out.append((f"dX{layer}", b, din, dout, False, True))
    return out


def parse_shape(text):
    """"MxNxK:OP" -> (name, m, n, k, trans_a, trans_b)."""
    dims, _, op = text.partition(":")
    op = (op or "NN").upper()
    if op not in ("NN", "TN", "NT"):
        raise SystemExit(f"--shapes {text!r}: OP must be NN, TN or NT")
    m, n, k = (int(v) for v in dims.lower().split("x"))
    return (op, m, n, k, op[0] == "T", op[1] == "T")


def operands(rng, m, n, k, ta, tb):
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=numpy.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=numpy.float32)
    return a, b, numpy.empty((m, n), numpy.float32)


def time_in_turn(caps, fn, calls, repeats):
    """Best mean seconds per call of ``fn`` under each ``_blas.set_isa(cap)``, timed
    in turn within each repeat, every shape routed to the path in force."""
    best = [float("inf")] * len(caps)
    for _ in range(repeats):
        for i, cap in enumerate(caps):
            _blas.set_isa(cap)
            previous = _blas._route_all(True)
            try:
                t0 = time.perf_counter()
                for _ in range(calls):
                    fn()
                best[i] = min(best[i], (time.perf_counter() - t0) / calls)
            finally:
                _blas._route_all(previous)
                _blas.set_isa(None)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=list(DEFAULT), choices=sorted(WORKLOADS))
    ap.add_argument("--shapes", nargs="*", default=[], metavar="MxNxK:OP",
                    help="extra products, e.g. 128x256x256:NT (OP is NN, TN or NT)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--flops-per-repeat", type=float, default=5e9,
                    help="calls per repeat: about this many flops")
    ap.add_argument("--fit", nargs="*", default=[], choices=sorted(WORKLOADS), metavar="WORKLOAD",
                    help="also time one epoch of fit (4096 samples, 1 thread) of these "
                         "training workloads, as routed and with BLAS only")
    ap.add_argument("--smoke", action="store_true", help="one repeat of one call")
    args = ap.parse_args(argv)
    paths = [p for p in _blas.available() if p != "blas"]
    if not paths:
        print("this CPU has neither AVX2+FMA nor AVX-512F: every product stays on BLAS")
        return 0
    repeats = 1 if args.smoke else args.repeats
    rng = numpy.random.default_rng(0)
    print(f"paths: {', '.join(paths)} (gemm routes on {_blas.isa()}); 1 thread; "
          f"best of {repeats} repeats")
    head = "".join(f"{p + ' us':>11}{'GF':>7}" for p in paths)
    print(f"{'workload':16} {'product':7} {'m x n x k':>16} {'op':3}{head}"
          f"{'scipy us':>11}{'GF':>7} {'ratio':>6} routed")
    print("(ratio: our current path / scipy; routed: whether gemm uses our kernel for it)")
    groups = [(name, products(WORKLOADS[name])) for name in args.only]
    if args.shapes:
        groups.append(("shapes", [parse_shape(text) for text in args.shapes]))
    with threadpool_limits(1):
        for name, prods in groups:
            tot_route = tot_blas = 0.0
            tot_own = {p: 0.0 for p in paths}
            for pname, m, n, k, ta, tb in prods:
                a, b, out = operands(rng, m, n, k, ta, tb)
                flops = 2.0 * m * n * k
                calls = 1 if args.smoke else max(1, int(args.flops_per_repeat / flops / repeats))
                times = time_in_turn(paths + ["portable"], lambda: _blas.gemm(a, b, out, ta, tb),
                                     calls, repeats)
                routed = _blas.own_sgemm_wins(m, n, k, ta, tb)
                t_blas = times[-1]
                t_cur = times[paths.index(_blas.isa())] if _blas.isa() in paths else t_blas
                tot_blas += t_blas
                tot_route += t_cur if routed else t_blas
                for p, t in zip(paths, times):
                    tot_own[p] += t
                op = ("T" if ta else "N") + ("T" if tb else "N")
                cols = "".join(f"{t * 1e6:11.1f}{flops / t / 1e9:7.1f}" for t in times[:-1])
                print(f"{name:16} {pname:7} {f'{m}x{n}x{k}':>16} {op:3}{cols}"
                      f"{t_blas * 1e6:11.1f}{flops / t_blas / 1e9:7.1f} "
                      f"{t_cur / t_blas:6.3f} {'yes' if routed else 'no'}")
            own = ", ".join(f"{p} everywhere {tot_own[p] / tot_blas:.3f}" for p in paths)
            print(f"{name:16} total: scipy {tot_blas * 1e6:.0f} us; as routed "
                  f"{tot_route * 1e6:.0f} us = {tot_route / tot_blas:.3f}; {own}")
    for name in args.fit:
        fit_ratio(WORKLOADS[name], name, 1 if args.smoke else 5, 256 if args.smoke else 4096)
    return 0


def fit_ratio(spec, name, repeats, samples):
    """One epoch of fit at one thread, gemm routed as usual and BLAS only, in turn."""
    import fastnn
    from _runners import fastnn_mlp
    from _workloads import model_options, synthetic

    if spec["kind"] != "train":
        raise SystemExit(f"--fit {name}: not a training workload")
    spec = dict(spec, samples=samples)
    threads = fastnn.get_num_threads()
    fastnn.set_num_threads(1)
    try:
        x, y = synthetic(spec)
        model = fastnn_mlp(spec["dims"], **model_options(spec))
        best = {}
        for _ in range(repeats):
            for cap in ("portable", None):
                _blas.set_isa(cap)
                try:
                    model.fit(x[:spec["batch"] * 2], y[:spec["batch"] * 2],
                              batch_size=spec["batch"], epochs=1, verbose=0)
                    t0 = time.perf_counter()
                    model.fit(x, y, batch_size=spec["batch"], epochs=1, verbose=0)
                    best[cap] = min(best.get(cap, float("inf")), time.perf_counter() - t0)
                finally:
                    _blas.set_isa(None)
    finally:
        fastnn.set_num_threads(threads)
    print(f"fit {name}: {samples} samples, 1 thread: as routed {best[None] * 1e3:.1f} ms, "
          f"BLAS only {best['portable'] * 1e3:.1f} ms, ratio {best[None] / best['portable']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
