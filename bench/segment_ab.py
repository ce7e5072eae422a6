"""Side-by-side timing of the compiled executor (``_executor.Segment``).

A/B, interleaved, one thread, best and median of many rounds of a few calls:
  - train_small (64-128-128-10, batch 32), train_medium (784-512-512-10, batch 128),
    relu/softmax: Segment.train_step vs _mlp.DenseStack.train_step
  - infer_b1 / infer_b256 (784-512-512-10): Segment.predict vs DenseStack.predict
  - train_medium_bn (Dense -> BatchNormalization -> ReLU -> Dropout(0.2) per hidden
    layer): Segment.train_step vs the layer-by-layer path (each layer's own
    forward/backward on the "cpu" backend, the loss kernel between).
Usage: OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/segment_ab.py [rounds]
"""
import sys
import time

import numpy as np

from _repo import use_checkout_if_not_installed

use_checkout_if_not_installed()

import fastnn  # noqa: E402
from fastnn import activations, layers  # noqa: E402
from fastnn.backend import get_ops  # noqa: E402
from fastnn._kernels import _executor, _mlp  # noqa: E402
from fastnn._kernels._losses import LossOp  # noqa: E402

N, ROUNDS = 128, 30


def model(bn, dims=(784, 512, 512, 10)):
    fastnn.utils.set_random_seed(0)
    hidden = []
    for width in dims[1:-1]:
        if bn:
            hidden += [layers.Dense(width), layers.BatchNormalization(), layers.ReLU(),
                       layers.Dropout(0.2)]
        else:
            hidden += [layers.Dense(width, activation="relu")]
    return fastnn.Sequential([fastnn.Input(shape=(dims[0],))] + hidden +
                             [layers.Dense(dims[-1], activation="softmax")])


def segment_step(m):
    stages = [s for layer in m.layers for s in layer.stages()]
    stages[-1] = stages[-1].replace(activation=activations.get("linear"))
    seg = _executor.Segment(stages, N)
    seeded = [s.layer for s in stages if s.seeded]

    def step(x, t):
        seeds = np.array([layer._mask_seed() for layer in seeded], dtype=np.uint64) \
            if seeded else None
        return seg.train_step(x, t, None, int(LossOp.SOFTMAX_CE), 0.0, 0.0, 1.0 / N, seeds, 1)
    return step


def dense_stack(m, n):
    dense = [layer for layer in m.layers]
    return _mlp.DenseStack([d.kernel.value for d in dense], [d.bias.value for d in dense],
                           [d.kernel.grad for d in dense], [d.bias.grad for d in dense],
                           [1] * (len(dense) - 1) + [4], n)


def dense_stack_step(m):
    ds = dense_stack(m, N)
    return lambda x, t: ds.train_step(x, t, None, 0, 0, True, 1)


def predictors(m, n):
    seg = _executor.Segment([s for layer in m.layers for s in layer.stages()], n)
    ds = dense_stack(m, n)
    out = np.empty((n, 10), np.float32)
    return (lambda x, t: seg.predict(x, out, 1)), (lambda x, t: ds.predict(x, 1))


def layer_step(m):
    ops = get_ops("cpu")
    lays = list(m.layers)
    probs = np.empty((N, 10), np.float32)
    grad = np.empty((N, 10), np.float32)

    def step(x, t):
        caches, y = [], x
        for i, layer in enumerate(lays):
            if i == len(lays) - 1:
                y, c = layer.forward(y, training=True, apply_activation=False)
            else:
                y, c = layer.forward(y, training=True)
            caches.append(c)
        total = ops.softmax_cross_entropy(y, t, probs, grad, None, 1.0 / N)
        dy = grad
        for i in range(len(lays) - 1, -1, -1):
            kw = {"apply_activation": False} if i == len(lays) - 1 else {}
            dy = lays[i].backward(dy, caches[i], need_dx=i > 0, **kw)
        return total
    return step


def ab(name_a, step_a, name_b, step_b, n=N, din=784):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, din)).astype(np.float32)
    t = rng.integers(0, 10, n).astype(np.int64)
    times = {name_a: [], name_b: []}
    for _ in range(3):
        step_a(x, t)
        step_b(x, t)
    for r in range(ROUNDS):
        order = [(name_a, step_a), (name_b, step_b)]
        if r % 2:
            order.reverse()
        for name, step in order:
            t0 = time.perf_counter()
            for _ in range(5):
                step(x, t)
            times[name].append((time.perf_counter() - t0) / 5 * 1e3)
    a, b = (np.array(times[k]) for k in (name_a, name_b))
    print(f"{name_a:>14}: best {a.min():7.3f} ms  median {np.median(a):7.3f} ms")
    print(f"{name_b:>14}: best {b.min():7.3f} ms  median {np.median(b):7.3f} ms")
    print(f"{'ratio':>14}: best {a.min() / b.min():.3f}  median {np.median(a) / np.median(b):.3f}"
          f"  ({name_a} / {name_b})")


def main():
    global N, ROUNDS
    if len(sys.argv) > 1:
        ROUNDS = int(sys.argv[1])
    N = 32
    m = model(False, (64, 128, 128, 10))
    print("train_small, batch 32, 1 thread")
    ab("Segment", segment_step(m), "DenseStack", dense_stack_step(m), 32, 64)
    m = model(False)
    for n in (1, 256):
        print(f"infer_b{n}, 1 thread")
        ab("Segment", *predictors(m, n)[:1], "DenseStack", predictors(m, n)[1], n)
    N = 128
    print("train_medium, batch 128, 1 thread")
    ab("Segment", segment_step(m), "DenseStack", dense_stack_step(m))
    m = model(True)
    print("train_medium_bn, batch 128, 1 thread")
    ab("Segment", segment_step(m), "layer-by-layer", layer_step(m))


if __name__ == "__main__":
    main()
