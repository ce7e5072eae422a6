"""Model.quantize: int8 and bfloat16 inference programs, their accuracy, saving and guards."""
import threading

import numpy
import pytest

import fastnn
from fastnn import layers
from fastnn.backend import get_ops, use_backend
from fastnn.engine.program import inference_program
from fastnn.engine.quantize import output_errors, quantize_program
from fastnn.engine.stages import Kind

sklearn_datasets = pytest.importorskip("sklearn.datasets")


def _trained(loader, epochs=15):
    x, y = loader(return_X_y=True)
    x = (x / numpy.maximum(x.max(axis=0), 1e-9)).astype("float32")
    rng = numpy.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    cut = int(0.7 * len(x))
    fastnn.utils.set_random_seed(0)
    model = fastnn.Sequential([fastnn.Input(shape=(x.shape[1],)),
                               layers.Dense(96, activation="relu"),
                               layers.BatchNormalization(), layers.Dropout(0.2),
                               layers.Dense(48, activation="relu"),
                               layers.Dense(int(y.max()) + 1, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:cut], y[:cut], epochs=epochs, batch_size=32, verbose=0)
    return model, x[cut:], y[cut:]


@pytest.fixture(scope="module", params=["load_digits", "load_breast_cancer"])
def trained(request):
    return _trained(getattr(sklearn_datasets, request.param))


def _accuracy(model, x, y):
    return float((model.predict(x, verbose=0).argmax(axis=1) == y).mean())


@pytest.mark.parametrize("mode,limit", [("int8", 0.005), ("bfloat16", 1e-3)])
def test_accuracy_holds(trained, mode, limit):
    model, x, y = trained
    before, probs = _accuracy(model, x, y), model.predict(x, verbose=0)
    clone = fastnn.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.quantize(mode)
    assert clone.quantization == mode
    assert abs(_accuracy(clone, x, y) - before) <= limit
    low = clone.predict(x, verbose=0)
    assert not numpy.array_equal(low, probs)  # the quantized program really ran
    numpy.testing.assert_allclose(low, probs, atol=0.1 if mode == "int8" else 0.01)


def test_the_program_is_rewritten_not_forked(trained):
    model, x, _ = trained
    ops = get_ops()
    folded = inference_program(model, ops, fold=True)
    program = quantize_program(folded, ops, "int8")
    assert [s.kind for s in program.stages] == [Kind.INT8_DENSE] * 3
    assert program.stages[0].quantized.relu and program.stages[0].act_name == "linear"
    assert program.stages[0].quantized.nbytes < folded.stages[0].kernel.nbytes / 3
    clone = fastnn.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.quantize("int8")
    assert repr(clone._inference_executor()) == \
        "<Executor compiled(INT8_DENSE, INT8_DENSE, INT8_DENSE)>"  # one nogil call
    errors = output_errors(folded, program, ops, x)
    assert [e[0] for e in errors] == [0, 1, 2]
    assert all(0 < e[2] < 0.05 for e in errors)


@pytest.mark.parametrize("mode", ["int8", "bfloat16"])
def test_cpu_kernels_match_the_numpy_reference(trained, mode):
    model, x, _ = trained
    clone = fastnn.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.quantize(mode)
    cpu = clone.predict(x, verbose=0)
    with use_backend("numpy"):
        reference = clone.predict(x, verbose=0)
    numpy.testing.assert_allclose(cpu, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["int8", "bfloat16"])
def test_save_and_load_keep_the_mode(trained, mode, tmp_path):
    model, x, y = trained
    clone = fastnn.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    clone.quantize(mode)
    clone.save(tmp_path / "q.fastnn")
    loaded = fastnn.models.load_model(tmp_path / "q.fastnn")
    assert loaded.quantization == mode
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), clone.predict(x, verbose=0))
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(clone.evaluate(x, y, verbose=0))


def test_a_file_with_an_unknown_quantization_is_refused(trained, tmp_path):
    import json
    import zipfile
    model, _, _ = trained
    model.save(tmp_path / "m.fastnn")
    with zipfile.ZipFile(tmp_path / "m.fastnn") as z:
        entries = {name: z.read(name) for name in z.namelist()}
    for bad in ("int4", ["int8"], 8):
        config = json.loads(entries["config.json"])
        config["quantization"] = bad
        with zipfile.ZipFile(tmp_path / "bad.fastnn", "w", zipfile.ZIP_STORED) as z:
            for name, data in entries.items():
                z.writestr(name, json.dumps(config) if name == "config.json" else data)
        with pytest.raises(fastnn.models.InvalidModelFileError, match="quantization"):
            fastnn.models.load_model(tmp_path / "bad.fastnn")


def test_evaluate_uses_the_quantized_outputs(trained):
    model, x, y = trained
    clone = fastnn.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.compile("sgd", "sparse_categorical_crossentropy")
    clone.quantize("int8")
    probs = clone.predict(x, verbose=0)
    expected = -numpy.log(probs[numpy.arange(len(y)), y]).mean()
    assert clone.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-4)


def test_set_weights_quantizes_again(trained):
    model, x, _ = trained
    clone = fastnn.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.quantize("int8")
    before = clone.predict(x, verbose=0)
    clone.set_weights([w * 0.5 for w in model.get_weights()])
    assert not numpy.allclose(clone.predict(x, verbose=0), before)


@pytest.mark.parametrize("write", ["layer_set_weights", "assign", "assign_sub"])
def test_layer_weight_writes_quantize_again(trained, write):
    """Writes through a layer or a weight, not only the model, reach a quantized model."""
    model, x, _ = trained
    clone = fastnn.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.quantize("int8")
    before = clone.predict(x, verbose=0)
    dense = next(layer for layer in clone.layers if layer.weights)
    kernel = dense.weights[0]
    halved = kernel.numpy() * 0.5
    if write == "layer_set_weights":
        dense.set_weights([halved] + [w.numpy() for w in dense.weights[1:]])
    elif write == "assign":
        kernel.assign(halved)
    else:
        kernel.assign_sub(halved)
    after = clone.predict(x, verbose=0)
    assert not numpy.allclose(after, before)
    fresh = fastnn.models.clone_model(clone)
    fresh.set_weights(clone.get_weights())
    fresh.quantize("int8")
    numpy.testing.assert_array_equal(after, fresh.predict(x, verbose=0))


def test_guards():
    model = fastnn.Sequential([layers.Dense(4), layers.Dense(2)])
    with pytest.raises(ValueError, match="not built"):
        model.quantize("int8")
    model.build((None, 3))
    with pytest.raises(ValueError, match="Unsupported quantization mode 'int4'"):
        model.quantize("int4")
    assert model.quantization is None
    model.compile("sgd", "mse")
    model.quantize("bfloat16")
    x = numpy.ones((4, 3), "float32")
    with pytest.raises(ValueError, match="quantize"):
        model.fit(x, numpy.ones((4, 2), "float32"), verbose=0)
    with pytest.raises(ValueError, match="NaN"):
        model.predict(numpy.full((2, 3), numpy.nan, "float32"), verbose=0)


def test_quantized_predict_is_thread_safe(trained):
    model, x, _ = trained
    clone = fastnn.models.clone_model(model)
    clone.set_weights(model.get_weights())
    clone.quantize("int8")
    want = [clone.predict_on_batch(x[i:i + 1]) for i in range(32)]
    errors = []

    def worker():
        for _ in range(20):
            for i in range(32):
                if not numpy.array_equal(clone.predict_on_batch(x[i:i + 1]), want[i]):
                    errors.append(i)
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_stages_the_quantized_segment_cannot_run_stay_on_the_ops():
    """A Keras relu(max_value=...) after a quantized product, and a user's layer, run as
    HOST stages between compiled parts; the result equals the numpy reference."""
    class Halve(layers.Layer):
        def call(self, x):
            return x * 0.5

    fastnn.utils.set_random_seed(1)
    model = fastnn.Sequential([fastnn.Input(shape=(6,)),
                               layers.Dense(8, activation=fastnn.activations.get(
                                   {"name": "relu", "max_value": 0.5})),
                               Halve(), layers.Dense(3, activation="softmax")])
    model.quantize("bfloat16")
    names = repr(model._inference_executor())
    assert names == "<Executor BF16_DENSE -> HOST -> compiled(BF16_DENSE)>", names
    x = numpy.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    cpu = model.predict(x, verbose=0)
    with use_backend("numpy"):
        numpy.testing.assert_allclose(model.predict(x, verbose=0), cpu, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("nthreads", [1, 2])
def test_quantized_segment_rows_in_chunks_and_teams_equal_the_reference(nthreads):
    """The compiled segment carries rows through its stages in chunks and splits them
    between a team: every batch size (a chunk's edges, a team's shares) on every int8
    path gives the numpy reference's result bit for bit (ReLU outputs go in as uint8
    rows, the linear hidden layer's as int8 rows)."""
    from fastnn._kernels import _quant
    fastnn.utils.set_random_seed(2)
    model = fastnn.Sequential([fastnn.Input(shape=(37,)), layers.Dense(70, activation="relu"),
                               layers.Dense(33), layers.Dense(20, activation="relu"),
                               layers.Dense(5)])
    model.quantize("int8")
    segment = model._inference_executor().parts[0].segment
    x = numpy.random.default_rng(3).normal(size=(300, 37)).astype("float32")
    x[::4] = numpy.abs(x[::4])
    with use_backend("numpy"):
        expected = model.predict_on_batch(x)
    try:
        for path in _quant.available():
            _quant.set_isa(path)
            for n in (1, 7, 16, 31, 33, 63, 64, 65, 129, 300):
                out = numpy.full((n, 5), numpy.nan, "float32")
                segment.predict(numpy.ascontiguousarray(x[:n]), out, nthreads)
                numpy.testing.assert_array_equal(out, expected[:n], err_msg=f"{path}, {n} rows")
    finally:
        _quant.set_isa(None)


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("bad", [numpy.nan, numpy.inf, -numpy.inf])
def test_quantized_segment_refuses_nonfinite_rows(nthreads, bad):
    """An int8 first stage finds NaN and infinities while it quantizes the rows (no
    separate scan of x): the segment still refuses them, counting the values."""
    fastnn.utils.set_random_seed(2)
    model = fastnn.Sequential([fastnn.Input(shape=(37,)), layers.Dense(70, activation="relu"),
                               layers.Dense(5)])
    model.quantize("int8")
    segment = model._inference_executor().parts[0].segment
    x = numpy.random.default_rng(3).normal(size=(200, 37)).astype("float32")
    x[150, 36] = x[150, 2] = bad
    out = numpy.empty((200, 5), "float32")
    with pytest.raises(ValueError, match="2 NaN or infinite"):
        segment.predict(x, out, nthreads)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.predict_on_batch(x[150:151])
    x[150] = 0
    segment.predict(x, out, nthreads)
    assert numpy.isfinite(out).all()


def test_quantized_segment_team_gives_the_single_thread_result_for_bfloat16():
    """bfloat16 stages and a softmax head run on a team's row pieces too: the same bits as
    one thread over all the rows."""
    fastnn.utils.set_random_seed(4)
    model = fastnn.Sequential([fastnn.Input(shape=(41,)), layers.Dense(64, activation="relu"),
                               layers.Dense(7, activation="softmax")])
    model.quantize("bfloat16")
    segment = model._inference_executor().parts[0].segment
    x = numpy.random.default_rng(5).normal(size=(203, 41)).astype("float32")
    one, two = numpy.empty((203, 7), "float32"), numpy.empty((203, 7), "float32")
    segment.predict(x, one, 1)
    segment.predict(x, two, 2)
    numpy.testing.assert_array_equal(two, one)
    with use_backend("numpy"):
        numpy.testing.assert_allclose(one, model.predict_on_batch(x), rtol=1e-5, atol=1e-6)
