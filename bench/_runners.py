"""One runner per framework: how it trains, predicts and sets its thread count.

A runner is used inside its own worker process (see ``compare.py``), so the
imports below happen there and nowhere else. Each runner offers:

- ``setup(threads)``: import the framework, fix its thread count; raise
  ``Unavailable`` when it cannot run here (the table then shows a note).
- ``trainer(dims, batch, seed, batchnorm=False, dropout=0.0)`` -> object with
  ``epoch(x, y)`` (one shuffled epoch), ``train(x, y, epochs)`` and
  ``predict(x)`` (probabilities, or None), or None when the framework does not
  train. ``batchnorm`` and ``dropout`` are the hidden-layer options of
  ``_workloads.model_options``; a runner that cannot build them raises
  ``Unavailable`` (that workload's row then shows the reason).
- ``prepare(a)``: a NumPy array in the framework's own type (outside timing).
- ``predictors(dims, batch, seed)`` -> ``[(row_name, fn)]``, ``fn(x)`` one
  inference call; ``inference_context()`` wraps the timed calls.
- ``references``: ``{row_name: fn}`` for a low-precision row, the fp32 model's
  inference call on the same weights; ``fidelity`` compares the two outputs
  (outside timing). Empty for the fp32 rows.
- ``versions()``: what to record in the JSON.
"""
import contextlib
import io
import logging
import os
import tempfile
import warnings

import numpy

from _numpy_mlp import GemmFloor, NumpyBatchNormMLP, NumpyMLP

LEARNING_RATE = 1e-3


class Unavailable(Exception):
    """The framework cannot run in this environment (not installed, ...)."""


class Runner:
    name = ""

    def setup(self, threads):
        self.threads = threads
        self.references = {}

    def trainer(self, dims, batch, seed, batchnorm=False, dropout=0.0):
        return None

    def prepare(self, a):
        return a

    def predictors(self, dims, batch, seed):
        return []

    def inference_context(self):
        return contextlib.nullcontext()

    def fidelity(self, row, fn, x):
        """How far row ``row``'s outputs on ``x`` are from the fp32 model's ({} for fp32 rows)."""
        reference = self.references.get(row)
        if reference is None:
            return {}
        with self.inference_context():
            return output_error(fn(x), reference(x))

    def versions(self):
        return {}


def _as_array(out):
    if isinstance(out, (list, tuple)):  # onnxruntime: one array per graph output
        out = out[0]
    return numpy.asarray(out, dtype=numpy.float64)


def output_error(low, ref):
    """A low-precision model's outputs against the fp32 model's on the same inputs.

    ``rel_error``: ||low - ref|| / ||ref|| (Frobenius, over the whole batch);
    ``max_abs_error``: the largest elementwise difference; ``argmax_agreement``:
    the fraction of rows whose predicted class is the same.
    """
    low, ref = _as_array(low), _as_array(ref)
    diff = low - ref
    return {"rel_error": float(numpy.linalg.norm(diff) / numpy.linalg.norm(ref)),
            "max_abs_error": float(numpy.abs(diff).max()),
            "argmax_agreement": float((low.argmax(axis=1) == ref.argmax(axis=1)).mean())}


class _BlasRunner(Runner):
    """NumPy-based runners: BLAS limited to ``threads`` through threadpoolctl."""

    def setup(self, threads):
        super().setup(threads)
        from threadpoolctl import threadpool_limits
        self._limits = threadpool_limits(limits=threads, user_api="blas")

    def versions(self):
        return {"numpy": numpy.__version__, "blas": _blas_info()}


def _blas_info():
    from threadpoolctl import threadpool_info
    return [{k: info.get(k) for k in ("internal_api", "version", "num_threads", "filepath")}
            for info in threadpool_info()]


# ---------------------------------------------------------------------- fastnn
def fastnn_mlp(dims, seed=0, batchnorm=False, dropout=0.0):
    """A compiled, built fastnn ReLU MLP with a softmax head: Adam, sparse cross-entropy.

    With ``batchnorm`` each hidden layer is Dense -> BatchNormalization ->
    Activation("relu") (the Keras order); with ``dropout`` a Dropout follows it.
    """
    import fastnn
    from fastnn import layers, optimizers
    fastnn.utils.set_random_seed(seed)
    stack = []
    for i, units in enumerate(dims[1:-1]):
        shape = {"input_shape": (dims[0],)} if i == 0 else {}
        if batchnorm:
            stack += [layers.Dense(units, **shape), layers.BatchNormalization(),
                      layers.Activation("relu")]
        else:
            stack.append(layers.Dense(units, activation="relu", **shape))
        if dropout:
            stack.append(layers.Dropout(dropout))
    stack.append(layers.Dense(dims[-1], activation="softmax"))
    model = fastnn.Sequential(stack)
    model.compile(optimizer=optimizers.Adam(learning_rate=LEARNING_RATE),
                  loss="sparse_categorical_crossentropy")
    model.build()
    return model


class _FastnnTrainer:
    def __init__(self, dims, batch, seed, **options):
        self.model = fastnn_mlp(dims, seed, **options)
        self.batch = batch

    def epoch(self, x, y):
        self.model.fit(x, y, batch_size=self.batch, epochs=1, shuffle=True, verbose=0)

    def train(self, x, y, epochs):
        self.model.fit(x, y, batch_size=self.batch, epochs=epochs, shuffle=True, verbose=0)

    def predict(self, x):
        return self.model.predict(x, batch_size=256)


class FastnnRunner(Runner):
    """fastnn through its public API only (fit, predict_on_batch, predict)."""

    name = "fastnn"

    def setup(self, threads):
        super().setup(threads)
        try:
            import fastnn
        except ImportError as exc:  # e.g. the kernels are not built
            raise Unavailable(f"cannot import fastnn: {exc}") from exc
        fastnn.set_num_threads(threads)
        self.backend = fastnn.get_backend()

    def trainer(self, dims, batch, seed, batchnorm=False, dropout=0.0):
        return _FastnnTrainer(dims, batch, seed, batchnorm=batchnorm, dropout=dropout)

    def predictors(self, dims, batch, seed):
        model = fastnn_mlp(dims, seed)
        return [("fastnn.predict_on_batch", model.predict_on_batch),
                ("fastnn.predict", lambda x: model.predict(x, batch_size=batch))]

    def versions(self):
        import fastnn
        return {"fastnn": fastnn.__version__, "fastnn_file": fastnn.__file__,
                "backend": self.backend,
                "fastnn_threads": fastnn.get_num_threads(), "blas": _blas_info()}


# ---------------------------------------------------------------------- fastnn, quantized
def _quantize(model, mode):
    """``model.quantize(mode)`` (Keras 3's name): afterwards ``predict`` runs at low precision.

    A fastnn without the method, or one that has not implemented ``mode``, gives
    ``Unavailable`` (the row then shows why); any other failure is an error.
    """
    if not hasattr(model, "quantize"):
        raise Unavailable(f"this fastnn's {type(model).__name__} has no quantize(mode)")
    try:
        model.quantize(mode)
    except NotImplementedError as exc:
        raise Unavailable(f"quantize({mode!r}) is not implemented: {exc}") from exc


def _fp32_copy(model, dims, seed, **options):
    """A second fp32 model with ``model``'s weights: the reference of the quantized one."""
    copy = fastnn_mlp(dims, seed, **options)
    copy.set_weights(model.get_weights())
    return copy


class _QuantizedFastnnTrainer(_FastnnTrainer):
    """Trains exactly like the fastnn row (fp32); the first ``predict`` quantizes the
    trained model, keeping an fp32 copy for ``reference_predict``."""

    def __init__(self, dims, batch, seed, mode, **options):
        super().__init__(dims, batch, seed, **options)
        self.spec, self.mode, self.reference = (dims, seed, options), mode, None

    def predict(self, x):
        if self.reference is None:
            dims, seed, options = self.spec
            self.reference = _fp32_copy(self.model, dims, seed, **options)
            _quantize(self.model, self.mode)
        return super().predict(x)

    def reference_predict(self, x):
        return self.reference.predict(x, batch_size=256)


class _QuantizedFastnnRunner(FastnnRunner):
    """fastnn after ``model.quantize(mode)``: inference rows, and digits accuracy.

    Inference: the model of the fastnn rows (same seed), quantized before timing;
    the fp32 copy with the same weights is the reference of ``rel_error``.
    Digits: trained like the fastnn row (the time is that fp32 training), then
    quantized; the accuracy is the quantized model's, ``accuracy_fp32`` the same
    trained model's before quantizing.
    """

    mode = ""

    def setup(self, threads):
        super().setup(threads)
        import fastnn
        if not hasattr(fastnn.Sequential, "quantize"):
            raise Unavailable(f"fastnn {fastnn.__version__} has no Sequential.quantize(mode) "
                              f"yet; this row runs once it has")

    def trainer(self, dims, batch, seed, batchnorm=False, dropout=0.0):
        return _QuantizedFastnnTrainer(dims, batch, seed, self.mode, batchnorm=batchnorm,
                                       dropout=dropout)

    def predictors(self, dims, batch, seed):
        model = fastnn_mlp(dims, seed)
        reference = _fp32_copy(model, dims, seed)
        _quantize(model, self.mode)
        on_batch, predict = f"{self.name}.predict_on_batch", f"{self.name}.predict"
        self.references = {
            on_batch: reference.predict_on_batch,
            predict: lambda x: reference.predict(x, batch_size=batch)}
        return [(on_batch, model.predict_on_batch),
                (predict, lambda x: model.predict(x, batch_size=batch))]

    def versions(self):
        return dict(super().versions(), quantize_mode=self.mode)


class FastnnInt8Runner(_QuantizedFastnnRunner):
    name, mode = "fastnn_int8", "int8"


class FastnnBf16Runner(_QuantizedFastnnRunner):
    name, mode = "fastnn_bf16", "bfloat16"


# ---------------------------------------------------------------------- PyTorch
def torch_mlp(dims, softmax=False, batchnorm=False, dropout=0.0):
    """The same MLP in PyTorch (logits out, or probabilities with ``softmax=True``).

    ``batchnorm``: BatchNorm1d between each hidden Linear and its ReLU, with Keras'
    defaults (epsilon 1e-3; Keras momentum 0.99 is PyTorch momentum 0.01);
    ``dropout``: a Dropout after each hidden ReLU.
    """
    import torch
    mods = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        mods.append(torch.nn.Linear(a, b))
        if i < len(dims) - 2:
            if batchnorm:
                mods.append(torch.nn.BatchNorm1d(b, eps=1e-3, momentum=0.01))
            mods.append(torch.nn.ReLU())
            if dropout:
                mods.append(torch.nn.Dropout(dropout))
    if softmax:
        mods.append(torch.nn.Softmax(dim=1))
    return torch.nn.Sequential(*mods)


class _TorchTrainer:
    def __init__(self, dims, batch, seed, **options):
        import torch
        torch.manual_seed(seed)
        self.torch = torch
        self.model = torch_mlp(dims, **options)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE)
        self.loss = torch.nn.CrossEntropyLoss()
        self.batch = batch

    def epoch(self, x, y):
        torch, model, opt, loss_fn = self.torch, self.model, self.opt, self.loss
        model.train()
        order = torch.randperm(x.shape[0])
        for start in range(0, x.shape[0], self.batch):
            idx = order[start:start + self.batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()

    def train(self, x, y, epochs):
        for _ in range(epochs):
            self.epoch(x, y)

    def predict(self, x):
        with self.torch.inference_mode():
            self.model.eval()
            return self.torch.softmax(self.model(x), dim=1).numpy()


class TorchRunner(Runner):
    """PyTorch eager mode, the usual loop: randperm, index, zero_grad, backward, Adam."""

    name = "torch"

    def setup(self, threads):
        super().setup(threads)
        try:
            import torch
        except ImportError as exc:
            raise Unavailable("torch is not installed (pip install torch==2.13.0)") from exc
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # only allowed before any parallel work
            torch.set_num_interop_threads(1)
        self.torch = torch

    def trainer(self, dims, batch, seed, batchnorm=False, dropout=0.0):
        return _TorchTrainer(dims, batch, seed, batchnorm=batchnorm, dropout=dropout)

    def prepare(self, a):
        return self.torch.from_numpy(numpy.ascontiguousarray(a))

    def predictors(self, dims, batch, seed):
        self.torch.manual_seed(seed)
        model = torch_mlp(dims, softmax=True).eval()
        return [("torch", model)]

    def inference_context(self):
        return self.torch.inference_mode()

    def versions(self):
        torch = self.torch
        return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                "torch_config": torch.__config__.parallel_info().splitlines()[:8]}


# ---------------------------------------------------------------------- scikit-learn
class _SklearnTrainer:
    def __init__(self, dims, batch, seed):
        from sklearn.neural_network import MLPClassifier
        self.classes = numpy.arange(dims[-1])
        self.clf = MLPClassifier(hidden_layer_sizes=tuple(dims[1:-1]), activation="relu",
                                 solver="adam", alpha=0.0, batch_size=batch,
                                 learning_rate_init=LEARNING_RATE, shuffle=True,
                                 random_state=seed)

    def epoch(self, x, y):
        # partial_fit = one shuffled pass over the data with adam.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.clf.partial_fit(x, y, classes=self.classes)

    def train(self, x, y, epochs):
        for _ in range(epochs):
            self.epoch(x, y)

    def predict(self, x):
        return self.clf.predict_proba(x)


class SklearnRunner(_BlasRunner):
    """scikit-learn MLPClassifier, one partial_fit call per epoch."""

    name = "sklearn"

    def setup(self, threads):
        try:
            import sklearn  # noqa: F401
        except ImportError as exc:
            raise Unavailable("scikit-learn is not installed") from exc
        super().setup(threads)

    def trainer(self, dims, batch, seed, batchnorm=False, dropout=0.0):
        if batchnorm or dropout:
            raise Unavailable("MLPClassifier has no batch normalization or dropout layers")
        return _SklearnTrainer(dims, batch, seed)

    def versions(self):
        import sklearn
        return dict(super().versions(), sklearn=sklearn.__version__)


# ---------------------------------------------------------------------- NumPy MLP
class _Epochs:
    def train(self, x, y, epochs):
        for _ in range(epochs):
            self.epoch(x, y)


class _NumpyTrainer(_Epochs, NumpyMLP):
    pass


class _NumpyBatchNormTrainer(_Epochs, NumpyBatchNormMLP):
    pass


class NumpyRunner(_BlasRunner):
    """The hand-written float32 NumPy MLP of ``_numpy_mlp.py``."""

    name = "numpy"

    def trainer(self, dims, batch, seed, batchnorm=False, dropout=0.0):
        if batchnorm:
            return _NumpyBatchNormTrainer(dims, batch, seed, dropout=dropout)
        if dropout:
            raise Unavailable("the NumPy MLP has dropout only together with batchnorm")
        return _NumpyTrainer(dims, batch, seed)

    def predictors(self, dims, batch, seed):
        return [("numpy", NumpyMLP(dims, batch, seed).predict)]


# ---------------------------------------------------------------------- GEMM floor
class _FloorTrainer(_Epochs, GemmFloor):
    def predict(self, x):
        return None  # no model: the floor has no accuracy


class FloorRunner(_BlasRunner):
    """Only the GEMMs, with NumPy on preallocated arrays: the BLAS lower bound.

    BatchNorm and Dropout add no matrix product, so a model with them has the
    same floor as the plain MLP: the options are ignored.
    """

    name = "floor"

    def trainer(self, dims, batch, seed, batchnorm=False, dropout=0.0):
        return _FloorTrainer(dims, batch, seed)

    def predictors(self, dims, batch, seed):
        floor = GemmFloor(dims, batch, seed)
        return [("floor", lambda x: floor.forward())]


class FloorScipyRunner(FloorRunner):
    """The same GEMMs through fastnn's gemm (its own sgemm where routed, else scipy's
    BLAS), as fastnn calls them: separates the products' speed from fastnn's overhead."""

    name = "floor_scipy"

    def setup(self, threads):
        from fastnn._kernels import _blas  # load scipy's BLAS before threadpoolctl limits it
        self._gemm = _blas.gemm
        super().setup(threads)

    def trainer(self, dims, batch, seed, batchnorm=False, dropout=0.0):
        return _FloorTrainer(dims, batch, seed, gemm=self._gemm)


# ---------------------------------------------------------------------- ONNX Runtime
class OnnxRuntimeRunner(Runner):
    """ONNX Runtime (CPU provider) on the PyTorch model exported to ONNX; inference only."""

    name = "onnxruntime"

    def setup(self, threads):
        super().setup(threads)
        try:
            import onnx  # noqa: F401  (the bench extra; its version goes in the JSON)
            import onnxruntime
            import torch
        except ImportError as exc:
            missing = exc.name or exc
            raise Unavailable(f"needs onnx, onnxruntime and torch ({missing} is missing)") \
                from exc
        torch.set_num_threads(threads)
        self.ort, self.torch = onnxruntime, torch

    def export(self, dims, seed):
        """The PyTorch inference model (softmax head) as ONNX bytes, dynamic batch."""
        torch = self.torch
        torch.manual_seed(seed)
        model = torch_mlp(dims, softmax=True).eval()
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, torch.zeros(1, dims[0]), buf, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                              dynamo=False)
        return buf.getvalue()

    def session(self, model_bytes):
        """``session.run`` of an InferenceSession on the CPU provider, ``threads`` intra-op."""
        ort = self.ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"x": x})

    def predictors(self, dims, batch, seed):
        return [(self.name, self.session(self.export(dims, seed)))]

    def versions(self):
        import onnx
        return {"onnxruntime": self.ort.__version__, "onnx": onnx.__version__,
                "torch": self.torch.__version__}


class OnnxRuntimeInt8Runner(OnnxRuntimeRunner):
    """The onnxruntime row's ONNX model after ``quantize_dynamic`` (weights int8).

    quantize_dynamic's defaults, written out: ``weight_type=QInt8`` (signed,
    symmetric), ``per_channel=False`` (one scale per weight tensor),
    ``reduce_range=False``; activations are quantized to uint8 per tensor at run
    time (DynamicQuantizeLinear). The Gemm nodes of the export become MatMulInteger
    (quantize_dynamic rewrites Gemm to MatMul + Add first); the softmax stays fp32.
    """

    name = "onnxruntime_int8"

    def predictors(self, dims, batch, seed):
        from onnxruntime.quantization import QuantType, quantize_dynamic
        fp32 = self.export(dims, seed)
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = os.path.join(tmp, "fp32.onnx"), os.path.join(tmp, "int8.onnx")
            with open(src, "wb") as f:
                f.write(fp32)
            # It logs a hint to run its shape pre-processing: not needed for these MLPs.
            logging.getLogger().setLevel(logging.ERROR)
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
            with open(dst, "rb") as f:
                int8 = f.read()
        self.references = {self.name: self.session(fp32)}
        return [(self.name, self.session(int8))]


RUNNERS = {r.name: r for r in (FastnnRunner, FastnnInt8Runner, FastnnBf16Runner, TorchRunner,
                               SklearnRunner, NumpyRunner, OnnxRuntimeRunner,
                               OnnxRuntimeInt8Runner, FloorRunner, FloorScipyRunner)}
