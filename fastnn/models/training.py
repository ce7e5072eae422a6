"""compile / fit / evaluate / train_on_batch / test_on_batch for Sequential.

One training step: forward through the layers (keeping each layer's cache),
the loss and its gradient in one Ops call (fused with a softmax/sigmoid head),
backward through the layers, regularizer gradients, then one optimizer call
over the flat parameter buffer. Batches are gathered by index into reused
buffers rather than fancy-indexed copies.
"""
import contextlib

import numpy

from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .. import optimizers as optimizers_mod
from ..backend import get_ops
from ..backend.threads import in_thread_scope, thread_scope, threads_for
from ..callbacks import CallbackList, History, ProgbarLogger
from ..callbacks.progbar import EvaluationLogger
from ..utils.checks import check_batch_size, check_non_negative_int, check_unit_interval
from ..utils.random import get_rng
from ..engine.executor import Executor
from ..engine.program import training_program
from ..engine.reference import loss_and_outputs
from . import argument_checks, data, loop_options
from .parallel import LOCAL, fit_facts


class ModelNotCompiledError(ValueError, RuntimeError):
    """fit/evaluate/train_on_batch called before compile."""


class TrainingMixin:
    """The training half of Sequential (see module docstring)."""

    def _init_training(self):
        self.optimizer = None
        self.loss = None
        self.compiled_metrics = []
        self._metric_specs, self._weighted_metric_specs = [], []
        self._loss_weight = 1.0
        self.history = None
        self._fused_head = False
        self._train_cache = (None, None)
        self._metrics_checked = None
        self._constraints_cache = (None, [])

    # ---------------------------------------------------------------- compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                weighted_metrics=None, **execution_options):
        """Set the optimizer, loss and metrics (names or objects, as in Keras).

        ``metrics`` ignore sample weights; ``weighted_metrics`` use them (Keras).
        ``loss_weights`` scales the loss (one number: a Sequential has one output).
        ``run_eagerly``, ``jit_compile``, ``steps_per_execution`` and ``auto_scale_loss``
        are accepted and have no effect: every step runs in compiled kernels here.
        """
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='sparse_categorical_crossentropy'")
        loop_options.check_execution_options(execution_options)
        weight = loop_options.loss_weight(loss_weights)
        optimizer = optimizers_mod.get(optimizer)
        loss = losses_mod.get(loss)
        metrics = argument_checks.metric_list(metrics)
        weighted = argument_checks.metric_list(weighted_metrics)
        resolved = [metrics_mod.get(m, loss=loss) for m in metrics + weighted]
        previous = (self.optimizer, self.loss, self._metric_specs, self._weighted_metric_specs,
                    self._loss_weight, self.compiled_metrics, self._fused_head)
        # A function resolves to a metric object once: later refreshes reuse that object.
        specs = [m if isinstance(m, str) else r for m, r in zip(metrics + weighted, resolved)]
        self.optimizer, self.loss = optimizer, loss
        self._metric_specs, self._weighted_metric_specs = specs[:len(metrics)], specs[len(metrics):]
        self._loss_weight = weight
        self.compiled_metrics = _name_weighted(resolved, len(metrics))
        try:
            self._refresh_metric_choice()  # a built model checks its metrics here
        except ValueError:
            (self.optimizer, self.loss, self._metric_specs, self._weighted_metric_specs,
             self._loss_weight, self.compiled_metrics, self._fused_head) = previous
            raise

    @property
    def compiled(self):
        """True once ``compile`` has run (Keras' ``model.compiled``)."""
        return self.loss is not None

    def _refresh_metric_choice(self, y_sample=None):
        """Re-resolve "accuracy" once the output shape is known (binary for one column),
        and try the metrics once on targets of the loss's form (``y_sample``: a few real
        ones, needed for a user's loss, whose target form only the data tells)."""
        if not self.built or self.loss is None:
            return
        out_shape = self.layers[-1].output_shape
        specs = self._metric_specs + self._weighted_metric_specs
        self.compiled_metrics = _name_weighted([
            metrics_mod.get(spec, loss=self.loss, output_shape=out_shape)
            if isinstance(spec, str) else spec for spec in specs], len(self._metric_specs))
        checked = (self.loss, tuple(map(id, specs)), tuple(out_shape))
        if self._metrics_checked != checked:  # once per compile and output shape
            if argument_checks.check_metrics_fit(self.compiled_metrics, self.loss, out_shape,
                                                 y_sample):
                self._metrics_checked = checked
        last = self.layers[-1]
        act = getattr(last, "activation", None)
        self._fused_head = (act is not None and not self.loss.from_logits
                            and last.activity_regularizer is None
                            and act.name in self.loss.fuses_with
                            and _takes_apply_activation(last))

    def _require_compiled(self, what):
        if self.loss is None:
            raise ModelNotCompiledError(f"Call compile(optimizer, loss) before {what}()")

    def _require_trainable(self, what):
        """Training needs the float model: ``quantize`` makes a serving snapshot."""
        self._require_compiled(what)
        if self._quantization is not None:
            raise ValueError(f"{what}() on a model quantized to {self._quantization!r}: "
                             f"quantize() is for serving; train the float model (for example "
                             f"a clone_model() copy with its weights), then quantize it")

    @property
    def metrics_names(self):
        return ["loss"] + [m.name for m in self.compiled_metrics]

    # ---------------------------------------------------------------- one step
    def _train_executor(self, ops, batch):
        """The executor of the model's training program, for batches up to ``batch``
        rows (rebuilt when the model, its loss or the backend changes)."""
        key = (ops, self._store, self.loss, self._fused_head, self._loss_weight,
               self._lowering_key())
        cached_key, executor = self._train_cache
        if cached_key != key or executor.max_batch < batch:
            executor = Executor(ops, training_program(self), batch)
            self._train_cache = (key, executor)
        return executor

    def _train_step(self, x, y, sample_weight=None):
        ops = get_ops()
        loss, pred = self._train_executor(ops, x.shape[0]).train_step(x, y, sample_weight)
        self.optimizer.apply(self._store)
        self._apply_constraints(ops)
        return loss, pred

    def _apply_constraints(self, ops):
        """Project constrained weights after a step (``kernel_constraint=``...), as Keras."""
        key = (self._store, tuple(layer.trainable for layer in self.layers))
        if self._constraints_cache[0] != key:
            self._constraints_cache = (key, [w for layer in self.layers
                                             for w in layer.trainable_weights if w.constraint])
        for weight in self._constraints_cache[1]:
            weight.value[...] = weight.constraint.apply(ops.xp, weight.value)

    def _thread_scope(self, batch, training=False):
        """The thread scope of one fit/evaluate/predict call on ``batch`` rows: one thread
        for small products or a loaded machine; BLAS on one thread too when a compiled
        step is split between our own threads (backend/threads.py). Inside another call's
        scope (predict's batches, a callback's evaluate during fit) that scope holds."""
        if in_thread_scope():
            return contextlib.nullcontext()
        store, widest = getattr(self, "_widest_cache", (None, 0))
        if store is None or store is not self._store:  # per built model, not per call
            widest = max((w.shape[0] * w.shape[1] for w in self.weights if len(w.shape) == 2),
                         default=0)
            self._widest_cache = (self._store, widest)
        n = threads_for(batch * widest)
        if training and n > 1 and self._train_executor(get_ops(), batch).team_size(batch, n) > 1:
            return thread_scope(n, blas_single=True)
        return thread_scope(n)

    def _test_step(self, x, y, sample_weight=None):
        ops = get_ops()
        if self._quantization is not None:  # the quantized outputs, as predict gives them
            out = self._inference_executor().predict(x)
            loss, pred = loss_and_outputs(ops, self.loss, out, y, sample_weight, None,
                                          loss_weight=self._loss_weight)
            return loss + sum(layer.regularization_penalty(ops) for layer in self.layers), pred
        return self._train_executor(ops, x.shape[0]).test_step(x, y, sample_weight)

    def _prepare(self, x, y, sample_weight=None, class_weight=None, what=""):
        """Check and convert (x, y, sample_weight); raises before touching the model (a
        build from this ``x`` is undone when ``y`` or the weights are then refused)."""
        build_state = self._build_state()
        try:
            x = self._check_x(x, "x" + what)
            if x.shape[0] == 0:
                raise ValueError(f"x{what} has no samples")
            if y is None:
                raise ValueError(f"y{what} is missing: training and evaluation need targets")
            data.check_lengths(x, y, "y" + what)
            self._refresh_metric_choice()
            y = data.check_targets(y, self.loss, self.layers[-1].output_shape, x.dtype,
                                   "y" + what)
            self._refresh_metric_choice(y[:2])
            sw = data.check_sample_weight(sample_weight, x.shape[0])
            return x, y, self._with_class_weight(y, sw, class_weight)
        except Exception:
            self._restore_build_state(build_state)
            raise

    def _with_class_weight(self, y, sw, class_weight):
        """Fold ``class_weight`` into the sample weights (training data only, as Keras)."""
        if class_weight is None:
            return sw
        cw = data.class_weight_to_sample_weight(class_weight, y,
                                                self.layers[-1].output_shape[-1])
        return cw if sw is None else sw * cw

    def _update_metrics(self, y, pred, sample_weight):
        """Update ``metrics`` without and ``weighted_metrics`` with the sample weights."""
        if not self.compiled_metrics:
            return
        ops = get_ops()
        pred = ops.to_numpy(pred)
        y = ops.to_numpy(y)
        sw = None if sample_weight is None else ops.to_numpy(sample_weight)
        unweighted = len(self._metric_specs)
        for i, metric in enumerate(self.compiled_metrics):
            metric.update_state(y, pred, sw if i >= unweighted else None)

    def _metric_logs(self, loss, prefix="", metrics=None):
        """``{"loss": loss, metric name: result, ...}`` (names prefixed for validation)."""
        logs = {prefix + "loss": float(loss)}
        for metric in self.compiled_metrics if metrics is None else metrics:
            logs[prefix + metric.name] = _log_value(metric.result())
        return logs

    def _logs(self, tracker, prefix="", parallel=LOCAL):
        """Logs of the running loss and metrics, over every process's samples."""
        tracker, metrics = parallel.merged(tracker, self.compiled_metrics)
        return self._metric_logs(tracker.result(), prefix, metrics)

    def _parallel(self):
        """The data-parallel hooks of the optimizer (``fastnn.distributed``), else LOCAL."""
        return getattr(self.optimizer, "parallel", None) or LOCAL

    def _reset_metrics(self):
        for metric in self.compiled_metrics:
            metric.reset_state()

    # ---------------------------------------------------------------- public API
    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on the batch; returns [loss, *metrics] after it."""
        self._require_trainable("train_on_batch")
        x, y, sw = self._prepare(x, y, sample_weight, class_weight)
        ops = get_ops()
        self._reset_metrics()
        with self._thread_scope(x.shape[0], training=True):
            loss, pred = self._train_step(ops.asarray(x), ops.asarray(y),
                                          None if sw is None else ops.asarray(sw))
        self._update_metrics(y, pred, sw)
        return _as_result(self._metric_logs(loss), return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """Loss and metrics on one batch, without updating the model."""
        self._require_compiled("test_on_batch")
        x, y, sw = self._prepare(x, y, sample_weight)
        ops = get_ops()
        self._reset_metrics()
        with self._thread_scope(x.shape[0]):
            loss, pred = self._test_step(ops.asarray(x), ops.asarray(y),
                                         None if sw is None else ops.asarray(sw))
        self._update_metrics(y, pred, sw)
        return _as_result(self._metric_logs(loss), return_dict)

    def evaluate(self, x=None, y=None, batch_size=32, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """Mean loss and metrics over (x, y): ``[loss, *metrics]`` (a float with no metrics).

        ``steps``: evaluate only the first ``steps`` batches. ``callbacks`` get the
        ``on_test_*`` hooks. ``verbose`` ("auto" = 1) prints a summary line, as Keras.
        """
        self._require_compiled("evaluate")
        batch_size = check_batch_size(batch_size)
        steps = loop_options.optional_steps("steps", steps)
        x, y, sw = self._prepare(x, y, sample_weight)
        verbose = argument_checks.check_verbose(verbose)
        cbs = argument_checks.check_callbacks(callbacks)
        if verbose:
            cbs.append(EvaluationLogger(verbose))
        n_batches = -(-x.shape[0] // batch_size)
        cb = CallbackList(cbs, self, {"verbose": verbose, "epochs": 1,
                                      "steps": min(steps or n_batches, n_batches)})
        cb.on_test_begin()
        with self._thread_scope(min(batch_size, x.shape[0])):
            logs = self._evaluate_prepared(x, y, sw, batch_size, steps=steps, cb=cb)
        cb.on_test_end(logs)
        return _as_result(logs, return_dict)

    def _evaluate_prepared(self, x, y, sw, batch_size, prefix="", steps=None, cb=None,
                           parallel=LOCAL):
        ops = get_ops()
        x, y, sw = parallel.local_part(x, y, sw)
        tracker = metrics_mod.Mean()
        self._reset_metrics()
        n = x.shape[0]
        hooks = cb is not None and cb.wants_test_batch_hooks
        for step, start in enumerate(range(0, n, batch_size)):
            if steps is not None and step >= steps:
                break
            if hooks:
                cb.on_test_batch_begin(step)
            stop = min(start + batch_size, n)
            wb = None if sw is None else ops.asarray(sw[start:stop])
            loss, pred = self._test_step(ops.asarray(x[start:stop]), ops.asarray(y[start:stop]),
                                         wb)
            tracker.update_state(loss, stop - start)
            self._update_metrics(y[start:stop], pred, wb)
            if hooks:
                cb.on_test_batch_end(step, self._metric_logs(tracker.result()))
        return self._logs(tracker, prefix, parallel)

    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs; returns a History (``history.history["loss"]``...).

        As in Keras: ``steps_per_epoch`` batches make an epoch (the order of samples runs
        on across epochs); validation runs after the epochs ``validation_freq`` selects
        (an int n: every n-th; a list: those 1-based epochs), on ``validation_steps``
        batches of ``validation_batch_size`` (default ``batch_size``).
        """
        self._require_trainable("fit")
        callbacks = argument_checks.check_callbacks(callbacks)
        verbose = argument_checks.check_verbose(verbose)
        batch_size = check_batch_size(batch_size)
        epochs = check_non_negative_int("epochs", epochs)
        initial_epoch = check_non_negative_int("initial_epoch", initial_epoch)
        validation_split = check_unit_interval("validation_split", validation_split)
        steps_per_epoch = loop_options.optional_steps("steps_per_epoch", steps_per_epoch)
        val_options = (check_batch_size(validation_batch_size or batch_size),
                       loop_options.optional_steps("validation_steps", validation_steps),
                       loop_options.validation_epochs(validation_freq))
        x, y, sw = self._prepare(x, y, sample_weight)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be (x_val, y_val) or "
                                 "(x_val, y_val, sample_weight_val)")
            val = self._prepare(*validation_data[:2],
                                validation_data[2] if len(validation_data) == 3 else None,
                                what="_val")
        elif validation_split:
            split = int(x.shape[0] * (1 - validation_split))
            if split < 1 or split >= x.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves no training or no "
                                 f"validation samples out of {x.shape[0]}")
            val = (x[split:], y[split:], None if sw is None else sw[split:])
            x, y = x[:split], y[:split]
            sw = None if sw is None else sw[:split]
        sw = self._with_class_weight(y, sw, class_weight)
        if x.shape[0] == 0:
            raise ValueError("fit needs at least one training sample")
        history = History()
        parallel = self._parallel()
        verbose, cbs = parallel.fit_callbacks(verbose, list(callbacks))
        if verbose:
            cbs.append(ProgbarLogger(verbose))
        cbs.append(history)
        steps = steps_per_epoch or -(-x.shape[0] // batch_size)
        cb = CallbackList(cbs, self, {"epochs": epochs, "steps": steps, "verbose": verbose,
                                      "batch_size": batch_size})
        self.history = history
        facts = fit_facts(x, y, sw, val, batch_size=batch_size, epochs=epochs,
                          initial_epoch=initial_epoch, shuffle=bool(shuffle))
        with parallel.fit_scope(self, facts), \
                self._thread_scope(min(batch_size, x.shape[0]), training=True):
            self._fit_loop(x, y, sw, val, batch_size, epochs, initial_epoch, shuffle, cb,
                           steps_per_epoch, val_options, parallel)
        return history

    def _fit_loop(self, x, y, sw, val, batch_size, epochs, initial_epoch, shuffle, cb,
                  steps_per_epoch=None, val_options=None, parallel=LOCAL):
        ops = get_ops()
        n = x.shape[0]
        x_dev, y_dev = ops.asarray(x), ops.asarray(y)
        sw_dev = None if sw is None else ops.asarray(sw)
        xbuf = ops.xp.empty((min(batch_size, n),) + x.shape[1:], dtype=x.dtype)
        ybuf = ops.xp.empty((min(batch_size, n),) + y.shape[1:], dtype=y.dtype)
        wbuf = None if sw is None else ops.xp.empty(min(batch_size, n), dtype=sw.dtype)
        rng = get_rng()
        batches = loop_options.BatchOrder(
            batch_size, lambda: parallel.epoch_order(rng, n, shuffle, batch_size))
        order, order_dev = None, None
        val_batch_size, val_steps, validate_after = val_options or (batch_size, None,
                                                                    lambda epoch: True)
        self.stop_training = False
        cb.on_train_begin()
        logs = {}
        batch_hooks = parallel.any(cb.wants_batch_hooks)  # the same on every process
        for epoch in range(initial_epoch, epochs):
            cb.on_epoch_begin(epoch)
            tracker = metrics_mod.Mean()
            self._reset_metrics()
            for step, batch_order, start, stop in batches.epoch(steps_per_epoch):
                if batch_order is not order:
                    order, order_dev = batch_order, ops.asarray(batch_order)
                idx = parallel.shard(order_dev[start:stop])
                m = idx.shape[0]
                xb = ops.take_rows(x_dev, idx, xbuf[:m])
                yb = ops.take_rows(y_dev, idx, ybuf[:m])
                wb = None if wbuf is None else ops.take_rows(sw_dev, idx, wbuf[:m])
                if batch_hooks:
                    cb.on_train_batch_begin(step)
                loss, pred = self._train_step(xb, yb, wb)
                tracker.update_state(loss, m)
                self._update_metrics(yb, pred, wb)
                if batch_hooks:
                    cb.on_train_batch_end(step, self._logs(tracker, parallel=parallel))
                    self.stop_training = parallel.any(self.stop_training)
                    if self.stop_training:  # e.g. TerminateOnNaN: stop after this batch
                        break
            parallel.end_epoch(self)
            logs = self._logs(tracker, parallel=parallel)
            if val is not None and validate_after(epoch):
                cb.on_test_begin()
                val_logs = self._evaluate_prepared(*val, val_batch_size, steps=val_steps, cb=cb,
                                                   parallel=parallel)
                cb.on_test_end(val_logs)
                logs.update({"val_" + key: value for key, value in val_logs.items()})
            cb.on_epoch_end(epoch, logs)
            self.stop_training = parallel.any(self.stop_training)
            if self.stop_training:
                break
        self._finish_ema()
        cb.on_train_end(logs)

    def _finish_ema(self):
        """With ``use_ema``, end training holding the averaged weights (Keras 3)."""
        if self.optimizer is not None and self.optimizer.use_ema and "ema" in self.optimizer.state:
            self._store.params[...] = self.optimizer.state["ema"]


def _name_weighted(resolved, unweighted):
    """Log names for the compiled metrics: a weighted metric whose name an unweighted one
    already has gets a "weighted_" prefix (Keras: ``metrics=["mae"],
    weighted_metrics=["mae"]`` log "mae" and "weighted_mae"), and any name still taken
    gets ``_1``, ``_2``, ... so two ``Precision()`` objects log "precision" and
    "precision_1"."""
    taken = {metric.name for metric in resolved[:unweighted]}
    for metric in resolved[unweighted:]:
        if metric.name in taken:
            metric.name = "weighted_" + metric.name
    seen = set()
    for metric in resolved:
        base, count = metric.name, 0
        while metric.name in seen:
            count += 1
            metric.name = f"{base}_{count}"
        seen.add(metric.name)
    return resolved


def _as_result(logs, return_dict):
    """Keras' return value: the logs dict, or ``[loss, *metrics]`` (a float with no metrics)."""
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def _log_value(value):
    """A metric result for logs: a float, or an array for per-class / per-threshold metrics."""
    arr = numpy.asarray(value)
    return float(arr) if arr.ndim == 0 else arr


def _takes_apply_activation(layer):
    import inspect
    return "apply_activation" in inspect.signature(layer.forward).parameters
