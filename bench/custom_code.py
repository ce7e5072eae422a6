"""Custom code against its built-in twin: step time, side by side in one process.

Two pairs, each trained on the same data with the same seed:

- ``lambda``: an MLP whose hidden activation is ``layers.Lambda(lambda x: ops.relu(x))``
  against the same MLP with ``layers.Activation("relu")`` (the built-in twin);
- ``loss``: a plain Dense MLP compiled with a loss function written with ``fastnn.ops``
  (mean squared error) against ``loss="mse"``. Both run the Dense layers compiled (one
  executor segment): the built-in loss inside its one-call step, the custom one between
  the segment's ``forward`` and ``backward``;
- ``loss_lbl``: the same custom loss against the built-in MSE, both with every layer a
  HOST stage (what the loss itself costs, the model path being equal).

The two variants of a pair alternate, ``--rounds`` times, and each round times
``--steps`` ``train_on_batch`` calls; the median step time of each variant is reported
with the ratio custom / built-in (the targets: at most 1.5).

    python bench/custom_code.py                 # batch sizes 32 and 256, cpu backend
    python bench/custom_code.py --backend numpy --batches 128 --rounds 5
"""
import argparse
import statistics
import time

import numpy

import fastnn
from fastnn import layers, ops


def my_mse(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


def _mlp(width, middle):
    return fastnn.Sequential([fastnn.Input(shape=(64,)), layers.Dense(width),
                              middle, layers.Dense(width, activation="relu"),
                              layers.Dense(10)])


class LayerwiseDense(layers.Dense):
    """A Dense whose forward pass is its own (it calls Dense's): it lowers to a HOST stage,
    so it trains layer by layer through the Ops (the path of a user's layer)."""

    def forward(self, x, training=False, apply_activation=True):
        return super().forward(x, training, apply_activation)


def _plain(width, head=layers.Dense):
    return fastnn.Sequential([fastnn.Input(shape=(64,)),
                              layers.Dense(width, activation="relu"),
                              layers.Dense(width, activation="relu"), head(10)])


PAIRS = {
    "lambda": (lambda w: (_mlp(w, layers.Lambda(lambda x: ops.relu(x))), "mse"),
               lambda w: (_mlp(w, layers.Activation("relu")), "mse")),
    "loss": (lambda w: (_plain(w), my_mse), lambda w: (_plain(w), "mse")),
    "loss_lbl": (lambda w: (_plain(w, LayerwiseDense), my_mse),
                 lambda w: (_plain(w, LayerwiseDense), "mse")),
}


def _step_seconds(model, x, y, steps):
    model.train_on_batch(x, y)  # warm-up: builds, allocates
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps


def run(pair, batch, width, steps, rounds):
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(batch, 64)).astype("float32")
    y = rng.normal(size=(batch, 10)).astype("float32")
    models = []
    for make in PAIRS[pair]:
        fastnn.utils.set_random_seed(0)
        model, loss = make(width)
        model.compile(optimizer="adam", loss=loss)
        models.append(model)
    times = ([], [])
    for _ in range(rounds):
        for i, model in enumerate(models):
            times[i].append(_step_seconds(model, x, y, steps))
    custom, builtin = (statistics.median(t) for t in times)
    return custom, builtin


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    fastnn.set_backend(args.backend)
    fastnn.set_num_threads(args.threads)
    print(f"backend={args.backend} threads={args.threads} width={args.width} "
          f"steps={args.steps} rounds={args.rounds}")
    print(f"{'pair':<8}{'batch':>6}{'custom us':>12}{'built-in us':>13}{'ratio':>8}")
    rows = []
    for pair in PAIRS:
        for batch in args.batches:
            custom, builtin = run(pair, batch, args.width, args.steps, args.rounds)
            rows.append((pair, batch, custom, builtin))
            print(f"{pair:<8}{batch:>6}{custom * 1e6:>12.1f}{builtin * 1e6:>13.1f}"
                  f"{custom / builtin:>8.2f}")
    return rows


if __name__ == "__main__":
    main()
