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
- ``versions()``: what to record in the JSON.
"""
import contextlib
import io
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

    def trainer(self, dims, batch, seed, batchnorm=False, dropout=0.0):
        return None

    def prepare(self, a):
        return a

    def predictors(self, dims, batch, seed):
        return []

    def inference_context(self):
        return contextlib.nullcontext()

    def versions(self):
        return {}


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
        return {"fastnn": fastnn.__version__, "backend": self.backend,
                "fastnn_threads": fastnn.get_num_threads(), "blas": _blas_info()}


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
    """The same GEMMs through scipy's BLAS (the library fastnn calls): separates the BLAS
    library's speed from fastnn's own overhead."""

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

    def predictors(self, dims, batch, seed):
        torch, ort = self.torch, self.ort
        torch.manual_seed(seed)
        model = torch_mlp(dims, softmax=True).eval()
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, torch.zeros(1, dims[0]), buf, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                              dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(buf.getvalue(), opts,
                                       providers=["CPUExecutionProvider"])
        return [("onnxruntime", lambda x: session.run(None, {"x": x}))]

    def versions(self):
        import onnx
        return {"onnxruntime": self.ort.__version__, "onnx": onnx.__version__,
                "torch": self.torch.__version__}


RUNNERS = {r.name: r for r in (FastnnRunner, TorchRunner, SklearnRunner, NumpyRunner,
                               OnnxRuntimeRunner, FloorRunner, FloorScipyRunner)}
