"""compile / fit / evaluate / train_on_batch / test_on_batch for Sequential.

One training step: forward through the layers (keeping each layer's cache),
the loss and its gradient in one Ops call (fused with a softmax/sigmoid head),
backward through the layers, regularizer gradients, then one optimizer call
over the flat parameter buffer. Batches are gathered by index into reused
buffers rather than fancy-indexed copies.
"""
import numpy

from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .. import optimizers as optimizers_mod
from ..backend import get_ops
from ..backend.threads import blas_held_single, scope_threads, thread_scope, threads_for
from ..callbacks import CallbackList, History, ProgbarLogger
from ..utils.checks import check_batch_size, check_non_negative_int, check_unit_interval
from ..utils.random import get_rng
from . import data, fast_path


class ModelNotCompiledError(ValueError, RuntimeError):
    """fit/evaluate/train_on_batch called before compile."""


class TrainingMixin:
    """The training half of Sequential (see module docstring)."""

    def _init_training(self):
        self.optimizer = None
        self.loss = None
        self.compiled_metrics = []
        self.history = None
        self._fused_head = False
        self._stack_cache = (None, None)

    # ---------------------------------------------------------------- compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Set the optimizer, loss and metrics (names or objects, as in Keras)."""
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='sparse_categorical_crossentropy'")
        optimizer = optimizers_mod.get(optimizer)
        loss = losses_mod.get(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, (str, metrics_mod.Metric)):
            metrics = [metrics]
        resolved = [metrics_mod.get(m, loss=loss) for m in metrics]
        self.optimizer, self.loss, self._metric_specs = optimizer, loss, list(metrics)
        self.compiled_metrics = resolved
        self._refresh_metric_choice()

    def _refresh_metric_choice(self):
        """Re-resolve "accuracy" once the output shape is known (binary for one column)."""
        if not self.built or self.loss is None:
            return
        out_shape = self.layers[-1].output_shape
        self.compiled_metrics = [
            metrics_mod.get(spec, loss=self.loss, output_shape=out_shape)
            if isinstance(spec, str) else spec for spec in self._metric_specs]
        last = self.layers[-1]
        act = getattr(last, "activation", None)
        self._fused_head = (act is not None and not self.loss.from_logits
                            and act.name in self.loss.fuses_with
                            and _takes_apply_activation(last))

    def _require_compiled(self, what):
        if self.loss is None:
            raise ModelNotCompiledError(f"Call compile(optimizer, loss) before {what}()")

    @property
    def metrics_names(self):
        return ["loss"] + [m.name for m in self.compiled_metrics]

    # ---------------------------------------------------------------- one step
    def _run_forward(self, x, training):
        caches = []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if i == last and self._fused_head:
                x, cache = layer.forward(x, training, apply_activation=False)
            else:
                x, cache = layer.forward(x, training)
            caches.append(cache)
        return x, caches

    def _loss_and_outputs(self, ops, out, y, sample_weight, grad):
        on_logits = self._fused_head
        probs = ops.xp.empty_like(out) if on_logits else None
        loss = self.loss.value_and_grad(ops, out, y, grad, sample_weight, on_logits=on_logits,
                                        probs_out=probs)
        return loss, (probs if on_logits else out)

    def _regularization(self, ops):
        return sum(layer.regularization_penalty(ops) for layer in self.layers)

    def _train_step(self, x, y, sample_weight=None):
        ops = get_ops()
        plan = self._stack_plan(ops, x.shape[0])
        if plan is not None:
            stack, code, first = plan
            # A team calls BLAS from each of its threads: only inside a one-thread BLAS scope.
            team = stack.team_size(x.shape[0], scope_threads()) if blas_held_single() else 1
            loss = stack.train_step(x, y, sample_weight, code, first, not self.loss.from_logits,
                                    team)
            self.optimizer.apply(self._store)
            return loss, stack.output(x.shape[0])
        out, caches = self._run_forward(x, True)
        grad = ops.xp.empty_like(out)
        loss, pred = self._loss_and_outputs(ops, out, y, sample_weight, grad)
        loss += self._regularization(ops)
        first = self._first_trainable_index()
        last = len(self.layers) - 1
        for i in range(last, first - 1, -1):
            layer = self.layers[i]
            kwargs = {"apply_activation": False} if i == last and self._fused_head else {}
            grad = layer.backward(grad, caches[i], need_dx=i > first, **kwargs)
        for layer in self.layers:
            layer.add_regularization_gradients(ops)
        self.optimizer.apply(self._store)
        return loss, pred

    def _stack_plan(self, ops, batch):
        """(dense stack, loss code, first trainable layer) for a plain Dense model, else None."""
        key = (ops, self._store, self.loss, tuple(layer.trainable for layer in self.layers))
        cached_key, plan = self._stack_cache
        if cached_key == key and (plan is None or plan[0].max_batch >= batch):
            return plan
        plan = None
        if fast_path.plain_dense_stack(self):
            code = fast_path.loss_code(self)
            first = fast_path.first_trainable(self)
            if code is not None and first is not None:
                plan = (fast_path.build_stack(ops, self, batch), code, first)
        self._stack_cache = (key, plan)
        return plan

    def _thread_scope(self, batch, training=False):
        """The thread scope of one fit/evaluate/predict call on ``batch`` rows: one thread
        for small products or a loaded machine; BLAS on one thread too when a compiled
        step is split between our own threads (backend/threads.py)."""
        store, widest = getattr(self, "_widest_cache", (None, 0))
        if store is None or store is not self._store:  # per built model, not per call
            widest = max((w.shape[0] * w.shape[1] for w in self.weights if len(w.shape) == 2),
                         default=0)
            self._widest_cache = (self._store, widest)
        n = threads_for(batch * widest)
        if training and n > 1:
            plan = self._stack_plan(get_ops(), batch)
            if plan is not None and plan[0].team_size(batch, n) > 1:
                return thread_scope(n, blas_single=True)
        return thread_scope(n)

    def _first_trainable_index(self):
        for i, layer in enumerate(self.layers):
            if layer.trainable_weights:
                return i
        return len(self.layers)

    def _test_step(self, x, y, sample_weight=None):
        ops = get_ops()
        out, _ = self._run_forward(x, False)
        loss, pred = self._loss_and_outputs(ops, out, y, sample_weight, None)
        return loss + self._regularization(ops), pred

    def _prepare(self, x, y, sample_weight=None, class_weight=None, what=""):
        """Check and convert (x, y, sample_weight); raises before touching the model."""
        x = self._check_x(x, "x" + what)
        if x.shape[0] == 0:
            raise ValueError(f"x{what} has no samples")
        if y is None:
            raise ValueError(f"y{what} is missing: training and evaluation need targets")
        data.check_lengths(x, y, "y" + what)
        self._refresh_metric_choice()
        y = data.check_targets(y, self.loss, self.layers[-1].output_shape, x.dtype, "y" + what)
        sw = data.check_sample_weight(sample_weight, x.shape[0])
        return x, y, self._with_class_weight(y, sw, class_weight)

    def _with_class_weight(self, y, sw, class_weight):
        """Fold ``class_weight`` into the sample weights (training data only, as Keras)."""
        if class_weight is None:
            return sw
        cw = data.class_weight_to_sample_weight(class_weight, y,
                                                self.layers[-1].output_shape[-1])
        return cw if sw is None else sw * cw

    def _update_metrics(self, y, pred, sample_weight):
        if not self.compiled_metrics:
            return
        ops = get_ops()
        pred = ops.to_numpy(pred)
        y = ops.to_numpy(y)
        sw = None if sample_weight is None else ops.to_numpy(sample_weight)
        for metric in self.compiled_metrics:
            metric.update_state(y, pred, sw)

    def _metric_logs(self, loss, prefix=""):
        """``{"loss": loss, metric name: result, ...}`` (names prefixed for validation)."""
        logs = {prefix + "loss": float(loss)}
        for metric in self.compiled_metrics:
            logs[prefix + metric.name] = _log_value(metric.result())
        return logs

    def _reset_metrics(self):
        for metric in self.compiled_metrics:
            metric.reset_state()

    # ---------------------------------------------------------------- public API
    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on the batch; returns [loss, *metrics] after it."""
        self._require_compiled("train_on_batch")
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
                 return_dict=False, callbacks=None):
        """Mean loss and metrics over (x, y): ``[loss, *metrics]`` (a float with no metrics)."""
        self._require_compiled("evaluate")
        batch_size = check_batch_size(batch_size)
        x, y, sw = self._prepare(x, y, sample_weight)
        with self._thread_scope(min(batch_size, x.shape[0])):
            logs = self._evaluate_prepared(x, y, sw, batch_size)
        return _as_result(logs, return_dict)

    def _evaluate_prepared(self, x, y, sw, batch_size, prefix=""):
        ops = get_ops()
        tracker = metrics_mod.Mean()
        self._reset_metrics()
        n = x.shape[0]
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            wb = None if sw is None else ops.asarray(sw[start:stop])
            loss, pred = self._test_step(ops.asarray(x[start:stop]), ops.asarray(y[start:stop]),
                                         wb)
            tracker.update_state(loss, stop - start)
            self._update_metrics(y[start:stop], pred, wb)
        return self._metric_logs(tracker.result(), prefix)

    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0):
        """Train for ``epochs`` epochs; returns a History (``history.history["loss"]``...)."""
        self._require_compiled("fit")
        batch_size = check_batch_size(batch_size)
        epochs = check_non_negative_int("epochs", epochs)
        initial_epoch = check_non_negative_int("initial_epoch", initial_epoch)
        validation_split = check_unit_interval("validation_split", validation_split)
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
        verbose = 1 if verbose == "auto" else int(verbose)
        history = History()
        cbs = list(callbacks or [])
        if verbose:
            cbs.append(ProgbarLogger(verbose))
        cbs.append(history)
        steps = -(-x.shape[0] // batch_size)
        cb = CallbackList(cbs, self, {"epochs": epochs, "steps": steps, "verbose": verbose,
                                      "batch_size": batch_size})
        self.history = history
        with self._thread_scope(min(batch_size, x.shape[0]), training=True):
            self._fit_loop(x, y, sw, val, batch_size, epochs, initial_epoch, shuffle, cb)
        return history

    def _fit_loop(self, x, y, sw, val, batch_size, epochs, initial_epoch, shuffle, cb):
        ops = get_ops()
        n = x.shape[0]
        x_dev, y_dev = ops.asarray(x), ops.asarray(y)
        sw_dev = None if sw is None else ops.asarray(sw)
        xbuf = ops.xp.empty((min(batch_size, n),) + x.shape[1:], dtype=x.dtype)
        ybuf = ops.xp.empty((min(batch_size, n),) + y.shape[1:], dtype=y.dtype)
        wbuf = None if sw is None else ops.xp.empty(min(batch_size, n), dtype=sw.dtype)
        rng = get_rng()
        self.stop_training = False
        cb.on_train_begin()
        logs = {}
        for epoch in range(initial_epoch, epochs):
            cb.on_epoch_begin(epoch)
            order = rng.permutation(n) if shuffle else numpy.arange(n)
            order_dev = ops.asarray(order)
            tracker = metrics_mod.Mean()
            self._reset_metrics()
            for step, start in enumerate(range(0, n, batch_size)):
                stop = min(start + batch_size, n)
                m = stop - start
                idx = order_dev[start:stop]
                xb = ops.take_rows(x_dev, idx, xbuf[:m])
                yb = ops.take_rows(y_dev, idx, ybuf[:m])
                wb = None if wbuf is None else ops.take_rows(sw_dev, idx, wbuf[:m])
                if cb.wants_batch_hooks:
                    cb.on_train_batch_begin(step)
                loss, pred = self._train_step(xb, yb, wb)
                tracker.update_state(loss, m)
                self._update_metrics(yb, pred, wb)
                if cb.wants_batch_hooks:
                    cb.on_train_batch_end(step, self._metric_logs(tracker.result()))
                    if self.stop_training:  # e.g. TerminateOnNaN: stop after this batch
                        break
            logs = self._metric_logs(tracker.result())
            if val is not None:
                cb.on_test_begin()
                logs.update(self._evaluate_prepared(*val, batch_size, prefix="val_"))
                cb.on_test_end()
            cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        self._finish_ema()
        cb.on_train_end(logs)

    def _finish_ema(self):
        """With ``use_ema``, end training holding the averaged weights (Keras 3)."""
        if self.optimizer is not None and self.optimizer.use_ema and "ema" in self.optimizer.state:
            self._store.params[...] = self.optimizer.state["ema"]


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
