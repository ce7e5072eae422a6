"""fastnn.distributed: data-parallel fit under ``mpiexec -n 2``, checked against one process.

The MPI tests launch a small worker script (written below) with ``mpiexec -n 2``
and check what it reports. They need mpi4py and an ``mpiexec`` (next to the
Python interpreter, as the ``mpich`` wheel installs it, or on PATH); without
them they skip, unless ``FASTNN_REQUIRE_MPI=1`` is set (CI), which turns the
skip into a failure. The tests without MPI check the pieces that do not need
it: the optional import, metric-state merging, synchronized batch norm's math.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import threading
import time

import numpy
import pytest

import fastnn
from fastnn import layers, metrics
from fastnn.distributed import _run

RANKS = 2

WORKER = textwrap.dedent('''
    import hashlib, json, os, sys, time
    import numpy as np
    import fastnn as keras
    from fastnn import distributed as dist, layers
    from fastnn.backend import get_ops

    mode, out = sys.argv[1], sys.argv[2]
    dist.init(timeout=float(os.environ.get("WATCHDOG_S", "60")), grace=20)
    from mpi4py import MPI
    WORLD = MPI.COMM_WORLD
    rank = dist.rank()
    keras.set_num_threads(1)

    data = np.random.default_rng(0)
    x = data.normal(size=(124, 6)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int64") + (x[:, 2] > 1).astype("int64")

    def make_model(optimizer, width=12, synchronized=True):
        keras.utils.set_random_seed(7)
        model = keras.Sequential([
            keras.Input(shape=(6,)), layers.Dense(width, activation="relu"),
            layers.BatchNormalization(synchronized=synchronized),
            layers.Dropout(0.25, seed=11),
            layers.Dense(3, activation="softmax")])
        model.compile(optimizer, "sparse_categorical_crossentropy", ["accuracy"])
        return model

    def optimizer(name):
        return (keras.optimizers.SGD(0.1, momentum=0.9) if name == "sgd"
                else keras.optimizers.Adam(0.02))

    class SameWeights(keras.callbacks.Callback):
        """After every step, compare a digest of the weights across ranks."""
        def on_train_begin(self, logs=None):
            self.steps, self.differ = 0, 0
        def on_train_batch_end(self, batch, logs=None):
            digest = hashlib.sha256(self.model._store.params.tobytes()).hexdigest()
            digests = WORLD.allgather(digest)
            self.steps += 1
            self.differ += len(set(digests)) > 1

    def sharded_masks(layer, ranks):
        """One process drawing the masks the ranks draw for their shards."""
        def forward(x, training=False):
            if not training:
                return x, None
            layer.mask_calls += 1
            parts, m = [], x.shape[0]
            for r in range(ranks):
                lo, hi = r * m // ranks, (r + 1) * m // ranks
                seed = (layer.seed * 1_000_003 + layer.mask_calls + (r << 40)) & ((1 << 63) - 1)
                parts.append(get_ops().dropout_mask((hi - lo, x.shape[1]), layer.rate, seed))
            mask = np.concatenate(parts)
            return x * mask, mask
        layer.forward = forward

    def callbacks(tag):
        return [keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=0,
                                                  factor=0.5, min_delta=10.0),
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, min_delta=10.0),
                keras.callbacks.CSVLogger(f"{out}/{tag}_log_rank{rank}.csv"),
                keras.callbacks.ModelCheckpoint(f"{out}/{tag}_ckpt_rank{rank}_{{epoch}}.fastnn")]

    result = {}
    if mode == "exact":
        result["helpers"] = {"size": dist.size(), "local_size": dist.local_size(),
                             "rank_sum": dist.allreduce(rank, average=False),
                             "mean": dist.allreduce(np.array([rank, 2.0])).tolist(),
                             "broadcast": dist.broadcast({"from": rank}, root=1)}
        dist.barrier()
        for name in ("sgd", "adam"):
            model = make_model(dist.DistributedOptimizer(optimizer(name)))
            same = SameWeights()
            hist = model.fit(x, y, batch_size=32, epochs=4, validation_split=0.2, verbose=1,
                             callbacks=[same] + callbacks(name))
            weights = model.get_weights()
            gathered = WORLD.gather([w.tobytes() for w in weights])
            if rank == 0:
                ref = make_model(optimizer(name))
                sharded_masks(ref.layers[2], dist.size())
                ref_hist = ref.fit(x, y, batch_size=32, epochs=4, validation_split=0.2,
                                   verbose=0, callbacks=callbacks("ref")[:2])
                result[name] = {
                    "steps": same.steps, "differ": same.differ,
                    "ranks_equal": all(g == gathered[0] for g in gathered),
                    "weight_diff": max(float(np.abs(a - b).max())
                                       for a, b in zip(weights, ref.get_weights())),
                    "history": hist.history, "ref_history": ref_hist.history,
                    "lr": model.optimizer.learning_rate, "ref_lr": ref.optimizer.learning_rate,
                    "epochs": len(hist.epoch), "ref_epochs": len(ref_hist.epoch)}
                np.savez(f"{out}/{name}_final.npz", *weights)
        # Batch norm on each rank's shard: the ranks still agree, one process does not.
        model = make_model(dist.DistributedOptimizer(optimizer("sgd")), synchronized=False)
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)
        weights = model.get_weights()
        gathered = WORLD.gather([w.tobytes() for w in weights])
        if rank == 0:
            ref = make_model(optimizer("sgd"), synchronized=False)
            sharded_masks(ref.layers[2], dist.size())
            ref.fit(x, y, batch_size=32, epochs=2, verbose=0)
            result["local_bn"] = {
                "ranks_equal": all(g == gathered[0] for g in gathered),
                "weight_diff": max(float(np.abs(a - b).max())
                                   for a, b in zip(weights, ref.get_weights()))}
    elif mode == "resume":
        model = dist.load_model(f"{out}/adam_ckpt_rank0_2.fastnn")
        # The uninterrupted run stopped early after its third epoch (index 2).
        model.fit(x, y, batch_size=32, epochs=3, initial_epoch=2, validation_split=0.2,
                  verbose=0)
        if rank == 0:
            final = np.load(f"{out}/adam_final.npz")
            result["weight_diff"] = max(float(np.abs(a - final[f"arr_{i}"]).max())
                                        for i, a in enumerate(model.get_weights()))
    elif mode == "raise":
        class Boom(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if rank == 1 and batch == 2:
                    raise RuntimeError("simulated failure on one rank")
        make_model(dist.DistributedOptimizer("sgd")).fit(x, y, batch_size=32, epochs=50,
                                                          verbose=0, callbacks=[Boom()])
    elif mode == "hang":
        class Stall(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if rank == 1:
                    time.sleep(600)
        make_model(dist.DistributedOptimizer("sgd")).fit(x, y, batch_size=32, epochs=50,
                                                          verbose=0, callbacks=[Stall()])
    elif mode == "single":
        plain = make_model(optimizer("adam")).fit(x, y, batch_size=32, epochs=2, verbose=0)
        wrapped = make_model(dist.DistributedOptimizer(optimizer("adam")))
        hist = wrapped.fit(x, y, batch_size=32, epochs=2, verbose=0)
        result["same_history"] = hist.history == plain.history
        class Boom(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                raise KeyError("boom")
        try:
            wrapped.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[Boom()])
        except KeyError:
            result["raised"] = True
    elif mode == "die":
        class Die(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if rank == 1 and batch == 1:
                    os._exit(7)
        make_model(dist.DistributedOptimizer("sgd")).fit(x, y, batch_size=32, epochs=50,
                                                          verbose=0, callbacks=[Die()])
    elif mode in ("mismatch", "other_data"):
        width, shift = (12 + rank, 0) if mode == "mismatch" else (12, rank)
        try:
            make_model(dist.DistributedOptimizer("sgd"), width=width).fit(
                x + shift, y, batch_size=32, epochs=1, verbose=0)
        except dist.ConfigMismatchError as exc:
            # Printed and flushed before exiting: once one rank exits, mpiexec may end
            # the other before its traceback is written out.
            print(f"{type(exc).__name__}: {exc}", flush=True)
            sys.exit(1)
    if rank == 0:
        with open(f"{out}/result.json", "w") as f:
            json.dump(result, f)
''')


def _find_mpiexec():
    here = pathlib.Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


@pytest.fixture(scope="module")
def launch(tmp_path_factory):
    """Run the worker under ``mpiexec -n 2``: returns (returncode, output, result, seconds)."""
    required = os.environ.get("FASTNN_REQUIRE_MPI") == "1"
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        if required:
            pytest.fail("FASTNN_REQUIRE_MPI=1 but mpi4py is not installed")
        pytest.skip('mpi4py is not installed (pip install "fastnn-toolkit[mpi]")')
    mpiexec = _find_mpiexec()
    if mpiexec is None:
        if required:
            pytest.fail("FASTNN_REQUIRE_MPI=1 but no mpiexec next to Python or on PATH")
        pytest.skip("no mpiexec next to the Python interpreter or on PATH")
    workdir = tmp_path_factory.mktemp("mpi")
    script = workdir / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # The worker imports fastnn from wherever this test process found it.
    package_parent = str(pathlib.Path(fastnn.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_parent, env.get("PYTHONPATH", "")])

    def run(mode, timeout=90, watchdog_s=60, ranks=RANKS):
        (workdir / "result.json").unlink(missing_ok=True)
        env["WATCHDOG_S"] = str(watchdog_s)
        start = time.monotonic()
        launcher = [mpiexec, "-prepend-rank", "-n", str(ranks)] if ranks > 1 else []
        proc = subprocess.run(launcher + [sys.executable, str(script), mode, str(workdir)],
                              cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        seconds = time.monotonic() - start
        result_file = workdir / "result.json"
        result = json.loads(result_file.read_text()) if result_file.exists() else None
        return proc.returncode, proc.stdout + proc.stderr, result, seconds

    run.workdir = workdir
    return run


@pytest.fixture(scope="module")
def exact_run(launch):
    rc, output, result, _ = launch("exact")
    assert rc == 0, output
    return result, output


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_two_ranks_train_as_one_process_on_the_global_batch(exact_run, name):
    result = exact_run[0][name]
    assert result["weight_diff"] < 1e-5, result["weight_diff"]
    numpy.testing.assert_allclose(result["history"]["loss"], result["ref_history"]["loss"],
                                  rtol=1e-4)


def test_local_batchnorm_keeps_ranks_identical_but_is_not_global(exact_run):
    result = exact_run[0]["local_bn"]
    assert result["ranks_equal"]  # moving statistics averaged at the end of each epoch
    assert result["weight_diff"] > 1e-3  # each rank normalised with its shard's statistics


def test_rank_helpers(exact_run):
    assert exact_run[0]["helpers"] == {"size": 2, "local_size": 2, "rank_sum": 1.0,
                                       "mean": [0.5, 2.0], "broadcast": {"from": 1}}


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_weights_are_identical_on_every_rank_after_every_step(exact_run, name):
    result = exact_run[0][name]
    assert result["steps"] == 3 * 4  # 3 epochs of 99 rows in batches of 32 (the last: 3)
    assert result["differ"] == 0
    assert result["ranks_equal"]


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_logs_and_callback_decisions_are_global(exact_run, name):
    result = exact_run[0][name]
    for key in ("accuracy", "val_loss", "val_accuracy"):
        numpy.testing.assert_allclose(result["history"][key], result["ref_history"][key],
                                      rtol=1e-4, atol=1e-6)
    assert result["lr"] == pytest.approx(result["ref_lr"])
    assert result["lr"] < (0.1 if name == "sgd" else 0.02)  # ReduceLROnPlateau acted
    assert result["epochs"] == result["ref_epochs"] == 3  # EarlyStopping, on both


def test_only_rank_0_prints_and_writes_files(exact_run, launch):
    output = exact_run[1]
    assert "[0] Epoch 1/4" in output
    assert "[1] Epoch" not in output and "[1] 4/4" not in output
    files = {p.name for p in launch.workdir.iterdir()}
    assert "sgd_log_rank0.csv" in files and "sgd_ckpt_rank0_1.fastnn" in files
    assert not any("rank1" in name for name in files)


def test_resuming_from_a_checkpoint_continues_exactly(exact_run, launch):
    rc, output, result, _ = launch("resume")
    assert rc == 0, output
    assert result["weight_diff"] == 0.0  # bit for bit


def test_a_rank_that_raises_ends_the_job_with_its_error_on_rank_0(launch):
    rc, output, _, seconds = launch("raise")
    assert rc != 0, output
    assert "[0] fastnn.distributed: rank 1 of 2 raised" in output, output
    assert "simulated failure on one rank" in output
    assert seconds < 60


def test_a_rank_that_stops_answering_times_out_instead_of_hanging(launch):
    rc, output, _, seconds = launch("hang", watchdog_s=3)
    assert rc != 0, output
    assert "did not complete within 3 s" in output, output
    assert seconds < 60


def test_a_rank_that_dies_ends_the_job(launch):
    rc, output, _, seconds = launch("die", watchdog_s=5)
    assert rc != 0, output
    assert seconds < 60


def test_mismatched_models_are_refused_at_the_start_of_fit(launch):
    rc, output, _, _ = launch("mismatch")
    assert rc != 0, output
    assert "ConfigMismatchError" in output, output
    assert "model.layers[0].config.units: rank 0 has 12, rank 1 has 13" in output, output


def test_ranks_given_different_data_are_refused_at_the_start_of_fit(launch):
    rc, output, _, _ = launch("other_data")
    assert rc != 0, output
    assert "fit.data_sample: rank 0 has" in output, output


def test_one_process_without_mpiexec_trains_as_without_the_wrapper(launch):
    rc, output, result, _ = launch("single", ranks=1)
    assert rc == 0, output
    assert result == {"same_history": True, "raised": True}


def test_the_benchmark_script_runs(launch, repo_root, tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(pathlib.Path(fastnn.__file__).resolve().parent.parent),
         os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(repo_root / "bench" / "distributed.py"),
                           "--smoke", "--rounds", "1", "--repeats", "1",
                           "--only", "train_medium", "--json", str(out)],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    row = json.loads(out.read_text())["rows"][0]
    assert row["workload"] == "train_medium" and 0 < row["allreduce_share"] < 1
    assert row["mpi_samples_per_s"] > 0 and row["single_samples_per_s"] > 0


# ------------------------------------------------------------------ without MPI
def test_fastnn_imports_without_mpi4py():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "import fastnn, fastnn.distributed as d\n"
            "try:\n    d.init()\nexcept ImportError as e:\n    print('IMPORTERROR', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert 'IMPORTERROR' in proc.stdout and "fastnn-toolkit[mpi]" in proc.stdout


class _SumOfTopProbability(metrics.Metric):
    """A metric written the Keras way: its state lives in add_variable variables."""

    def __init__(self):
        super().__init__(name="top_sum")
        self.total = self.add_variable(shape=(), dtype="float64", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.total.assign_add(float(numpy.asarray(y_pred, "float64").max(axis=1).sum()))

    def result(self):
        return float(self.total.numpy())


@pytest.mark.parametrize("make", [
    _SumOfTopProbability,
    lambda: metrics.SparseCategoricalAccuracy(),
    lambda: metrics.Precision(),
    lambda: metrics.Recall(thresholds=[0.3, 0.6]),
    lambda: metrics.F1Score(average="macro"),
])
def test_merged_metric_states_equal_the_metric_over_all_samples(make):
    rng = numpy.random.default_rng(3)
    pred = rng.uniform(size=(40, 3)).astype("float32")
    pred /= pred.sum(axis=1, keepdims=True)
    labels = rng.integers(0, 3, size=40)
    whole = make()
    sparse = isinstance(whole, metrics.SparseCategoricalAccuracy)
    y = labels if sparse else numpy.eye(3)[labels]
    if isinstance(whole, (metrics.Precision, metrics.Recall)):
        y, pred = y[:, :1], pred[:, :1]
    whole.update_state(y, pred)
    halves = [make(), make()]
    halves[0].update_state(y[:15], pred[:15])
    halves[1].update_state(y[15:], pred[15:])
    total = _run._add(_run._add(None, _run._state(halves[0])), _run._state(halves[1]))
    merged = _run._with_state(halves[0], total)
    numpy.testing.assert_allclose(merged.result(), whole.result(), rtol=1e-12)
    assert halves[0].result() != pytest.approx(whole.result())  # merging did something


def _thread_sum(parts):
    """A cross_replica_sum for len(parts) threads standing in for ranks."""
    barrier = threading.Barrier(len(parts))
    slots = [None] * len(parts)

    def make(r):
        def reduce(values):
            slots[r] = numpy.array(values, dtype="float64")
            barrier.wait()
            total = sum(slots)
            barrier.wait()
            return total
        return reduce
    return [make(r) for r in range(len(parts))]


def test_synchronized_batchnorm_on_shards_equals_batchnorm_on_the_global_batch():
    rng = numpy.random.default_rng(5)
    x = rng.normal(1.0, 2.0, size=(20, 4)).astype("float64")
    dy = rng.normal(size=(20, 4)).astype("float64")
    whole = layers.BatchNormalization(dtype="float64")
    whole.build((4,))
    y_whole, cache = whole.forward(x, training=True)
    dx_whole = whole.backward(dy / 20, cache)
    shards = [slice(0, 8), slice(8, 20)]
    ranks = [layers.BatchNormalization(synchronized=True, dtype="float64") for _ in shards]
    outputs = [None, None]

    def run(r, reduce):
        layer = ranks[r]
        layer.build((4,))
        layer.cross_replica_sum = reduce
        part = shards[r]
        m = x[part].shape[0]
        y, c = layer.forward(x[part], training=True)
        dx = layer.backward(dy[part] / m, c)  # each rank's loss is a mean over its shard
        outputs[r] = (y, dx * m / 20, layer.gamma.grad * m / 20, layer.moving_mean.value)

    threads = [threading.Thread(target=run, args=(r, f))
               for r, f in enumerate(_thread_sum(shards))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    numpy.testing.assert_allclose(numpy.concatenate([o[0] for o in outputs]), y_whole,
                                  atol=1e-12)
    numpy.testing.assert_allclose(numpy.concatenate([o[1] for o in outputs]), dx_whole,
                                  atol=1e-12)
    numpy.testing.assert_allclose(outputs[0][2] + outputs[1][2], whole.gamma.grad, atol=1e-12)
    numpy.testing.assert_allclose(outputs[0][3], whole.moving_mean.value, atol=1e-12)


def test_synchronized_batchnorm_without_a_job_is_plain_batchnorm():
    x = numpy.random.default_rng(1).normal(size=(16, 3)).astype("float32")
    plain, synced = layers.BatchNormalization(), layers.BatchNormalization(synchronized=True)
    for layer in (plain, synced):
        layer.build((3,))
    numpy.testing.assert_array_equal(plain.forward(x, True)[0], synced.forward(x, True)[0])
    assert synced.get_config()["synchronized"] is True
