"""ModelCheckpoint: save the model (or its weights) at the end of epochs."""
import math
import os

from .base import Callback
from .monitor import check_mode, is_improvement, monitored_value, resolve_direction


class ModelCheckpoint(Callback):
    """Save with ``model.save`` (or ``model.save_weights``) after every epoch, or only
    when ``monitor`` improves.

    ``filepath`` may hold ``str.format`` fields: ``{epoch}`` (counted from 1) and
    any logged name, e.g. ``"ckpt-{epoch:02d}-{val_loss:.2f}.fastnn"``. Missing
    folders are created. Each save is atomic (see ``fastnn.models.saving``).

    Args:
        filepath: where to save (a template, see above).
        monitor: the logged quantity for ``save_best_only``, default "val_loss".
        verbose: 1 prints a line for each decision.
        save_best_only: save only when ``monitor`` improves on the best so far.
        save_weights_only: ``model.save_weights`` instead of ``model.save``.
        mode: "min", "max" or "auto" (as EarlyStopping).
        save_freq: only "epoch" is supported (Keras also takes a batch count).
        initial_value_threshold: a value the first save must already beat.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        if not isinstance(filepath, (str, os.PathLike)):
            raise TypeError(f"filepath must be a string or path, got {filepath!r}")
        if save_freq != "epoch":
            raise ValueError(f"ModelCheckpoint supports save_freq='epoch' only, got "
                             f"{save_freq!r}")
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = check_mode(mode)
        self.save_freq = save_freq
        self.initial_value_threshold = initial_value_threshold
        self.best = initial_value_threshold
        self._direction = None

    def on_train_begin(self, logs=None):
        if self.save_best_only and self._direction is None:
            self._direction = resolve_direction(self.mode, self.monitor, self.model)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self._file_path(epoch, logs)
        if not self.save_best_only:
            self._save(path)
            return
        current = monitored_value(logs, self.monitor, "ModelCheckpoint")
        if current is None or math.isnan(current):
            return
        if is_improvement(self._direction, current, self.best):
            if self.verbose > 0:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best} to "
                      f"{current:.5f}, saving model to {path}")
            self.best = current
            self._save(path)
        elif self.verbose > 0:
            print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")

    def _file_path(self, epoch, logs):
        try:
            return self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"Cannot fill in the ModelCheckpoint filepath "
                             f"{self.filepath!r}: {exc!r}; available names: epoch, "
                             f"{', '.join(logs)}") from None

    def _save(self, path):
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
