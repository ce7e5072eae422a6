"""EarlyStopping: stop ``fit`` when a monitored quantity stops improving."""
from .base import Callback
from .monitor import (check_mode, check_non_negative, is_improvement, monitored_value,
                      resolve_direction)


class EarlyStopping(Callback):
    """Stop training once ``monitor`` has not improved for ``patience`` epochs (Keras 3).

    Args:
        monitor: the logged quantity to watch, default "val_loss".
        min_delta: an improvement must exceed this (its absolute value is used).
        patience: epochs without improvement before stopping.
        verbose: 1 prints when it stops and when it restores weights.
        mode: "min", "max" or "auto" (loss: min; a compiled metric: its own
            direction; a name with "acc": max; else a ValueError).
        baseline: the wait counter only restarts once the value also beats this.
        restore_best_weights: at the end of training (stopped early or not),
            set the weights of the best epoch seen after ``start_from_epoch``.
        start_from_epoch: epochs to ignore at the start (warm-up).

    Example:
        >>> stop = EarlyStopping(patience=3, restore_best_weights=True)
        >>> # model.fit(x, y, validation_split=0.2, epochs=100, callbacks=[stop])
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = monitor
        self.min_delta = abs(check_non_negative("abs(min_delta)", abs(min_delta)))
        self.patience = check_non_negative("patience", patience, integer=True)
        self.verbose = verbose
        self.mode = check_mode(mode)
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = check_non_negative("start_from_epoch", start_from_epoch,
                                                   integer=True)
        self._direction = None
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self._reset()  # the same instance may serve several fits
        self._direction = None

    def on_epoch_end(self, epoch, logs=None):
        if self._direction is None:
            self._direction = resolve_direction(self.mode, self.monitor, self.model)
        current = monitored_value(logs, self.monitor, "EarlyStopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if is_improvement(self._direction, current, self.best, self.min_delta):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or is_improvement(self._direction, current,
                                                       self.baseline, self.min_delta):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)
