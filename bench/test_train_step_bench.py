"""Micro-benchmark of one training step: ``model.train_on_batch(x, y)``.

The small (64-128-128-10, batch 32) and medium (784-512-512-10, batch 128)
models of bench/compare.py, on the "cpu" backend and the "numpy" reference,
with one PyTorch step (zero_grad, forward, loss, backward, Adam) beside them
when torch is installed. Run:
``python -m pytest bench/test_train_step_bench.py --benchmark-only``.
"""
import numpy
import pytest

import fastnn
from _runners import LEARNING_RATE, fastnn_mlp, torch_mlp

MODELS = {"small": ((64, 128, 128, 10), 32), "medium": ((784, 512, 512, 10), 128)}


def _batch(dims, batch):
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((batch, dims[0]), dtype=numpy.float32)
    y = rng.integers(0, dims[-1], batch)
    return x, y


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("size", list(MODELS))
def test_train_on_batch(benchmark, backend, size):
    dims, batch = MODELS[size]
    x, y = _batch(dims, batch)
    benchmark.group = f"train step {size} ({'-'.join(map(str, dims))}, batch {batch})"
    benchmark.extra_info["threads"] = fastnn.get_num_threads()
    with fastnn.backend.use_backend(backend):
        model = fastnn_mlp(dims)
        model.train_on_batch(x, y)  # warm-up: workspaces for this batch shape
        loss = benchmark(model.train_on_batch, x, y)
    assert numpy.isfinite(numpy.ravel(loss)[0])


@pytest.mark.parametrize("size", list(MODELS))
def test_torch_train_step(benchmark, size):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(fastnn.get_num_threads())  # the same count as fastnn
    dims, batch = MODELS[size]
    x, y = (torch.from_numpy(a) for a in _batch(dims, batch))
    torch.manual_seed(0)
    model = torch_mlp(dims)
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    benchmark.group = f"train step {size} ({'-'.join(map(str, dims))}, batch {batch})"
    benchmark.extra_info["threads"] = torch.get_num_threads()
    step()
    loss = benchmark(step)
    assert torch.isfinite(loss)
