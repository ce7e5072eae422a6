"""The hooks ``fit`` calls so that training can run data-parallel, and their one-process form.

``fit`` asks the model's optimizer for a ``parallel`` object (set by
``fastnn.distributed.DistributedOptimizer``) and otherwise uses ``LOCAL``,
whose hooks change nothing. The MPI implementation lives in
``fastnn.distributed``; this module only fixes the protocol, so the training
loop stays one loop for one process and for many.
"""
import contextlib
import hashlib

import numpy


class LocalRun:
    """One process: the whole batch is this process's shard, every figure is already global."""

    rank, size = 0, 1

    def fit_callbacks(self, verbose, callbacks):
        """``(verbose, callbacks)`` this process runs (other ranks drop printing and files)."""
        return verbose, callbacks

    def fit_scope(self, model, facts):
        """A context around the training loop: start-up checks, broadcasts, fault handling.

        ``facts`` describes the call (data shapes, batch size, epochs...) for the checks.
        """
        return contextlib.nullcontext()

    def epoch_order(self, rng, n, shuffle, batch_size):
        """The order in which the epoch visits the ``n`` training samples."""
        return rng.permutation(n) if shuffle else numpy.arange(n)

    def shard(self, idx):
        """This process's rows of one global batch (given as sample indices)."""
        return idx

    def end_epoch(self, model):
        """Called after an epoch's last step, before its logs and validation."""

    def local_part(self, x, y, sw):
        """This process's part of a validation set."""
        return x, y, sw

    def merged(self, tracker, metrics):
        """The running loss tracker and metrics with every process's samples in them."""
        return tracker, metrics

    def any(self, flag):
        """True when ``flag`` is true on any process."""
        return bool(flag)


LOCAL = LocalRun()


def fit_facts(x, y, sw, val, **arguments):
    """What a ``fit`` call is given, in plain data: shapes, dtypes, a digest of sample rows.

    Data-parallel runs compare these across processes before training (each must pass
    the same data and arguments); the digest covers about 64 evenly spaced rows.
    """
    step = max(1, x.shape[0] // 64)
    digest = hashlib.sha256()
    for part in (x, y) if sw is None else (x, y, sw):
        digest.update(numpy.ascontiguousarray(part[::step]).tobytes())
    return {"x": [list(x.shape), str(x.dtype)], "y": [list(y.shape), str(y.dtype)],
            "sample_weight": sw is not None, "data_sample": digest.hexdigest()[:16],
            "validation": None if val is None else list(val[0].shape), **arguments}
