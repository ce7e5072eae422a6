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


# ---------------------------------------------------------------- the thread policy
@pytest.fixture
def thread_state(monkeypatch):
    """Restore the process's thread count and BLAS pool after a test changes them; the
    machine's load is sampled afresh at every call (tests patch the samplers)."""
    from fastnn.backend import threads
    monkeypatch.setattr(threads, "LOAD_TTL", 0.0)
    monkeypatch.setattr(threads, "_busy_elsewhere", lambda: None)  # tests set the instant
    saved = dict(threads._state)
    yield threads
    threads.set_num_threads(saved["n"] or threads.default_num_threads())
    threads._state.update(saved)


def _blas_pool():
    """Thread counts of the BLAS libraries loaded in this process."""
    from threadpoolctl import threadpool_info
    return sorted({info["num_threads"] for info in threadpool_info()
                   if info["user_api"] == "blas"})


def test_cgroup_quota_is_read_from_v2_and_v1_files(tmp_path):
    from fastnn.backend.threads import _cgroup_cpu_limit
    assert _cgroup_cpu_limit(str(tmp_path)) is None  # no files: no quota
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _cgroup_cpu_limit(str(tmp_path)) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _cgroup_cpu_limit(str(tmp_path)) == 2  # 1.5 CPUs round up
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert _cgroup_cpu_limit(str(tmp_path)) is None
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    assert _cgroup_cpu_limit(str(tmp_path)) == 1


def test_default_thread_count_honours_env_affinity_and_quota(monkeypatch):
    from fastnn.backend import threads
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(8)),
                        raising=False)
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda: None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.default_num_threads() == 8
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda: 3)
    assert threads.default_num_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "5,2")
    assert threads.default_num_threads() == 5  # an explicit request wins


def test_set_num_threads_sets_the_blas_pool(thread_state):
    fastnn.set_num_threads(1)
    assert fastnn.get_num_threads() == 1 and _blas_pool() == [1]
    fastnn.set_num_threads(2)
    assert fastnn.get_num_threads() == 2 and _blas_pool() == [2]
    with pytest.raises(ValueError, match="positive int"):
        fastnn.set_num_threads(0)
    assert fastnn.get_num_threads() == 2


def test_small_work_holds_blas_to_one_thread_for_the_scope(thread_state, monkeypatch):
    threads = thread_state
    monkeypatch.setattr(threads, "_runnable_elsewhere", lambda: 0)  # an idle machine
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    fastnn.set_num_threads(2)
    with threads.blas_scope(threads.BLAS_MIN_MACS - 1):
        assert _blas_pool() == [1] and threads.blas_held_single()
        with threads.blas_single_thread():  # nested scopes keep it until the last closes
            pass
        assert _blas_pool() == [1]
    assert _blas_pool() == [2] and not threads.blas_held_single()
    with threads.blas_scope(threads.BLAS_MIN_MACS):
        assert _blas_pool() == [2] and threads.scope_threads() == 2
        with threads.thread_scope(1):
            assert threads.scope_threads() == 1 and _blas_pool() == [1]
        assert threads.scope_threads() == 2
    monkeypatch.setattr(threads, "_runnable_elsewhere", lambda: 3)  # other work on both cores
    with threads.blas_scope(threads.BLAS_MIN_MACS):
        assert _blas_pool() == [1] and threads.scope_threads() == 1
    assert _blas_pool() == [2]


def test_one_thread_scopes_from_many_threads_restore_the_pool(thread_state):
    threads = thread_state
    fastnn.set_num_threads(2)
    start = threading.Barrier(4)

    def work():
        start.wait()
        for _ in range(200):
            with threads.blas_single_thread():
                assert threads.blas_held_single()
    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert _blas_pool() == [2] and threads._scope["depth"] == 0


class _PoolSpy(fastnn.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.pool = _blas_pool()


def test_load_is_read_from_proc(tmp_path):
    from fastnn.backend.threads import _runnable_own, _runnable_total
    path = tmp_path / "loadavg"
    path.write_text("4.61 3.02 1.50 5/143 10203\n")
    assert _runnable_total(str(path)) == 5
    path.write_text("garbage\n")
    assert _runnable_total(str(path)) == 0
    assert _runnable_total(str(tmp_path / "missing")) == 0
    for tid, state in (("10", "R"), ("11", "S"), ("12", "R")):
        (tmp_path / tid).mkdir()
        (tmp_path / tid / "stat").write_text(f"{tid} (python (x)) {state} 1 2 3\n")
    assert _runnable_own(str(tmp_path)) == 2  # the name may hold ")" and spaces


def test_load_average_over_the_interval_excludes_this_process(tmp_path, monkeypatch):
    from fastnn.backend import threads
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 10 0 0 5 0 0\ncpu0 1 2 3\n")
    assert threads._cpu_busy_seconds(str(stat)) == pytest.approx(155 / threads._CLK_TCK)
    clock = {"wall": 10.0, "own": 1.0, "busy": 100.0}
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["wall"])
    monkeypatch.setattr(threads.time, "process_time", lambda: clock["own"])
    monkeypatch.setattr(threads, "_cpu_busy_seconds", lambda: clock["busy"])
    monkeypatch.setitem(threads._load, "previous", None)
    assert threads._busy_elsewhere() is None  # the first sample has nothing to compare
    clock.update(wall=12.0, own=2.0, busy=104.0)  # 4 busy CPU seconds in 2 s, 1 of them ours
    assert threads._busy_elsewhere() == pytest.approx(1.5)
    clock.update(wall=100.0)  # a sample long ago says nothing about now
    assert threads._busy_elsewhere() is None


@pytest.mark.parametrize("width,busy,expect", [(64, 0, [1]), (1024, 0, [2]), (1024, 8, [1])])
def test_fit_decides_blas_threads_by_model_size_and_load(thread_state, monkeypatch, width,
                                                         busy, expect):
    """A small model trains with BLAS on one thread; a large product keeps the pool,
    unless other runnable threads keep the cores busy."""
    monkeypatch.setattr(thread_state, "_runnable_elsewhere", lambda: busy)
    monkeypatch.setattr(thread_state.os, "cpu_count", lambda: 2)
    fastnn.set_num_threads(2)
    m = fastnn.Sequential([layers.Dense(width, activation="relu", input_shape=(width,)),
                           layers.Dense(4, activation="softmax")])
    m.compile("sgd", "sparse_categorical_crossentropy")
    x = numpy.random.default_rng(0).normal(size=(64, width)).astype("float32")
    spy = _PoolSpy()
    m.fit(x, numpy.arange(64) % 4, batch_size=64, epochs=1, verbose=0, callbacks=[spy])
    assert spy.pool == expect  # 64 * 64 * 64 multiply-adds are below BLAS_MIN_MACS
    assert _blas_pool() == [2]  # given back after fit


def test_contention_bench_runs(repo_root, tmp_path):
    """bench/contention.py end to end on tiny sizes, without busy-loop processes."""
    import json
    import subprocess
    import sys
    out = tmp_path / "contention.json"
    proc = subprocess.run([sys.executable, str(repo_root / "bench" / "contention.py"), "--smoke",
                           "--hogs", "0", "--rounds", "1", "--repeats", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "default/one" in proc.stdout
    report = json.loads(out.read_text())
    assert report["threads"]["one"] == 1
    assert set(report["times_s"]["default"]) == {"train_small", "digits", "infer_b1", "fit100",
                                                 "evaluate100"}


def test_few_row_predict_threads_only_large_models(thread_state, monkeypatch):
    """The GEMV path asks for threads only for models with many weights, and gets them
    only when cores are free; the answer does not depend on the thread count."""
    from fastnn.models import sequential
    small = fastnn.Sequential([layers.Dense(16, input_shape=(8,)), layers.Dense(4)])
    large = fastnn.Sequential([layers.Dense(1024, activation="relu", input_shape=(600,)),
                               layers.Dense(10, activation="softmax")])
    for m in (small, large):
        m.compile("sgd", "mse")
        m.build()
    assert not small._inference_executor().predict_can_thread(1)
    assert large._inference_executor().predict_can_thread(1)
    assert small._inference_executor().predict_can_thread(33)  # the BLAS path
    granted = []
    real = sequential.available_threads
    monkeypatch.setattr(sequential, "available_threads", lambda: granted.append(1) or real())
    fastnn.set_num_threads(2)
    x = numpy.random.default_rng(0).normal(size=(3, 600)).astype("float32")
    y = large(x)
    small(x[:, :8])
    assert granted == [1]  # asked once: for the large model only
    stack = large._inference_executor()
    numpy.testing.assert_array_equal(stack.predict(x, 1), stack.predict(x, 2))
    numpy.testing.assert_array_equal(y, stack.predict(x, 1))
