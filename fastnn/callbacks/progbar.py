"""Keras-style progress output for ``fit(verbose=1 | 2)`` and ``evaluate``."""
import numbers
import sys
import time

from .base import Callback

BAR_WIDTH = 30
REDRAW_SECONDS = 0.1


def _format_value(value):
    """Keras' rule: 4 decimals, or scientific notation for tiny values (a learning rate)."""
    return f"{value:.4f}" if abs(value) > 1e-3 or value == 0 else f"{value:.4e}"


def format_logs(logs):
    """``"loss: 0.1234 - accuracy: 0.9000"``; entries that are not single numbers are skipped."""
    return " - ".join(f"{key}: {_format_value(float(value))}" for key, value in logs.items()
                      if isinstance(value, numbers.Real) and not isinstance(value, bool))


def _bar(done, steps):
    filled = int(BAR_WIDTH * done / steps)
    if filled >= BAR_WIDTH:
        return "=" * BAR_WIDTH
    return "=" * max(filled - 1, 0) + ">" + "." * (BAR_WIDTH - max(filled, 1))


def _per_step(elapsed, steps):
    ms = 1000.0 * elapsed / max(steps, 1)
    return f"{ms:.0f}ms/step" if ms >= 1 else f"{1000 * ms:.0f}us/step"


class ProgbarLogger(Callback):
    """Prints training progress to ``stream`` (stdout by default).

    ``verbose=1``: "Epoch i/n", then a bar with steps done, ETA and the running
    metrics, redrawn in place (``\\r``) only when the stream is a terminal;
    elsewhere (a log file, a notebook capture) one finished bar per epoch.
    ``verbose=2``: one line per epoch, no bar.

    Args:
        verbose: 1 or 2.
        stream: a file-like object with ``write`` (and optionally ``isatty``).
    """

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        if verbose not in (1, 2):
            raise ValueError(f"ProgbarLogger verbose must be 1 or 2, got {verbose!r}")
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stdout
        self._last_draw = 0.0
        self._epoch_start = time.perf_counter()

    def _is_tty(self):
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def _steps(self):
        return self.params.get("steps") or 1

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._last_draw = 0.0
        if self.verbose == 1:
            self.stream.write(f"Epoch {epoch + 1}/{self.params.get('epochs')}\n")

    def on_train_batch_end(self, batch, logs=None):
        if self.verbose != 1 or not self._is_tty():
            return
        now = time.perf_counter()
        steps, done = self._steps(), batch + 1
        if now - self._last_draw < REDRAW_SECONDS and done < steps:
            return
        self._last_draw = now
        elapsed = now - self._epoch_start
        eta = elapsed / done * (steps - done)
        self.stream.write(f"\r{done}/{steps} [{_bar(done, steps)}] - ETA: {eta:.0f}s"
                          f" - {format_logs(logs or {})}")
        self.stream.flush()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self._epoch_start
        steps = self._steps()
        timing = f"{elapsed:.0f}s {_per_step(elapsed, steps)}"
        text = format_logs(logs or {})
        if self.verbose == 1:
            prefix = "\r" if self._is_tty() else ""
            self.stream.write(f"{prefix}{steps}/{steps} [{_bar(steps, steps)}] - {timing}"
                              f" - {text}\n")
        else:
            self.stream.write(f"Epoch {epoch + 1}/{self.params.get('epochs')} - {timing}"
                              f" - {text}\n")
        self.stream.flush()


class EvaluationLogger(Callback):
    """Prints ``evaluate``'s result as Keras does at the end of its progress bar:
    ``"4/4 [====...] - 0s 2ms/step - loss: 0.1234 - accuracy: 0.9000"`` (verbose=1), or
    without the bar (verbose=2)."""

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stdout
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_test_end(self, logs=None):
        elapsed = time.perf_counter() - self._start
        steps = self.params.get("steps") or 1
        bar = f"{steps}/{steps} [{_bar(steps, steps)}] - " if self.verbose == 1 else ""
        self.stream.write(f"{bar}{elapsed:.0f}s {_per_step(elapsed, steps)} - "
                          f"{format_logs(logs or {})}\n")
        self.stream.flush()
