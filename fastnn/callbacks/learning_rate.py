"""Callbacks that change the optimizer's learning rate between epochs."""
import inspect
import numbers

from .base import Callback
from .monitor import (check_mode, check_non_negative, is_improvement, monitored_value,
                      resolve_direction)


def _current_lr(model):
    return float(model.optimizer.learning_rate)


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch from ``schedule``.

    ``schedule(epoch, lr)`` gets the epoch (from 0) and the current rate and
    returns the new one (a one-argument ``schedule(epoch)`` works too). The
    rate in force is logged as "learning_rate" at the end of every epoch.

    Args:
        schedule: the function above; it must return a real number >= 0 (an
            int is accepted, where Keras insists on a float).
        verbose: 1 prints each new rate.

    Example:
        >>> halve = LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr)
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule must be callable, got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose
        self._takes_lr = _accepts_two_args(schedule)

    def on_epoch_begin(self, epoch, logs=None):
        lr = _current_lr(self.model)
        new_lr = self.schedule(epoch, lr) if self._takes_lr else self.schedule(epoch)
        if isinstance(new_lr, bool) or not isinstance(new_lr, numbers.Real):
            raise ValueError(f"The schedule must return a number, got {new_lr!r}")
        self.model.optimizer.learning_rate = float(new_lr)
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                  f"{float(new_lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _current_lr(self.model)


def _accepts_two_args(fn):
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    params = list(signature.parameters.values())
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving (Keras 3).

    After ``patience`` epochs without an improvement larger than ``min_delta``
    the rate becomes ``max(lr * factor, min_lr)``; then ``cooldown`` epochs pass
    before waiting starts again. The rate is logged as "learning_rate".

    Args:
        monitor: default "val_loss".
        factor: in (0, 1), default 0.1.
        patience: epochs without improvement, default 10.
        verbose: 1 prints each reduction.
        mode: "min", "max" or "auto" (as EarlyStopping).
        min_delta: the smallest change that counts, default 1e-4.
        cooldown: epochs to wait after a reduction.
        min_lr: the rate never goes below this.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) \
                or not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau factor must be in (0, 1), got {factor!r}")
        self.monitor = monitor
        self.factor = float(factor)
        self.patience = check_non_negative("patience", patience, integer=True)
        self.verbose = verbose
        self.mode = check_mode(mode)
        self.min_delta = check_non_negative("min_delta", min_delta)
        self.cooldown = check_non_negative("cooldown", cooldown, integer=True)
        self.min_lr = check_non_negative("min_lr", min_lr)
        self._reset()

    def _reset(self):
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0
        self._direction = None

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _current_lr(self.model)
        if self._direction is None:
            self._direction = resolve_direction(self.mode, self.monitor, self.model)
        current = monitored_value(logs, self.monitor, "ReduceLROnPlateau")
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if is_improvement(self._direction, current, self.best, self.min_delta):
            self.best, self.wait = current, 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                self._reduce(epoch)

    def _reduce(self, epoch):
        old_lr = _current_lr(self.model)
        if old_lr <= self.min_lr:
            return
        new_lr = max(old_lr * self.factor, self.min_lr)
        self.model.optimizer.learning_rate = new_lr
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
        self.cooldown_counter = self.cooldown
        self.wait = 0
