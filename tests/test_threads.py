"""Serving from many threads: same answers as one thread, and no memory growth per call."""
import threading

import numpy
import pytest

import fastnn
from fastnn import layers
from fastnn.utils import set_random_seed

N_THREADS, CALLS = 8, 1000


ARCHITECTURES = {
    "plain_dense": lambda: [layers.Dense(32, activation="relu", input_shape=(10,)),
                            layers.Dense(4, activation="softmax")],
    "batchnorm_dropout": lambda: [layers.Dense(32, activation="relu", input_shape=(10,)),
                                  layers.BatchNormalization(), layers.Dropout(0.3),
                                  layers.Dense(4, activation="softmax")],
}


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def model(request):
    set_random_seed(3)
    m = fastnn.Sequential(ARCHITECTURES[request.param]())
    m.compile("adam", "sparse_categorical_crossentropy")
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(128, 10)).astype("float32")
    m.fit(x, (x[:, 0] > 0).astype(int) + (x[:, 1] > 0), epochs=2, verbose=0)
    return m


def _run_threads(fn, inputs):
    """Call ``fn(inputs[t][i % len])`` CALLS times in each of N_THREADS threads at once."""
    results = [[None] * CALLS for _ in range(N_THREADS)]
    errors = []
    start = threading.Barrier(N_THREADS)

    def work(t):
        try:
            start.wait()
            for i in range(CALLS):
                results[t][i] = fn(inputs[t][i % len(inputs[t])])
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(N_THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    assert not any(th.is_alive() for th in threads)
    return results


@pytest.mark.parametrize("entry", ["predict", "predict_on_batch", "call", "plan"])
def test_many_threads_give_exactly_the_single_thread_results(model, entry):
    plan = model.compile_for_inference()
    fn = {"predict": model.predict, "predict_on_batch": model.predict_on_batch,
          "call": model, "plan": plan}[entry]
    rng = numpy.random.default_rng(1)
    # Each thread gets its own inputs, of batch sizes 1 to 5, so a mix-up would show.
    inputs = [[rng.normal(size=(1 + (t + j) % 5, 10)).astype("float32") for j in range(7)]
              for t in range(N_THREADS)]
    expected = [[fn(x) for x in per_thread] for per_thread in inputs]
    results = _run_threads(fn, inputs)
    for t in range(N_THREADS):
        for i in range(CALLS):
            numpy.testing.assert_array_equal(results[t][i], expected[t][i % 7])


def _rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    pytest.skip("no /proc/self/status VmRSS on this system")


def test_batch_one_predict_does_not_grow_memory(model):
    x = numpy.random.default_rng(2).normal(size=(1, 10)).astype("float32")
    for _ in range(5000):  # warm-up: caches, allocator pools
        model.predict(x)
    before = _rss_kib()
    for _ in range(100_000):
        model.predict(x)
    growth = _rss_kib() - before
    print(f"\nRSS growth over 100,000 batch-1 predict calls: {growth} KiB")
    assert growth < 1024, f"RSS grew by {growth} KiB"
