"""Sequential: a stack of layers, its weights and its inference path.

Training (compile/fit/evaluate/train_on_batch) lives in ``training.py``; this
module holds the structure: adding and building layers, packing parameters
into one flat buffer, weights, summary, and the thin inference path
(``predict``, ``predict_on_batch``, ``model(x)``) that is safe to call from
many threads: it stores nothing on the model.
"""
import threading

import numpy

from .. import layers as layers_mod
from ..backend import get_num_threads, get_ops, is_device_array, use_backend
from ..backend.threads import available_threads, scope_threads
from ..layers.base import Layer, Weight, auto_name
from ..layers.core import InputLayer
from ..layers.regularization import MaskSeeds
from ..utils.checks import check_batch_size, check_positive_int
from ..engine.executor import Executor
from ..engine.program import Program, inference_program, lower, monte_carlo_program
from ..engine.quantize import check_mode as check_quantization_mode, quantize_program
from . import cloning, data, saving
from .inference import InferencePlan
from .model import Model
from .parameters import ParameterStore
from .training import TrainingMixin


class Sequential(TrainingMixin, Model):
    """A linear stack of layers with a Keras-style API.

    Example:
        >>> import fastnn
        >>> from fastnn import layers
        >>> model = fastnn.Sequential([
        ...     layers.Dense(16, activation="relu", input_shape=(4,)),
        ...     layers.Dense(3, activation="softmax")])
        >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
        ...               metrics=["accuracy"])
    """

    def __init__(self, layers=None, name=None, trainable=True):
        self.name = name or auto_name("sequential")
        self.layers = []
        self._input_shape = None
        self._store = None
        self._inference_cache = (None, None)
        self._pass_cache = (None, None)
        self._quantization = None
        self._build_lock = threading.Lock()
        self.built = False
        self.stop_training = False
        self._init_training()
        for layer in layers or []:
            self.add(layer)
        if not trainable:
            self.trainable = False

    @classmethod
    def _unbuilt(cls, layers, name=None):
        """A model holding ``layers`` that builds nothing yet (for loaders that check each
        weight shape against a file before allocating it)."""
        model = cls(name=name)
        for layer in layers:
            if isinstance(layer, InputLayer):
                model._input_shape = layer.declared_input_shape
            else:
                model.layers.append(layer)
        if model._input_shape is None and model.layers:
            model._input_shape = model.layers[0].declared_input_shape
        return model

    # ---------------------------------------------------------------- structure
    def add(self, layer):
        """Append a layer (an ``Input(...)`` only as the first entry).

        When the input shape is known (``Input``, ``input_shape=``, ``input_dim=`` or an
        earlier build) the layer is built at once, as in Keras, so its weights exist
        before any training; a layer that cannot take the current output shape is
        refused and the model stays as it was.
        """
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add takes a fastnn layer, got {layer!r}")
        if isinstance(layer, InputLayer):
            if self.layers or self._input_shape is not None:
                raise ValueError("Input(...) may only start a Sequential model")
            self._input_shape = layer.declared_input_shape
            return
        if any(other.name == layer.name for other in self.layers):
            raise ValueError(f"The model already has a layer named {layer.name!r}: layer "
                             f"names must be unique")
        if not self.layers and self._input_shape is None and layer.declared_input_shape:
            self._input_shape = layer.declared_input_shape
        self.layers.append(layer)
        if self._input_shape is not None:
            was_built = layer.built
            try:
                self.build()
            except Exception:
                self.layers.pop()
                if not was_built:
                    layer.unbuild()
                if self.layers:
                    self.build()
                raise
            self._structure_changed()

    def pop(self):
        """Remove the last layer and return it (Keras' ``Sequential.pop``)."""
        if not self.layers:
            raise TypeError("There are no layers in the model to pop")
        layer = self.layers.pop()
        if self.layers and self.built:
            self.build()
        elif not self.layers:
            self.built, self._store = False, None
        self._structure_changed()
        return layer

    def get_layer(self, name=None, index=None):
        """A layer by ``name`` or by position ``index`` in ``model.layers``."""
        if index is not None and name is not None:
            raise ValueError("Give get_layer a name or an index, not both")
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"get_layer index {index} is out of range: the model has "
                                 f"{len(self.layers)} layers")
            return self.layers[index]
        if name is not None:
            for layer in self.layers:
                if layer.name == name:
                    return layer
            raise ValueError(f"No layer named {name!r}; the layers are "
                             f"{[layer.name for layer in self.layers]}")
        raise ValueError("get_layer needs a name or an index")

    def _structure_changed(self):
        """Forget what depended on the old layer list (compiled paths, metric choice)."""
        self._inference_cache = (None, None)
        self._train_cache = self._pass_cache = (None, None)
        self._refresh_metric_choice()

    def build(self, input_shape=None):
        """Create every layer's weights for samples of ``input_shape`` (no batch dim)."""
        if input_shape is not None:
            # Keras accepts (None, d): drop a leading batch dimension.
            shape = tuple(input_shape)
            if len(shape) > 1 and shape[0] is None:
                shape = shape[1:]
            self._input_shape = tuple(int(d) for d in shape)
        if self._input_shape is None:
            raise ValueError("The model does not know its input shape: give the first layer "
                             "input_shape=..., start with fastnn.Input(shape=...), or call "
                             "build(input_shape)")
        if not self.layers:
            raise ValueError("The model has no layers")
        shape = self._input_shape
        for layer in self.layers:
            if not layer.built:
                layer.build(shape)
            elif tuple(layer.input_shape) != tuple(shape):
                raise ValueError(f"Layer {layer.name!r} was built for input {layer.input_shape}"
                                 f", but receives {shape}")
            shape = layer.output_shape
        self._store = ParameterStore(self.layers, self.layers[0].dtype)
        self.built = True

    def _ensure_built(self, x_shape=None):
        """Build on first use (Keras' deferred build), taking the input shape from ``x``.

        A build that fails (e.g. x of the wrong rank) leaves the model unbuilt, as before.
        """
        if self.built:
            return
        with self._build_lock:  # first predict calls from several threads build once
            if self.built:
                return
            declared = self._input_shape
            if declared is None and x_shape is not None:
                if len(x_shape) < 2:
                    raise ValueError(f"x must have shape (n_samples, n_features), got shape "
                                     f"{tuple(x_shape)} (one sample? use x.reshape(1, -1))")
                self._input_shape = tuple(x_shape[1:])
            was_built = [layer.built for layer in self.layers]
            try:
                self.build()
            except Exception:
                self._input_shape = declared
                for layer, built in zip(self.layers, was_built):
                    if not built:
                        layer.unbuild()
                raise

    def _build_state(self):
        """What ``_restore_build_state`` needs to undo a deferred build."""
        return self.built, self._input_shape, [layer.built for layer in self.layers]

    def _restore_build_state(self, state):
        """Undo a build made since ``state`` (data that built the model was then refused)."""
        built, input_shape, layers_built = state
        if built or not self.built:
            return
        for layer, was_built in zip(self.layers, layers_built):
            if not was_built:
                layer.unbuild()
        self.built, self._store, self._input_shape = False, None, input_shape
        self._inference_cache = (None, None)

    @property
    def trainable(self):
        """False once ``model.trainable = False`` froze every layer (Keras)."""
        return any(layer.trainable for layer in self.layers) if self.layers else True

    @trainable.setter
    def trainable(self, value):
        for layer in self.layers:
            layer.trainable = value

    @property
    def input_shape(self):
        return (None,) + tuple(self._input_shape) if self._input_shape else None

    @property
    def output_shape(self):
        return (None,) + tuple(self.layers[-1].output_shape) if self.built else None

    # ---------------------------------------------------------------- inference
    def _forward(self, x, training=False):
        """The model's output for ``x``: the inference program, or with ``training`` the
        training program's forward pass (dropout and batch statistics active)."""
        if not training:
            return self._predict_with(self._inference_executor(), x)
        with self._thread_scope(x.shape[0]):
            return self._pass_executor("training", x.shape[0]).forward(x, True)

    def _pass_executor(self, kind, batch):
        """The cached executor of a forward-only training-mode program: ``"training"``
        (``model(x, training=True)``) or ``"monte_carlo"`` (``predict(mc_samples=...)``:
        only the dropout-style layers train), for batches up to ``batch`` rows."""
        ops = get_ops()
        key = (kind, ops, self._store, self._lowering_key())
        cached_key, executor = self._pass_cache
        if cached_key != key or executor.max_batch < batch:
            program = (Program(lower(self)) if kind == "training" else
                       monte_carlo_program(self, lambda layer: isinstance(layer, MaskSeeds)))
            executor = Executor(ops, program, batch)
            self._pass_cache = (key, executor)
        return executor

    def _predict_with(self, executor, x):
        """Inference; a BLAS thread scope only where it calls BLAS, else our own threads
        when the kernels can use them and cores are free."""
        n = x.shape[0]
        if not executor.predict_uses_blas(n):
            threaded = get_num_threads() > 1 and executor.predict_can_thread(n)
            return executor.predict(x, available_threads() if threaded else 1)
        with self._thread_scope(n):
            return executor.predict(x, scope_threads())

    def _lowering_key(self):
        """What the model's training program depends on besides its weight buffer: each
        layer's trainable flag and whether it synchronises statistics across processes
        (an inference program depends on neither)."""
        return tuple((layer.trainable, getattr(layer, "cross_replica_sum", None) is not None)
                     for layer in self.layers)

    def _inference_executor(self):
        """The executor of the model's inference program (cached per backend and build;
        quantized after ``quantize``, and then quantized again after any weight write)."""
        ops = get_ops()
        snapshot = None if self._quantization is None else Weight.writes
        key = (ops, self._store, self._quantization, snapshot)
        cached_key, executor = self._inference_cache
        if cached_key != key:
            if self.quantization is None:
                program = inference_program(self, ops)
            else:
                program = quantize_program(inference_program(self, ops, fold=True), ops,
                                           self.quantization)
            executor = Executor(ops, program)
            self._inference_cache = (key, executor)
        return executor

    @property
    def quantization(self):
        """The mode given to ``quantize`` ("int8", "bfloat16"), else None."""
        return self._quantization

    def quantize(self, mode):
        """Serve with low-precision weights, as Keras' ``Model.quantize(mode)``.

        ``"int8"``: int8 weights per output channel, inputs quantized per row at run
        time, int32 accumulation, bias and activation in float32; no calibration data.
        ``"bfloat16"`` (a fastnn mode): bfloat16 weights, computed in float32 (the
        accuracy-safe option). ``predict``, ``model(x)`` and ``evaluate`` then run the
        quantized inference program (see ``fastnn.engine.quantize``); ``save`` keeps the
        mode. The float weights stay (``get_weights``): quantizing is a snapshot of them,
        taken again after any weight write (``set_weights``, ``Weight.assign``); ``fit``
        refuses a quantized model (train first, then quantize).
        """
        check_quantization_mode(mode)
        if not self.built:
            raise ValueError("Cannot quantize a model that is not built: give it an input "
                             "shape (or call build) first")
        self._quantization = mode
        self._inference_cache = (None, None)

    def _check_x(self, x, what="x", scan_finite=True):
        if is_device_array(x):
            return self._check_device_x(x, what)
        self._ensure_built(numpy.shape(x))
        return data.check_x(x, self._input_shape, self.layers[0].dtype, what, scan_finite)

    def _check_device_x(self, x, what):
        """A CuPy ``x``: checked and kept on the device when the backend is "cupy", else
        copied to the host (CPU backends compute on NumPy arrays)."""
        ops = get_ops()
        if not ops.owns(x):
            return self._check_x(ops.to_host(x), what)
        self._ensure_built(x.shape)
        if x.ndim < 2 or tuple(x.shape[1:]) != tuple(self._input_shape) \
                or x.dtype.kind not in "biuf":  # the host check raises the same message
            data.check_x(numpy.broadcast_to(numpy.zeros((), x.dtype), x.shape),
                         self._input_shape, self.layers[0].dtype, what)
        x = ops.asarray(x, dtype=self.layers[0].dtype)  # checked after the cast, as on the host
        bad = int(x.size - ops.xp.count_nonzero(ops.xp.isfinite(x)))
        if bad:
            raise ValueError(f"{what} contains {bad} NaN or infinite value(s)")
        return x

    def __call__(self, x, training=False):
        """One forward pass over all of ``x``; returns a NumPy array (a CuPy array for a
        CuPy ``x`` on the "cupy" backend).

        ``training=True`` applies dropout and batch statistics, as in Keras.
        """
        if not training and self.built and self._is_model_form(x) and get_ops().is_native:
            executor = self._inference_executor()  # the serving hot path
            if not executor.scans_input:  # else the compiled kernels scan for NaN/inf
                data.check_finite(x)
            return self._predict_with(executor, x)
        on_host = not is_device_array(x)  # a device x is scanned by _check_device_x
        x = self._check_x(x, scan_finite=False)  # scanned once, below or by the kernels
        ops = get_ops()
        x = ops.asarray(x)
        if training:
            if on_host:
                data.check_finite(x)
            y = self._forward(x, True)
        else:
            executor = self._inference_executor()
            if on_host and not executor.scans_input:
                data.check_finite(x)
            y = self._predict_with(executor, x)
        return ops.to_host(y) if on_host else y

    def _is_model_form(self, x):
        """True for a host array already of the model's dtype, rank, width and layout."""
        return (type(x) is numpy.ndarray and x.ndim == 2 and x.dtype == self.layers[0].dtype
                and x.flags.c_contiguous and x.shape[1:] == self._input_shape)

    def predict_on_batch(self, x):
        """Predictions for one batch (all of ``x`` at once)."""
        return self(x)

    def predict(self, x, batch_size=32, verbose=0, steps=None, callbacks=None,
                mc_samples=None):
        """Predictions for ``x``, computed ``batch_size`` rows at a time: a NumPy array, or a
        CuPy array when ``x`` is one and the backend is "cupy".

        Args:
            steps: predict only the first ``steps`` batches.
            callbacks: get the ``on_predict_*`` hooks (batch ends carry ``{"outputs": y}``).
            verbose: accepted for Keras compatibility; nothing is printed (``predict`` is
                the serving path, called from many threads).
            mc_samples: Monte-Carlo dropout (Gal & Ghahramani 2016): the mean of this many
                passes with Dropout/DropConnect active and everything else (batch norm
                included) in inference mode. None: one deterministic pass.
        """
        batch_size = check_batch_size(batch_size)
        if callbacks or steps is not None:
            return self._predict_with_callbacks(x, batch_size, steps, callbacks, mc_samples)
        if mc_samples is None and hasattr(x, "__len__") and len(x) <= batch_size:
            return self(x)  # one batch: the same (thin) path as model(x)
        forward = self._forward
        if mc_samples is not None:
            samples = check_positive_int("mc_samples", mc_samples)
            forward = lambda xb: self._forward_mc(xb, samples)  # noqa: E731
        x = self._check_x(x)
        ops = get_ops()
        on_host = not is_device_array(x)
        result = ops.to_host if on_host else (lambda a: a)
        n = x.shape[0]
        if n <= batch_size:
            return result(forward(ops.asarray(x)))
        xp = numpy if on_host else ops.xp
        out = xp.empty((n,) + tuple(self.layers[-1].output_shape), dtype=x.dtype)
        with self._thread_scope(batch_size):  # once, not per batch
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                out[start:stop] = result(forward(ops.asarray(x[start:stop])))
        return out

    def _predict_with_callbacks(self, x, batch_size, steps, callbacks, mc_samples):
        """``predict`` batch by batch with the ``on_predict_*`` hooks, as Keras calls them."""
        from ..callbacks import CallbackList
        steps = None if steps is None else check_positive_int("steps", steps)
        x = self._check_x(x)
        ops = get_ops()
        n_batches = -(-x.shape[0] // batch_size)
        if steps is not None:
            n_batches = min(n_batches, steps)
        from .argument_checks import check_callbacks
        cb = CallbackList(check_callbacks(callbacks), self,
                          {"verbose": 0, "epochs": 1, "steps": n_batches})
        cb.on_predict_begin()
        outputs = []
        for step in range(n_batches):
            cb.on_predict_batch_begin(step)
            xb = ops.asarray(x[step * batch_size:(step + 1) * batch_size])
            y = self._forward_mc(xb, check_positive_int("mc_samples", mc_samples)) \
                if mc_samples is not None else self._forward(xb)
            y = ops.to_numpy(y) if isinstance(x, numpy.ndarray) else y
            outputs.append(y)
            cb.on_predict_batch_end(step, {"outputs": y})
        cb.on_predict_end()
        xp = numpy if isinstance(x, numpy.ndarray) else ops.xp
        return xp.concatenate(outputs, axis=0)

    def _forward_mc(self, x, samples):
        """Mean of ``samples`` forward passes with only the dropout-style layers training
        (the Monte-Carlo program: see ``fastnn.engine.program``)."""
        executor = self._pass_executor("monte_carlo", x.shape[0])
        total = None
        for _ in range(samples):
            h = executor.forward(x, True)
            total = h.copy() if total is None else total + h
        return total / total.dtype.type(samples)

    # ---------------------------------------------------------------- weights
    @property
    def weights(self):
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    def get_weights(self):
        """All weights as NumPy arrays, layer by layer in Keras order."""
        return [a for layer in self.layers for a in layer.get_weights()]

    def set_weights(self, arrays):
        """Set all weights from a list like ``get_weights()``; checked before any write."""
        self._ensure_built()
        arrays = list(arrays)
        expected = [w.shape for w in self.weights]
        if len(arrays) != len(expected):
            raise ValueError(f"The model has {len(expected)} weight arrays, got {len(arrays)}")
        for shape, a in zip(expected, arrays):
            if tuple(numpy.shape(a)) != shape:
                raise ValueError(f"Weight shapes differ: expected {shape}, got "
                                 f"{tuple(numpy.shape(a))}")
            arr = numpy.asarray(a)
            if not numpy.issubdtype(arr.dtype, numpy.number) or not numpy.isfinite(
                    data.cast(arr, self.layers[0].dtype)).all():
                raise ValueError(f"set_weights needs finite numeric arrays (finite in "
                                 f"{self.layers[0].dtype})")
        pos = 0
        for layer in self.layers:
            k = len(layer.weights)
            layer.set_weights(arrays[pos:pos + k])  # a quantized program notices (Weight.writes)
            pos += k

    def count_params(self):
        self._ensure_built()
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=print):
        """Print a table of layers, output shapes and parameter counts."""
        self._ensure_built()
        rows = [(f"{layer.name} ({type(layer).__name__})", str((None,) + layer.output_shape),
                 f"{layer.count_params():,}") for layer in self.layers]
        widths = [max(len(h), *(len(r[i]) for r in rows))
                  for i, h in enumerate(("Layer (type)", "Output Shape", "Param #"))]
        line = "  ".join("{:<%d}" % w for w in widths)
        rule = "=" * (sum(widths) + 4)
        trainable = sum(int(numpy.prod(w.shape)) for w in self.trainable_weights)
        total = self.count_params()
        out = [f'Model: "{self.name}"', rule,
               line.format("Layer (type)", "Output Shape", "Param #"), rule]
        out += [line.format(*r) for r in rows]
        out += [rule, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                f"Non-trainable params: {total - trainable:,}"]
        print_fn("\n".join(out))

    # ---------------------------------------------------------------- saving, serving
    def save(self, filepath, include_optimizer=True):
        """Write the model (architecture, weights, compile settings and, unless
        ``include_optimizer=False``, the training state) to one file, atomically.
        ``fastnn.models.load_model(filepath)`` reads it back."""
        saving.save_model(self, filepath, include_optimizer=include_optimizer)

    def save_weights(self, filepath):
        """Write only the weights to one file, atomically."""
        saving.save_weights(self, filepath)

    def load_weights(self, filepath):
        """Copy weights from a file written by ``save`` or ``save_weights``."""
        saving.load_weights(self, filepath)

    def compile_for_inference(self):
        """A folded, thread-safe inference snapshot (see ``fastnn.models.inference``): call
        ``plan.refresh()`` after changing the weights."""
        return InferencePlan(self)

    def get_config(self):
        config = {"name": self.name, "layers": []}
        if self._input_shape is not None:
            config["input_shape"] = list(self._input_shape)
        for layer in self.layers:
            config["layers"].append(layers_mod.serialize(layer))
        return config

    @classmethod
    def from_config(cls, config):
        """A new model from ``get_config()`` output (fresh weights)."""
        return cloning.sequential_from_config(cls, config)

    def to_json(self, **kwargs):
        """The architecture as a JSON string; ``models.model_from_json`` reads it back."""
        return cloning.to_json(self, **kwargs)

    def to_backend(self, name):
        """Move the model's weights, gradients and optimizer state to backend ``name``'s
        arrays ("cpu", "numpy" or "cupy") and return the model.

        Models compute with the backend in force, so run the moved model under ``name``
        (``fastnn.set_backend(name)`` or ``with fastnn.backend.use_backend(name):``).
        Inference plans from ``compile_for_inference`` are snapshots: make new ones.

        Example:
            >>> model.to_backend("cupy")                           # doctest: +SKIP
            >>> with fastnn.backend.use_backend("cupy"):           # doctest: +SKIP
            ...     model.fit(x, y, epochs=5)
        """
        with use_backend(name) as ops:  # an unknown or unavailable backend raises here
            if not self.built:
                return self
            host = [numpy.array(ops.to_host(w.value)) for w in self.weights]
            state = {} if self.optimizer is None else {
                k: numpy.array(ops.to_host(v)) for k, v in self.optimizer.state.items()}
            for weight, value in zip(self.weights, host):
                weight.value = ops.asarray(value)
                if weight.grad is not None:
                    weight.grad = ops.alloc(value.shape, value.dtype)
            self._store = ParameterStore(self.layers, self.layers[0].dtype)
            if self.optimizer is not None:
                self.optimizer.state = {k: ops.asarray(v) for k, v in state.items()}
            self._inference_cache = (None, None)
        return self
