"""Low-precision weight kernels (fastnn._kernels._quant) against float32 and ONNX Runtime.

    python bench/quant_kernels.py                  # batch 1 and 256, 1 and 2 threads
    python bench/quant_kernels.py --batches 1 16 256 --threads 1 --repeats 11
    python bench/quant_kernels.py --smoke          # tiny run: checks the harness only

The model is a 784-512-512-10 MLP (ReLU hidden layers, float32 bias) with
random He-scaled weights. Each row of the table is one forward pass of the
whole model: fastnn float32 (its compiled inference program), NumPy float32 (BLAS
``x @ W``), fastnn int8 on every path this CPU has (``set_isa``), fastnn bf16 on
every bf16 path, and ONNX Runtime float32 and int8 (``quantize_dynamic`` of an
ONNX graph of the same model, built with onnx.helper), all in one run, in turn
for each repeat, so host noise falls on all alike. Figures: median over
repeats of the mean time of one call, in microseconds (and the best repeat, less
exposed to other processes on a shared host), and samples per second;
"err" is the largest output difference from the float32 model relative to the
largest float32 output.
"""
import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _repo import use_checkout_if_not_installed  # noqa: E402

use_checkout_if_not_installed()

from fastnn._kernels import _quant  # noqa: E402
from fastnn.backend.ops import Ops  # noqa: E402

DIMS = (784, 512, 512, 10)


def make_model(seed=0):
    rng = numpy.random.default_rng(seed)
    Ws, bs = [], []
    for din, dout in zip(DIMS[:-1], DIMS[1:]):
        Ws.append((rng.standard_normal((din, dout)) * numpy.sqrt(2.0 / din)).astype(numpy.float32))
        bs.append((0.1 * rng.standard_normal(dout)).astype(numpy.float32))
    return Ws, bs


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# --------------------------------------------------------------------- runners
def fp32_fastnn(Ws, bs, batch, threads):
    """fastnn's float32 inference program (one compiled call) with these weights."""
    import fastnn
    model = fastnn.Sequential([fastnn.Input(shape=(DIMS[0],))] + [
        fastnn.layers.Dense(w.shape[1], activation="relu" if i < len(Ws) - 1 else None)
        for i, w in enumerate(Ws)])
    model.set_weights([a for pair in zip(Ws, bs) for a in pair])
    executor = model._inference_executor()
    return lambda x: executor.predict(x, threads)


def fp32_numpy(Ws, bs, batch, threads):
    def run(x):
        for i, (w, b) in enumerate(zip(Ws, bs)):
            x = x @ w + b
            if i < len(Ws) - 1:
                numpy.maximum(x, 0, out=x)
        return x
    return run


def int8_runner(isa):
    def make(Ws, bs, batch, threads):
        layers = []
        for w in Ws:
            wq, s = Ops().quantize_int8(w)
            layers.append((_quant.pack_int8(wq), s))
        outs = [numpy.empty((batch, w.shape[1]), numpy.float32) for w in Ws]
        last = len(Ws) - 1

        def run(x):
            _quant.set_isa(isa)
            for i, ((p, s), b) in enumerate(zip(layers, bs)):
                x = _quant.int8_dense(x, p, s, b, outs[i], threads, i < last)
            return x
        return run
    return make


def bf16_runner(isa):
    def make(Ws, bs, batch, threads):
        packs = [_quant.pack_bf16(_quant.to_bf16(w)) for w in Ws]
        outs = [numpy.empty((batch, w.shape[1]), numpy.float32) for w in Ws]
        last = len(Ws) - 1

        def run(x):
            _quant.set_isa(isa)
            for i, (p, b) in enumerate(zip(packs, bs)):
                x = _quant.bf16_dense(x, p, b, outs[i], threads, i < last)
            return x
        return run
    return make


def onnx_model_bytes(Ws, bs):
    from onnx import TensorProto, helper, numpy_helper
    nodes, inits = [], []
    cur = "x"
    for i, (w, b) in enumerate(zip(Ws, bs)):
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("MatMul", [cur, f"W{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]))
        cur = f"a{i}"
        if i < len(Ws) - 1:
            nodes.append(helper.make_node("Relu", [cur], [f"r{i}"]))
            cur = f"r{i}"
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, DIMS[0]])],
        [helper.make_tensor_value_info(cur, TensorProto.FLOAT, [None, DIMS[-1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def ort_runner(quantized, tmpdir):
    def make(Ws, bs, batch, threads):
        import onnx
        import onnxruntime as ort
        path = os.path.join(tmpdir, "mlp.onnx")
        onnx.save(onnx_model_bytes(Ws, bs), path)
        if quantized:
            from onnxruntime.quantization import QuantType, quantize_dynamic
            qpath = os.path.join(tmpdir, "mlp_int8.onnx")
            quantize_dynamic(path, qpath, weight_type=QuantType.QInt8)
            path = qpath
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {name: x})[0]
    return make


def runners(tmpdir, with_ort):
    out = [("fp32 fastnn", fp32_fastnn), ("fp32 numpy", fp32_numpy)]
    for isa in _quant.available():
        out.append((f"int8 {isa}", int8_runner(isa)))
    seen = set()
    for isa in _quant.available():
        _quant.set_isa(isa)
        path = _quant.isa()["bf16"]
        if path not in seen:
            seen.add(path)
            out.append((f"bf16 {path}", bf16_runner(isa)))
    _quant.set_isa(None)
    if with_ort:
        out += [("ort fp32", ort_runner(False, tmpdir)), ("ort int8", ort_runner(True, tmpdir))]
    return out


def time_call(fn, x, min_seconds):
    """Mean seconds of one call over a loop of at least ``min_seconds``."""
    n, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn(x)
        t = time.perf_counter() - t0
        if t >= min_seconds:
            return t / n
        n = max(n * 2, int(n * min_seconds / max(t, 1e-9) * 1.2))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.02, help="seconds per timed loop")
    ap.add_argument("--gap", type=float, default=0.3,
                    help="seconds of pause before each timing with more than one thread: "
                         "thread pools (OpenBLAS, OpenMP, ORT) spin after a call and would "
                         "take a core from the next runner's threads")
    ap.add_argument("--no-ort", action="store_true", help="leave ONNX Runtime out")
    ap.add_argument("--smoke", action="store_true", help="one quick repeat (harness check)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.repeats, args.min_time, args.gap = 1, 0.001, 0.0
    with_ort = not args.no_ort
    if with_ort:
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            print("onnx/onnxruntime not installed: ONNX Runtime rows left out")
            with_ort = False
    from threadpoolctl import threadpool_limits

    Ws, bs = make_model()
    print(f"CPU: {cpu_name()}; {os.cpu_count()} cores; paths {_quant.available()}; "
          f"default {_quant.isa()}")
    print(f"model {'-'.join(map(str, DIMS))}, ReLU; median of {args.repeats} repeats")
    rng = numpy.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmpdir:
        names_makers = runners(tmpdir, with_ort)
        for threads in args.threads:
            with threadpool_limits(threads):
                for batch in args.batches:
                    x = rng.standard_normal((batch, DIMS[0])).astype(numpy.float32)
                    fns = [(name, make(Ws, bs, batch, threads)) for name, make in names_makers]
                    ref = fns[0][1](x)
                    errs = {name: float(numpy.abs(fn(x) - ref).max() / numpy.abs(ref).max())
                            for name, fn in fns}
                    times = {name: [] for name, _ in fns}
                    for _ in range(args.repeats):
                        for name, fn in fns:
                            if threads > 1:
                                time.sleep(args.gap)  # let the last runner's spinning threads sleep
                            times[name].append(time_call(fn, x, args.min_time))
                    _quant.set_isa(None)
                    base = statistics.median(times["fp32 fastnn"])
                    print(f"\nbatch {batch}, {threads} thread(s)")
                    print(f"  {'':18s} {'us/call':>10s} {'best us':>10s} {'samples/s':>11s} "
                          f"{'vs fp32':>8s} {'err':>9s}")
                    for name, _ in fns:
                        t = statistics.median(times[name])
                        print(f"  {name:18s} {t * 1e6:10.1f} {min(times[name]) * 1e6:10.1f} "
                              f"{batch / t:11.0f} {t / base:8.2f} {errs[name]:9.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
