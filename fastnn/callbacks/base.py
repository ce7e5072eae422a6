"""The Callback protocol, the list that fans hooks out, History and the progress bar."""
import sys
import time


class Callback:
    """Base class: override the hooks you need."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass


class CallbackList:
    """Calls each hook on every callback in order."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)
        # Batch hooks cost a Python call per step: skip them when nobody overrides them.
        self.wants_batch_hooks = any(
            type(cb).on_train_batch_begin is not Callback.on_train_batch_begin
            or type(cb).on_train_batch_end is not Callback.on_train_batch_end
            for cb in self.callbacks)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args, **kwargs):
            for cb in self.callbacks:
                getattr(cb, hook)(*args, **kwargs)
        return call


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"]``, ``["val_accuracy"]``, ..."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


def _format_logs(logs):
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items() if isinstance(v, float))


class ProgbarLogger(Callback):
    """Keras-style progress: ``verbose=1`` a bar per epoch (redrawn in place only on a
    terminal, else printed once at the epoch's end), ``verbose=2`` one line per epoch."""

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stdout
        self._last_draw = 0.0

    def _is_tty(self):
        return hasattr(self.stream, "isatty") and self.stream.isatty()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._last_draw = 0.0
        epochs = self.params.get("epochs")
        if self.verbose == 1:
            self.stream.write(f"Epoch {epoch + 1}/{epochs}\n")

    def on_train_batch_end(self, batch, logs=None):
        if self.verbose != 1 or not self._is_tty():
            return
        now = time.perf_counter()
        steps = self.params.get("steps") or 1
        if now - self._last_draw < 0.1 and batch + 1 < steps:
            return
        self._last_draw = now
        elapsed = now - self._epoch_start
        done = batch + 1
        eta = elapsed / done * (steps - done)
        width = 30
        filled = int(width * done / steps)
        bar = "=" * max(filled - 1, 0) + (">" if filled < width else "=") + "." * (width - filled)
        self.stream.write(f"\r{done}/{steps} [{bar}] - ETA: {eta:.0f}s - {_format_logs(logs or {})}")
        self.stream.flush()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self._epoch_start
        steps = self.params.get("steps") or 1
        text = _format_logs(logs or {})
        if self.verbose == 1:
            prefix = "\r" if self._is_tty() else ""
            self.stream.write(f"{prefix}{steps}/{steps} [{'=' * 30}] - {elapsed:.2f}s - {text}\n")
        elif self.verbose == 2:
            epochs = self.params.get("epochs")
            self.stream.write(f"Epoch {epoch + 1}/{epochs} - {elapsed:.2f}s - {text}\n")
        self.stream.flush()
