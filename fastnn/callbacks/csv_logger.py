"""CSVLogger: one row of logs per epoch in a CSV file."""
import csv
import os

import numpy

from .base import Callback


def _cell(value):
    """Numbers as they are; a vector (a per-class metric) as "[a, b, c]"."""
    if isinstance(value, str) or numpy.ndim(value) == 0:
        return value
    return f"[{', '.join(str(v) for v in numpy.ravel(value))}]"


class CSVLogger(Callback):
    """Write ``epoch`` (from 0) and every logged value to ``filename`` after each epoch.

    The columns are the sorted log names of the first epoch; when no "val_"
    name is among them, the "val_" versions are added too (filled with "NA"),
    as Keras 3 does. Rows are flushed as they are written.

    Args:
        filename: the CSV file.
        separator: the field separator, default ",".
        append: add to an existing file (without a second header) instead of
            overwriting it.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(f"filename must be a string or path, got {filename!r}")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator must be one character, got {separator!r}")
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = bool(append)
        self.keys = None
        self.writer = None
        self.csv_file = None
        self._write_header = True

    def on_train_begin(self, logs=None):
        self._write_header = True
        mode = "w"
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, newline="") as f:
                    self._write_header = not f.readline()
            mode = "a"
        self.keys, self.writer = None, None
        self.csv_file = open(self.filename, mode, newline="")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += ["val_" + k for k in self.keys]
        if self.writer is None:
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys,
                                         delimiter=self.sep, extrasaction="ignore")
            if self._write_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((key, _cell(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None:
            self.csv_file.close()
        self.csv_file, self.writer = None, None
