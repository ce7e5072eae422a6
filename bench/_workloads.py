"""The benchmark workloads, their synthetic data, and the timing helper.

Every framework's worker builds its data from here with the same seed, so
all of them train on identical arrays. Nothing in this module imports a
framework.
"""
import gc
import statistics
import time

import numpy

SEED = 0
N_CLASSES = 10
MEDIUM = (784, 512, 512, 10)
DROPOUT = 0.2  # the rate of the Dropout layers in the docs' examples

# kind "train": one shuffled epoch, ms per epoch. "batchnorm" and "dropout" (the rate)
# put Dense -> BatchNormalization -> ReLU -> Dropout after each hidden layer instead of
# Dense(relu); see model_options.
# kind "infer": one call on `batch` rows, us per call (and samples/s).
# kind "digits": load_digits, `epochs` epochs from scratch: wall time and test accuracy.
WORKLOADS = {
    "train_small": {"kind": "train", "dims": (64, 128, 128, 10), "batch": 32, "samples": 8192},
    "train_medium": {"kind": "train", "dims": MEDIUM, "batch": 128, "samples": 16384},
    "train_medium_bn": {"kind": "train", "dims": MEDIUM, "batch": 128, "samples": 16384,
                        "batchnorm": True, "dropout": DROPOUT},
    "train_large": {"kind": "train", "dims": (784, 2048, 2048, 10), "batch": 512,
                    "samples": 16384},
    "infer_b1": {"kind": "infer", "dims": MEDIUM, "batch": 1, "calls": 2000},
    "infer_b256": {"kind": "infer", "dims": MEDIUM, "batch": 256, "calls": 100},
    "digits": {"kind": "digits", "dims": (64, 128, 64, 10), "batch": 32, "epochs": 30},
}

# --smoke: the same shapes with tiny epochs and few calls, so the whole suite
# (every code path, every framework) runs in seconds.
SMOKE = {
    "train_small": {"samples": 256},
    "train_medium": {"samples": 512},
    "train_medium_bn": {"samples": 512},
    "train_large": {"samples": 512},
    "infer_b1": {"calls": 20},
    "infer_b256": {"calls": 3},
    "digits": {"epochs": 2},
}


def workloads(smoke=False, only=None):
    """The workload specs to run, in their canonical order."""
    names = list(WORKLOADS) if not only else [n for n in WORKLOADS if n in only]
    specs = {}
    for name in names:
        spec = dict(WORKLOADS[name], name=name)
        if smoke:
            spec.update(SMOKE[name])
        specs[name] = spec
    return specs


def model_options(spec):
    """The hidden-layer options every runner's ``trainer`` takes as keywords.

    ``batchnorm``: each hidden Dense has no activation and is followed by
    BatchNormalization (Keras defaults: momentum 0.99, epsilon 1e-3, batch
    statistics while training), then ReLU. ``dropout``: then Dropout of that rate
    (inverted: kept values scaled by 1 / (1 - rate)); 0 means none.
    """
    return {"batchnorm": bool(spec.get("batchnorm", False)),
            "dropout": float(spec.get("dropout", 0.0))}


def describe(spec):
    """One line naming a workload's shape, for the table."""
    arch = "-".join(str(d) for d in spec["dims"])
    options = model_options(spec)
    hidden = "ReLU"
    if options["batchnorm"]:
        hidden = "BatchNorm-ReLU"
    if options["dropout"]:
        hidden += f"-Dropout({options['dropout']:g})"
    if spec["kind"] == "train":
        return f"{arch} {hidden}, batch {spec['batch']}, {spec['samples']} samples, 1 epoch"
    if spec["kind"] == "infer":
        return f"{arch}, batch {spec['batch']}, {spec['calls']} calls per repeat"
    return f"{arch} on load_digits, batch {spec['batch']}, {spec['epochs']} epochs"


def synthetic(spec, seed=SEED):
    """Float32 inputs and int64 labels from a fixed random linear teacher."""
    rng = numpy.random.default_rng(seed)
    d_in, k = spec["dims"][0], spec["dims"][-1]
    n = spec["samples"] if spec["kind"] == "train" else spec["batch"]
    x = rng.standard_normal((n, d_in), dtype=numpy.float32)
    teacher = rng.standard_normal((d_in, k), dtype=numpy.float32)
    y = numpy.argmax(x @ teacher, axis=1).astype(numpy.int64)
    return x, y


def digits_split():
    """load_digits, pixels / 16 as float32, stratified 80/20 split, random_state=0."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = (digits.data / 16.0).astype(numpy.float32)
    y = digits.target.astype(numpy.int64)
    return train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)


def measure(fn, repeats, warmup=1):
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` timed; seconds per run.

    The garbage collector is off while timing, as in ``timeit``.
    """
    for _ in range(warmup):
        fn()
    times = []
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    finally:
        if was_enabled:
            gc.enable()
    return times


def summary(times, per=1):
    """Median and all runs, in seconds per unit (``per`` units in one run)."""
    per_unit = [t / per for t in times]
    return {"time_s": statistics.median(per_unit), "times_s": per_unit}
