"""Single-file saving: round trips, resumable training, atomic writes, hostile files."""
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import layers, optimizers
from fastnn.backend import use_backend
from fastnn.models import InvalidModelFileError, load_model
from fastnn.utils import set_random_seed



def make_model(optimizer="nadam", seed=0, dropout_seed=None):
    set_random_seed(seed)
    model = fastnn.Sequential([
        layers.Dense(16, activation="relu", input_shape=(6,)),
        layers.BatchNormalization(),
        layers.Dropout(0.2, seed=dropout_seed),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def make_data(n=96, seed=1):
    rng = numpy.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    return x, (x[:, 0] + x[:, 1] > 0).astype("int64") + (x[:, 2] > 1)


@pytest.fixture(scope="module")
def trained_file(tmp_path_factory):
    model = make_model()
    x, y = make_data()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path_factory.mktemp("saved") / "model.fastnn"
    model.save(path)
    return path, model


# ----------------------------------------------------------------- round trips
def test_round_trip_restores_architecture_weights_compile_and_optimizer(trained_file):
    path, model = trained_file
    loaded = load_model(path)
    x, _ = make_data(10, seed=5)
    numpy.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.get_config() == model.get_config()
    assert type(loaded.optimizer) is optimizers.Nadam
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 12
    assert loaded.optimizer.u_product == model.optimizer.u_product
    assert sorted(loaded.optimizer.state) == sorted(model.optimizer.state) == ["m", "v"]
    for name in model.optimizer.state:
        numpy.testing.assert_array_equal(loaded.optimizer.state[name],
                                         model.optimizer.state[name])
    assert type(loaded.loss) is type(model.loss)
    assert loaded.metrics_names == ["loss", "accuracy"]
    x, y = make_data()
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))


def test_file_is_a_zip_with_a_readable_config(trained_file):
    path, _ = trained_file
    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("config.json"))
        names = zf.namelist()
    assert config["format"] == "fastnn" and config["format_version"] == 1
    assert config["fastnn_version"] == fastnn.__version__
    assert config["compile"]["optimizer"]["class_name"] == "Nadam"
    assert config["compile"]["metrics"] == ["accuracy"]
    assert "optimizer/m.npy" in names and "weights/7.npy" in names


def test_include_optimizer_false_stores_no_training_state(tmp_path, trained_file):
    _, model = trained_file
    path = tmp_path / "light.fastnn"
    model.save(path, include_optimizer=False)
    with zipfile.ZipFile(path) as zf:
        assert not [n for n in zf.namelist() if n.startswith("optimizer/")]
    loaded = load_model(path)
    assert loaded.optimizer.iterations == 0 and type(loaded.optimizer) is optimizers.Nadam
    numpy.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])


def test_compile_false_returns_an_uncompiled_model(trained_file):
    path, model = trained_file
    loaded = load_model(path, compile=False)
    assert loaded.loss is None and loaded.optimizer is None
    numpy.testing.assert_array_equal(loaded.predict(make_data(4)[0]),
                                     model.predict(make_data(4)[0]))


def test_schedule_and_adam_state_round_trip(tmp_path):
    schedule = optimizers.schedules.ExponentialDecay(0.01, decay_steps=3, decay_rate=0.5)
    model = make_model(optimizers.Adam(learning_rate=schedule, amsgrad=True))
    x, y = make_data()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    model.save(tmp_path / "m.fastnn")
    loaded = load_model(tmp_path / "m.fastnn")
    assert loaded.optimizer.learning_rate == model.optimizer.learning_rate == 0.01 * 0.5
    numpy.testing.assert_array_equal(loaded.optimizer.state["vhat"],
                                     model.optimizer.state["vhat"])


def test_unbuilt_and_uncompiled_models_round_trip(tmp_path):
    model = fastnn.Sequential([layers.Dense(4), layers.Dense(2)], name="lazy")
    model.save(tmp_path / "lazy.fastnn")
    loaded = load_model(tmp_path / "lazy.fastnn")
    assert not loaded.built and loaded.loss is None and loaded.name == "lazy"
    assert loaded.predict(numpy.ones((2, 3), "float32")).shape == (2, 2)


def test_save_weights_and_load_weights(tmp_path, trained_file):
    _, model = trained_file
    model.save_weights(tmp_path / "w.fastnn")
    other = make_model(seed=7)
    other.build()
    other.load_weights(tmp_path / "w.fastnn")
    for a, b in zip(other.get_weights(), model.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    with pytest.raises(InvalidModelFileError, match="only weights"):
        load_model(tmp_path / "w.fastnn")


def test_load_weights_into_a_different_architecture_is_a_value_error(tmp_path, trained_file):
    _, model = trained_file
    model.save_weights(tmp_path / "w.fastnn")
    small = fastnn.Sequential([layers.Dense(2, input_shape=(6,))])
    before = small.get_weights() if small.built else None
    with pytest.raises(ValueError, match="weight arrays") as info:
        small.load_weights(tmp_path / "w.fastnn")
    assert not isinstance(info.value, InvalidModelFileError)
    assert before is None or all(numpy.array_equal(a, b)
                                 for a, b in zip(before, small.get_weights()))


def test_saving_an_unregistered_layer_is_refused(tmp_path):
    class Custom(layers.Dense):
        pass

    model = fastnn.Sequential([Custom(2, input_shape=(3,))])
    with pytest.raises(ValueError, match="not a registered fastnn layer"):
        model.save(tmp_path / "x.fastnn")
    assert not os.listdir(tmp_path)


def test_files_are_portable_across_backends(tmp_path, trained_file):
    path, model = trained_file
    x, _ = make_data(20, seed=3)
    expected = model.predict(x)
    with use_backend("numpy"):
        on_numpy = load_model(path)
        numpy.testing.assert_allclose(on_numpy.predict(x), expected, rtol=1e-5, atol=1e-6)
        on_numpy.save(tmp_path / "from_numpy.fastnn")
    back = load_model(tmp_path / "from_numpy.fastnn")
    numpy.testing.assert_array_equal(back.predict(x), expected)


# ----------------------------------------------------------------- resuming
RESUME_CHILD = """
import sys, numpy
import fastnn
from fastnn.models import load_model
sys.path.insert(0, {tests!r})
from test_saving import make_data
model = load_model({path!r})
x, y = make_data()
model.fit(x, y, epochs=10, initial_epoch=5, batch_size=16, verbose=0)
numpy.savez({out!r}, *model.get_weights())
"""


@pytest.mark.parametrize("optimizer,dropout_seed", [("nadam", None), ("sgd_momentum", None),
                                                    ("sgd_momentum", 3)])
def test_resume_in_a_new_process_matches_uninterrupted_training(tmp_path, optimizer,
                                                                dropout_seed, subprocess_env):
    def opt():
        if optimizer == "nadam":
            return optimizers.Nadam(learning_rate=optimizers.schedules.CosineDecay(0.01, 40))
        return optimizers.SGD(0.05, momentum=0.9)

    x, y = make_data()
    straight = make_model(opt(), dropout_seed=dropout_seed)
    straight.fit(x, y, epochs=10, batch_size=16, verbose=0)

    first_half = make_model(opt(), dropout_seed=dropout_seed)
    first_half.fit(x, y, epochs=5, batch_size=16, verbose=0)
    path, out = tmp_path / "half.fastnn", tmp_path / "resumed.npz"
    first_half.save(path)
    set_random_seed(12345)  # the parent's stream must not matter to the child
    code = RESUME_CHILD.format(tests=os.path.dirname(__file__), path=str(path), out=str(out))
    subprocess.run([sys.executable, "-c", code], check=True, env=subprocess_env, timeout=60)
    resumed = numpy.load(out)
    expected = straight.get_weights()
    assert len(resumed.files) == len(expected)
    for i, want in enumerate(expected):
        numpy.testing.assert_array_equal(resumed[f"arr_{i}"], want)


# ----------------------------------------------------------------- atomic writes
def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    from fastnn.utils.atomic import atomic_write
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write(b"half of the new")
            raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def _version_model(value):
    model = fastnn.Sequential([layers.Dense(600, input_shape=(600,)), layers.Dense(600)])
    model.build()
    model.set_weights([numpy.full(w.shape, value, "float32") for w in model.weights])
    return model


def test_sigkill_during_save_never_leaves_a_broken_file(tmp_path):
    """A child saves two versions of a ~2.9 MB model in a loop; we SIGKILL it at random
    moments. The target must always be absent or one complete version."""
    models = [_version_model(1.0), _version_model(2.0)]
    target = tmp_path / "model.fastnn"
    rng = numpy.random.default_rng(0)
    seen, killed_mid_write = set(), 0
    for _ in range(30):
        pid = os.fork()
        if pid == 0:  # child: save forever until killed
            try:
                for i in range(1_000_000):
                    models[i % 2].save(target)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.0, 0.08))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        for leftover in tmp_path.iterdir():
            if leftover.name != target.name:
                assert leftover.name.startswith(".model.fastnn.") and \
                    leftover.name.endswith(".tmp")
                leftover.unlink()
                killed_mid_write += 1
        if not target.exists():
            seen.add("absent")
            continue
        weights = load_model(target).get_weights()
        values = {float(v) for w in weights for v in numpy.unique(w)}
        assert values in ({1.0}, {2.0}), values
        seen.add(values.pop())
    # The kills did land at different moments, many of them in the middle of a write.
    assert {1.0, 2.0} <= seen and killed_mid_write >= 3, (seen, killed_mid_write)


# ----------------------------------------------------------------- hostile files
def _rezip(path, out, config=None, extra=None, drop=(), replace=None):
    """Copy a model file, optionally with a new config / extra / dropped / replaced entries."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            if name in drop:
                continue
            data = src.read(name)
            if name == "config.json" and config is not None:
                data = json.dumps(config).encode()
            if replace and name in replace:
                data = replace[name]
            dst.writestr(name, data)
        for name, data in (extra or {}).items():
            dst.writestr(name, data)
    return out


def _config(path):
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("config.json"))


def _npy(array, allow_pickle=False):
    buf = io.BytesIO()
    numpy.lib.format.write_array(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def test_a_layer_class_outside_the_registry_is_refused(tmp_path, trained_file):
    path, _ = trained_file
    config = _config(path)
    config["model"]["layers"][0]["class_name"] = "os.system"
    with pytest.raises(InvalidModelFileError, match="unknown layer class 'os.system'"):
        load_model(_rezip(path, tmp_path / "bad.fastnn", config))


def test_pickled_arrays_are_refused(tmp_path, trained_file):
    path, _ = trained_file
    evil = _npy(numpy.array([object()] * 96, dtype=object), allow_pickle=True)
    with pytest.raises(InvalidModelFileError, match="weights/0.npy"):
        load_model(_rezip(path, tmp_path / "bad.fastnn", replace={"weights/0.npy": evil}))


def test_header_shape_must_match_the_manifest(tmp_path, trained_file):
    path, _ = trained_file
    wrong = _npy(numpy.zeros((16, 6), "float32"))  # transposed kernel, same byte count
    with pytest.raises(InvalidModelFileError, match=r"\(16, 6\)"):
        load_model(_rezip(path, tmp_path / "bad.fastnn", replace={"weights/0.npy": wrong}))


def test_huge_layer_in_config_is_refused_before_allocating(tmp_path, trained_file):
    path, _ = trained_file
    config = _config(path)
    config["model"]["layers"][0]["config"]["units"] = 10 ** 9
    start = time.perf_counter()
    with pytest.raises(InvalidModelFileError, match="does not hold"):
        load_model(_rezip(path, tmp_path / "bad.fastnn", config))
    assert time.perf_counter() - start < 2


def test_compressed_entries_are_refused(tmp_path, trained_file):
    """A deflated entry could be a zip bomb: fastnn files store entries as is."""
    path, _ = trained_file
    bomb = tmp_path / "bomb.fastnn"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bomb, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        dst.writestr("pad.bin", b"\0" * (50 << 20), compress_type=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(InvalidModelFileError, match="compressed"):
        load_model(bomb)


def test_too_many_entries_are_refused(tmp_path, trained_file, monkeypatch):
    from fastnn.models import saving
    path, _ = trained_file
    monkeypatch.setattr(saving, "MAX_ENTRIES", 5)
    with pytest.raises(InvalidModelFileError, match="entries"):
        load_model(path)


def test_a_newer_format_version_names_the_problem(tmp_path, trained_file):
    path, _ = trained_file
    config = _config(path)
    config["format_version"] = 99
    with pytest.raises(InvalidModelFileError, match="newer fastnn"):
        load_model(_rezip(path, tmp_path / "new.fastnn", config))


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04garbage", b"not a zip at all" * 100])
def test_foreign_files_are_refused(tmp_path, content):
    path = tmp_path / "foreign.fastnn"
    path.write_bytes(content)
    with pytest.raises(InvalidModelFileError, match="foreign.fastnn"):
        load_model(path)


def test_a_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope.fastnn")


def _load_or_refuse(path, data):
    """Load ``data`` from ``path``: a model, or the documented error with the random
    stream untouched."""
    path.write_bytes(data)
    before = _stream_state()
    try:
        model = load_model(path)
    except InvalidModelFileError as exc:
        assert str(path) in str(exc)
        assert _stream_state() == before, "a refused load changed the random stream"
        return None
    assert isinstance(model, fastnn.Sequential)
    return model


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    model = make_model("adam")
    x, y = make_data(32)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    path = tmp_path_factory.mktemp("fuzz") / "small.fastnn"
    model.save(path)
    return path.read_bytes()


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _mutated(data, blob):
    """``blob`` with bytes flipped, truncated, spliced or inserted, as ``data`` draws."""
    blob = bytearray(blob)
    kind = data.draw(st.sampled_from(["flip", "truncate", "splice", "insert"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            pos = data.draw(st.integers(0, len(blob) - 1))
            blob[pos] = data.draw(st.integers(0, 255))
    elif kind == "truncate":
        blob = blob[:data.draw(st.integers(0, len(blob) - 1))]
    elif kind == "splice":
        a = data.draw(st.integers(0, len(blob)))
        b = data.draw(st.integers(a, len(blob)))
        blob[a:b] = data.draw(st.binary(max_size=64))
    else:
        pos = data.draw(st.integers(0, len(blob)))
        blob[pos:pos] = data.draw(st.binary(min_size=1, max_size=64))
    return bytes(blob)


@FUZZ
@given(data=st.data())
def test_fuzz_bytes_give_a_model_or_the_documented_error(tmp_path, small_file, data):
    _load_or_refuse(tmp_path / "fuzzed.fastnn", _mutated(data, small_file))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 40, 2 ** 40) | st.floats()
    | st.text(max_size=12) | st.sampled_from(["Dense", "relu", "float64", "Adam", "m"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@FUZZ
@given(data=st.data())
def test_fuzz_config_gives_a_model_or_the_documented_error(tmp_path, small_file, data):
    """Structure-aware fuzzing: valid zip and CRCs, hostile config.json values."""
    src = tmp_path / "src.fastnn"
    src.write_bytes(small_file)
    config = _config(src)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(config) if p]
        where = data.draw(st.sampled_from(paths))
        node = config
        for key in where[:-1]:
            node = node[key]
        if data.draw(st.booleans()) and isinstance(node, dict):
            del node[where[-1]]
        else:
            node[where[-1]] = data.draw(json_values)
    out = _rezip(src, tmp_path / "out.fastnn", config)
    _load_or_refuse(tmp_path / "fuzzed.fastnn", out.read_bytes())


def test_a_model_whose_optimizer_has_not_stepped_saves_and_loads(tmp_path):
    x, y = make_data()
    model = make_model()
    model.fit(x, y, epochs=1, verbose=0)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")  # fine-tuning
    model.save(tmp_path / "m.fastnn")
    again = load_model(tmp_path / "m.fastnn")
    numpy.testing.assert_array_equal(again.predict(x), model.predict(x))
    again.fit(x, y, epochs=1, verbose=0)


# ----------------------------------------------------------------- bounded loading
def _saved(tmp_path, model, name="m.fastnn", **kwargs):
    path = tmp_path / name
    model.save(path, **kwargs)
    return path


def test_a_huge_declared_input_shape_is_refused_before_allocating(tmp_path):
    """A weightless model (one Activation) bounds nothing by its weights: the declared
    input shape itself is bounded, before the probe pass would allocate it."""
    model = fastnn.Sequential([layers.Activation("relu", input_shape=(4,))])
    model.build()
    path = _saved(tmp_path, model)
    config = _config(path)
    config["model"]["input_shape"] = [2 ** 28]
    config["model"]["layers"][0]["config"]["input_shape"] = [2 ** 28]
    start = time.perf_counter()
    with pytest.raises(InvalidModelFileError, match="elements per sample"):
        load_model(_rezip(path, tmp_path / "huge.fastnn", config))
    assert time.perf_counter() - start < 1


def test_a_huge_layer_output_is_refused_before_the_probe(tmp_path):
    model = fastnn.Sequential([layers.Flatten(input_shape=(4, 4))])
    model.build()
    path = _saved(tmp_path, model)
    config = _config(path)
    config["model"]["input_shape"] = [2 ** 12, 2 ** 12]
    config["model"]["layers"][0]["config"].pop("input_shape", None)
    with pytest.raises(InvalidModelFileError, match="elements per sample"):
        load_model(_rezip(path, tmp_path / "huge.fastnn", config))


def _zip_of_empty_entries(n):
    """A valid zip of ``n`` empty stored entries, built directly (zipfile is slow at this)."""
    import struct
    import zlib
    local, directory = [], []
    offset = 0
    for i in range(n):
        name = b"e%07d" % i
        header = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, zlib.crc32(b""), 0,
                             0, len(name), 0) + name
        directory.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0,
                                     0, len(name), 0, 0, 0, 0, 0, offset) + name)
        local.append(header)
        offset += len(header)
    body, central = b"".join(local), b"".join(directory)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, min(n, 0xFFFF), min(n, 0xFFFF),
                      len(central), len(body), 0)
    return body + central + end


def test_the_entry_count_is_checked_before_zipfile_parses_the_directory(tmp_path,
                                                                        trained_file,
                                                                        monkeypatch):
    from fastnn.models import saving
    path, _ = trained_file

    def no_parsing(*args, **kwargs):
        raise AssertionError("zipfile parsed the central directory")

    monkeypatch.setattr(saving, "MAX_ENTRIES", 5)
    monkeypatch.setattr(zipfile, "ZipFile", no_parsing)
    with pytest.raises(InvalidModelFileError, match="entries") as info:
        load_model(path)
    assert "zipfile parsed" not in str(info.value)


def test_a_zip_of_many_empty_entries_is_refused_quickly(tmp_path):
    path = tmp_path / "many.fastnn"
    path.write_bytes(_zip_of_empty_entries(60_000))
    start = time.perf_counter()
    with pytest.raises(InvalidModelFileError, match="entries"):
        load_model(path)
    assert time.perf_counter() - start < 0.5


def test_npy_header_and_data_must_fill_the_entry_exactly(tmp_path, trained_file):
    """A header-length field one byte short would shift every value by a byte."""
    path, _ = trained_file
    with zipfile.ZipFile(path) as zf:
        raw = bytearray(zf.read("weights/0.npy"))
    header_len = int.from_bytes(raw[8:10], "little")
    raw[8:10] = (header_len - 1).to_bytes(2, "little")
    with pytest.raises(InvalidModelFileError, match="weights/0.npy"):
        load_model(_rezip(path, tmp_path / "shifted.fastnn",
                          replace={"weights/0.npy": bytes(raw)}))
    padded = _npy(numpy.zeros((6, 16), "float32")) + b"\0" * 4
    with pytest.raises(InvalidModelFileError, match="exactly"):
        load_model(_rezip(path, tmp_path / "padded.fastnn",
                          replace={"weights/0.npy": padded}))


def _in_thread(fn, timeout=10):
    """Run ``fn`` in a daemon thread; (finished, exception raised)."""
    import threading
    outcome = []

    def run():
        try:
            fn()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 -- handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return (not thread.is_alive()), (outcome[0] if outcome else None)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path, trained_file):
    fifo = tmp_path / "model.fastnn"
    os.mkfifo(fifo)
    model = make_model()
    model.build()
    try:
        for call in (lambda: load_model(fifo), lambda: model.load_weights(fifo)):
            finished, exc = _in_thread(call, timeout=5)
            assert finished, "loading a FIFO blocked"
            assert isinstance(exc, InvalidModelFileError) and "FIFO" in str(exc), exc
    finally:
        try:  # unblock a reader stuck in open() (only on a broken loader)
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_devices_and_links_to_them_are_refused(tmp_path, device):
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    link = tmp_path / "model.fastnn"
    link.symlink_to(device)
    for path in (device, link):
        finished, exc = _in_thread(lambda p=path: load_model(p), timeout=5)
        assert finished and isinstance(exc, InvalidModelFileError), exc
        assert "character device, not a regular file" in str(exc)


def test_a_directory_is_refused_as_not_a_regular_file(tmp_path):
    with pytest.raises(InvalidModelFileError, match="directory"):
        load_model(tmp_path)


def test_absurd_weights_are_refused(tmp_path, trained_file):
    path, model = trained_file
    weights = model.get_weights()
    huge = _npy(numpy.full(weights[0].shape, 3e38, "float32"))
    with pytest.raises(InvalidModelFileError, match="beyond"):
        load_model(_rezip(path, tmp_path / "huge.fastnn", replace={"weights/0.npy": huge}))
    variance_index = next(i for i, w in enumerate(model.weights)
                          if w.path.endswith("/moving_variance"))
    negative = _npy(-numpy.ones(weights[variance_index].shape, "float32"))
    with pytest.raises(InvalidModelFileError, match="negative variance"):
        load_model(_rezip(path, tmp_path / "neg.fastnn",
                          replace={f"weights/{variance_index}.npy": negative}))


def test_negative_second_moments_are_refused(tmp_path, trained_file):
    path, model = trained_file
    negative = _npy(-numpy.ones(model.optimizer.state["v"].shape, "float32"))
    with pytest.raises(InvalidModelFileError, match="'v' holds negative"):
        load_model(_rezip(path, tmp_path / "neg.fastnn", replace={"optimizer/v.npy": negative}))


def test_a_model_whose_output_overflows_is_refused(tmp_path):
    """Each weight is in range, but four layers of them overflow float32 on a zero input."""
    model = fastnn.Sequential([layers.Dense(16, input_shape=(16,))]
                              + [layers.Dense(16) for _ in range(3)])
    model.build()
    model.set_weights([numpy.full(w.shape, 1e10, "float32") for w in model.weights])
    with pytest.raises(InvalidModelFileError, match="not finite"):
        load_model(_saved(tmp_path, model))


@pytest.mark.parametrize("make,message", [
    (lambda: layers.ELU(alpha=float("nan")), "alpha"),
    (lambda: layers.BatchNormalization(epsilon=float("inf")), "epsilon"),
    (lambda: layers.LayerNormalization(epsilon=float("nan")), "epsilon"),
    (lambda: layers.Dense(2, dtype="int8"), "dtype"),
    (lambda: layers.Dense(2, dtype="not a dtype"), "dtype"),
])
def test_constructors_refuse_absurd_hyperparameters(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_nan_hyperparameters_in_a_file_are_refused(tmp_path):
    model = fastnn.Sequential([layers.Dense(3, input_shape=(2,)), layers.ELU()])
    model.build()
    path = _saved(tmp_path, model)
    config = _config(path)
    config["model"]["layers"][1]["config"]["alpha"] = float("nan")
    with pytest.raises(InvalidModelFileError, match="alpha"):
        load_model(_rezip(path, tmp_path / "nan.fastnn", config))


def test_deeply_nested_config_is_refused_before_parsing(tmp_path, trained_file, monkeypatch):
    path, _ = trained_file
    raw = _config(path)
    text = json.dumps(raw)[:-1] + ', "junk": ' + "[" * 200 + "]" * 200 + "}"
    parsed = []
    real_loads = json.loads
    monkeypatch.setattr(json, "loads", lambda s, *a, **k: parsed.append(len(s)) or
                        real_loads(s, *a, **k))
    with pytest.raises(InvalidModelFileError, match="nested 20"):
        load_model(_rezip(path, tmp_path / "deep.fastnn", replace={"config.json": text.encode()}))
    assert not parsed, "config.json was parsed before its depth was checked"


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path, trained_file):
    path, _ = trained_file
    config = _config(path)
    config["model"]["name"] = "[[[[" * 100 + '\\"{{{{' * 50
    loaded = load_model(_rezip(path, tmp_path / "name.fastnn", config))
    assert loaded.name == config["model"]["name"]


def test_unknown_and_oversized_config_content_is_refused(tmp_path, trained_file):
    path, _ = trained_file
    config = _config(path)
    config["junk"] = [0] * 10
    with pytest.raises(InvalidModelFileError, match="unknown entries"):
        load_model(_rezip(path, tmp_path / "junk.fastnn", config))
    wide = json.dumps(_config(path))[:-1] + ', "junk": [' + ",".join(["[]"] * 50_000) + "]}"
    with pytest.raises(InvalidModelFileError, match="arrays and objects"):
        load_model(_rezip(path, tmp_path / "wide.fastnn", replace={"config.json": wide.encode()}))
    config = _config(path)
    config["model"]["name"] = "x" * (3 << 20)  # a known key, but more than the size bound
    start = time.perf_counter()
    with pytest.raises(InvalidModelFileError, match="larger than"):
        load_model(_rezip(path, tmp_path / "big.fastnn", config))
    assert time.perf_counter() - start < 1


def _stream_state():
    from fastnn.utils.random import get_rng
    return json.dumps(get_rng().bit_generator.state, sort_keys=True, default=str)


def test_loading_does_not_touch_the_random_stream(tmp_path, trained_file):
    _, model = trained_file
    light = _saved(tmp_path, model, "light.fastnn", include_optimizer=False)
    x, y = make_data()
    set_random_seed(0)
    before = _stream_state()
    loaded = load_model(light)
    assert _stream_state() == before
    bad = _npy(numpy.full(model.get_weights()[-1].shape, numpy.inf, "float32"))
    n = len(model.get_weights()) - 1
    with pytest.raises(InvalidModelFileError):
        load_model(_rezip(light, tmp_path / "bad.fastnn", replace={f"weights/{n}.npy": bad}))
    assert _stream_state() == before
    # so seed + load + fit repeats exactly
    loaded.fit(x, y, epochs=1, verbose=0)
    set_random_seed(0)
    again = load_model(light)
    again.fit(x, y, epochs=1, verbose=0)
    for a, b in zip(loaded.get_weights(), again.get_weights()):
        numpy.testing.assert_array_equal(a, b)


def test_data_around_the_zip_is_refused(tmp_path, trained_file):
    """Only a file that is exactly one zip loads: no second zip appended, no wrapper."""
    import tarfile
    path, _ = trained_file
    other = _saved(tmp_path, fastnn.Sequential([layers.Dense(1, input_shape=(1,))]), "o.fastnn")
    blob = path.read_bytes()
    cases = {"appended zip": blob + other.read_bytes(), "trailing bytes": blob + b"\0" * 512,
             "leading bytes": b"\0" * 512 + blob}
    wrapped = tmp_path / "wrapped.tar"
    with tarfile.open(wrapped, "w") as tar:
        tar.add(path, arcname="model.fastnn")
    cases["tar wrapper"] = wrapped.read_bytes()
    for name, data in cases.items():
        target = tmp_path / f"{name.replace(' ', '_')}.fastnn"
        target.write_bytes(data)
        with pytest.raises(InvalidModelFileError, match="zip") as info:
            load_model(target)
        assert "data" in str(info.value) or "start" in str(info.value), (name, info.value)


# ----------------------------------------------------------------- file metadata on save
def test_save_writes_through_a_symlink_to_its_target(tmp_path):
    model = make_model()
    model.build()
    target = tmp_path / "real" / "model.fastnn"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "latest.fastnn"
    link.symlink_to(target)
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    numpy.testing.assert_array_equal(load_model(target).get_weights()[0],
                                     model.get_weights()[0])
    assert sorted(os.listdir(target.parent)) == ["model.fastnn"]
    dangling = tmp_path / "next.fastnn"
    dangling.symlink_to(tmp_path / "real" / "new.fastnn")
    model.save_weights(dangling)
    assert dangling.is_symlink() and (tmp_path / "real" / "new.fastnn").is_file()


def test_save_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    model = make_model()
    model.build()
    path = tmp_path / "private.fastnn"
    path.write_bytes(b"old")
    os.chmod(path, 0o600)
    model.save(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    os.chmod(path, 0o640)
    model.save_weights(path)
    assert (path.stat().st_mode & 0o777) == 0o640


def test_save_refuses_to_replace_a_read_only_file(tmp_path):
    model = make_model()
    model.build()
    path = tmp_path / "frozen.fastnn"
    path.write_bytes(b"old")
    os.chmod(path, 0o444)
    with pytest.raises(PermissionError, match="read-only") as info:
        model.save(path)
    assert info.value.filename == str(path)
    assert path.read_bytes() == b"old" and (path.stat().st_mode & 0o777) == 0o444
    assert os.listdir(tmp_path) == ["frozen.fastnn"]


# ----------------------------------------------------------------- bounded loads, measured
# Loads run in a child process whose address space is capped (RLIMIT_AS) a fixed amount
# above what it uses once warmed up; each load is timed and its peak allocation traced.
LOAD_CHILD = r"""
import json, resource, sys, time, tracemalloc
from fastnn.models import InvalidModelFileError, load_model
from fastnn.utils.random import get_rng

paths, warm, headroom = json.load(open(sys.argv[1]))
load_model(warm)  # thread pools and lazy imports exist before the cap


def vm_size():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024


cap = vm_size() + headroom
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
results = []
for path in paths:
    state = json.dumps(get_rng().bit_generator.state, sort_keys=True, default=str)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        load_model(path)
        outcome = "loaded"
    except InvalidModelFileError as exc:
        outcome = "refused"
        cause = exc
        while cause is not None:
            if isinstance(cause, MemoryError):
                outcome = "out of memory"
            cause = cause.__cause__
        if json.dumps(get_rng().bit_generator.state, sort_keys=True, default=str) != state:
            outcome = "refused, random stream changed"
    except BaseException as exc:
        outcome = f"crash: {type(exc).__name__}: {exc}"
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    results.append([path, outcome, elapsed, peak])
print(json.dumps({"results": results,
                  "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""
LOAD_HEADROOM = 512 << 20      # address space a child may add to its warmed-up size
MAX_LOAD_SECONDS = 5.0         # per load, on a shared and noisy machine
MAX_LOAD_PEAK = 128 << 20      # traced allocations per load


def run_loads(paths, warm, headroom=LOAD_HEADROOM, timeout=300):
    """[(path, outcome, seconds, peak bytes)] and the child's max RSS for loads of ``paths``
    in one capped child process (the figures bench/fuzz_loading.py reports)."""
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump([[str(p) for p in paths], str(warm), headroom], spec)
    try:
        package_root = os.path.dirname(os.path.dirname(fastnn.__file__))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [package_root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        done = subprocess.run([sys.executable, "-c", LOAD_CHILD, spec.name], timeout=timeout,
                              capture_output=True, text=True, env=env, check=False)
    finally:
        os.unlink(spec.name)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    return report["results"], report["max_rss"]


def _assert_bounded(results):
    for path, outcome, seconds, peak in results:
        assert outcome in ("loaded", "refused"), (path, outcome)
        assert seconds < MAX_LOAD_SECONDS, (path, seconds)
        assert peak < MAX_LOAD_PEAK, (path, peak)


needs_rlimit = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="needs RLIMIT_AS and /proc (Linux)")


def hostile_files(directory, source):
    """Crafted files, one per way a load could run away; written under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    activation = fastnn.Sequential([layers.Activation("relu", input_shape=(4,))])
    activation.build()
    light = _saved(directory, activation, "activation.fastnn")
    config = _config(light)
    for i, shape in enumerate(([2 ** 28], [2 ** 22 + 1], [2 ** 40, 2 ** 40])):
        config["model"]["input_shape"] = shape
        files.append(_rezip(light, directory / f"input_{i}.fastnn", config))
    many = directory / "many.fastnn"
    many.write_bytes(_zip_of_empty_entries(200_000))
    files.append(many)
    text = json.dumps(_config(source))[:-1] + ', "junk": ' + "[" * 5000 + "]" * 5000 + "}"
    files.append(_rezip(source, directory / "deep.fastnn", replace={"config.json": text.encode()}))
    junk = json.dumps(_config(source))[:-1] + ', "junk": [' + ",".join(["[]"] * 600_000) + "]}"
    files.append(_rezip(source, directory / "wide.fastnn", replace={"config.json": junk.encode()}))
    with zipfile.ZipFile(source) as zf:
        raw = bytearray(zf.read("weights/0.npy"))
    raw[8:10] = (int.from_bytes(raw[8:10], "little") - 1).to_bytes(2, "little")
    files.append(_rezip(source, directory / "shifted.fastnn",
                        replace={"weights/0.npy": bytes(raw)}))
    config = _config(source)
    config["model"]["layers"][0]["config"]["units"] = 10 ** 9
    files.append(_rezip(source, directory / "units.fastnn", config))
    appended = directory / "appended.fastnn"
    appended.write_bytes(source.read_bytes() + light.read_bytes())
    files.append(appended)
    return files


@needs_rlimit
def test_hostile_files_load_in_bounded_time_and_memory(tmp_path, trained_file):
    path, _ = trained_file
    files = hostile_files(tmp_path / "hostile", path)
    results, _ = run_loads(files, path)
    _assert_bounded(results)
    assert {outcome for _, outcome, _, _ in results} == {"refused"}


@needs_rlimit
@settings(max_examples=3, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_fuzzed_files_load_in_bounded_time_and_memory(tmp_path, small_file, data):
    """40 mutated files per example, loaded in one capped child process."""
    directory = tmp_path / f"batch{time.monotonic_ns()}"
    directory.mkdir()
    warm = directory / "warm.fastnn"
    warm.write_bytes(small_file)
    files = []
    for i in range(40):
        files.append(directory / f"{i}.fastnn")
        files[-1].write_bytes(_mutated(data, small_file))
    results, _ = run_loads(files, warm)
    _assert_bounded(results)


def test_zip64_end_records_are_read(tmp_path, trained_file, monkeypatch):
    """Files over 2 GiB get zip64 end records; the layout check reads those too."""
    _, model = trained_file
    path = tmp_path / "zip64.fastnn"
    with monkeypatch.context() as patch:
        patch.setattr(zipfile, "ZIP64_LIMIT", 1000)
        model.save(path)
    assert b"PK\x06\x06" in path.read_bytes()[-200:]
    numpy.testing.assert_array_equal(load_model(path).get_weights()[0], model.get_weights()[0])
    blob = path.read_bytes()
    (tmp_path / "tail.fastnn").write_bytes(blob + b"\0")
    with pytest.raises(InvalidModelFileError, match="data after the zip"):
        load_model(tmp_path / "tail.fastnn")


def test_load_weights_refuses_absurd_values_and_leaves_the_model_as_it_was(tmp_path,
                                                                           trained_file):
    path, model = trained_file
    model.save_weights(tmp_path / "w.fastnn")
    huge = _npy(numpy.full(model.get_weights()[0].shape, 3e38, "float32"))
    bad = _rezip(tmp_path / "w.fastnn", tmp_path / "bad.fastnn", replace={"weights/0.npy": huge})
    other = make_model(seed=7)
    other.build()
    before = other.get_weights()
    with pytest.raises(InvalidModelFileError, match="beyond"):
        other.load_weights(bad)
    for a, b in zip(other.get_weights(), before):
        numpy.testing.assert_array_equal(a, b)
