"""Collectives that cannot hang, and the fault path that ends a job with a clear error.

Every collective fastnn issues is nonblocking (``Iallreduce``, ``Ibcast``,
``Iallgather``...) and waited on by polling ``Test`` against a deadline. While
it waits, rank 0 also looks for failure reports: a rank whose training raises
sends its traceback to rank 0 and waits a short grace period; rank 0 prints
the report and aborts the whole job (``MPI_Abort``). A rank that stops
answering without a report (killed, stuck) makes the others' waits run out:
they raise ``CollectiveTimeoutError`` and rank 0 aborts the job the same way.
"""
import contextlib
import pickle
import sys
import time
import traceback

import numpy

_FAILURE_TAG = 31_415
_PROBE_EVERY_S = 0.01
_SPIN_S = 0.005


class DistributedError(RuntimeError):
    """Base class of the errors fastnn.distributed raises."""


class ConfigMismatchError(DistributedError, ValueError):
    """The ranks started ``fit`` with different models, optimizers, data shapes or arguments.

    Every rank raises it with the same message, so the job ends without an abort.
    """


class RankFailedError(DistributedError):
    """Another rank raised while training (its report is the message)."""


class CollectiveTimeoutError(DistributedError):
    """A collective did not complete in time: some rank died, hangs or took another path."""


class Communicator:
    """A duplicated MPI communicator with watchdog-guarded collectives.

    Args:
        comm: an ``mpi4py.MPI.Comm`` (fastnn uses a duplicate, so its messages never mix
            with the program's own).
        timeout: seconds a collective may wait for the slowest rank before the job is
            declared broken.
        grace: seconds a failing rank waits for rank 0 to end the job before it ends it.
    """

    def __init__(self, comm, timeout=300.0, grace=10.0):
        from mpi4py import MPI
        self.MPI = MPI
        self.comm = comm.Dup()
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.timeout = float(timeout)
        self.grace = float(grace)

    # ---------------------------------------------------------------- waiting
    def wait(self, request, what):
        """Complete ``request``, raising instead of hanging (see module docstring)."""
        start = time.monotonic()
        spin_until = start + _SPIN_S
        next_probe = start + _PROBE_EVERY_S
        deadline = start + self.timeout
        delay = 2e-5
        while not request.Test():
            now = time.monotonic()
            if now < spin_until:  # most collectives end within a few ms: poll without sleeping
                continue
            if now >= next_probe:
                next_probe = now + _PROBE_EVERY_S
                self._check_reports()
            if now >= deadline:
                raise CollectiveTimeoutError(
                    f"rank {self.rank}: {what} did not complete within {self.timeout:g} s: "
                    f"another rank died, hangs, or left the training loop early")
            time.sleep(delay)
            delay = min(delay * 2, 1e-3)

    def _check_reports(self):
        status = self.MPI.Status()
        if self.comm.Iprobe(source=self.MPI.ANY_SOURCE, tag=_FAILURE_TAG, status=status):
            report = self.comm.recv(source=status.Get_source(), tag=_FAILURE_TAG)
            raise RankFailedError(report)

    # ---------------------------------------------------------------- collectives
    def allreduce_(self, buf, what="allreduce"):
        """Sum ``buf`` (a contiguous NumPy array) over all ranks, in place."""
        if self.size > 1:
            self.wait(self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM), what)
        return buf

    def allreduce_sum(self, values, what="allreduce"):
        """The sum over all ranks of a float64 vector (a new array)."""
        return self.allreduce_(numpy.array(values, dtype="float64"), what)

    def bcast_(self, buf, root=0, what="broadcast"):
        """Overwrite ``buf`` on every rank with root's ``buf``."""
        if self.size > 1:
            self.wait(self.comm.Ibcast(buf, root=root), what)
        return buf

    def bcast_object(self, obj, root=0, what="broadcast"):
        """Root's picklable ``obj`` on every rank."""
        if self.size == 1:
            return obj
        data = numpy.frombuffer(pickle.dumps(obj), dtype="uint8") if self.rank == root else None
        length = self.bcast_(numpy.array([0 if data is None else data.size], "int64"), root,
                             what)
        buf = data.copy() if data is not None else numpy.empty(int(length[0]), "uint8")
        return pickle.loads(self.bcast_(buf, root, what).tobytes())

    def allgather_object(self, obj, what="allgather"):
        """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
        if self.size == 1:
            return [obj]
        data = numpy.frombuffer(pickle.dumps(obj), dtype="uint8")
        lengths = numpy.empty(self.size, "int64")
        self.wait(self.comm.Iallgather(numpy.array([data.size], "int64"), lengths), what)
        received = numpy.empty(int(lengths.sum()), "uint8")
        self.wait(self.comm.Iallgatherv(data, [received, lengths]), what)
        ends = numpy.cumsum(lengths)
        return [pickle.loads(received[end - n:end].tobytes()) for n, end in zip(lengths, ends)]

    def allgather_(self, row, what="allgather"):
        """Stack every rank's 1-D ``row`` (same length everywhere) into (size, len)."""
        out = numpy.empty((self.size,) + row.shape, row.dtype)
        if self.size == 1:
            out[0] = row
        else:
            self.wait(self.comm.Iallgather(row, out), what)
        return out

    def barrier(self, what="barrier"):
        if self.size > 1:
            self.wait(self.comm.Ibarrier(), what)

    # ---------------------------------------------------------------- failing
    def fail(self, exc):
        """End the whole job because ``exc`` was raised on this rank; never returns.

        Rank 0 prints the report and aborts. Another rank sends its report to rank 0
        and gives it ``grace`` seconds to end the job, then ends it itself. With one rank
        there is nobody to wait for: ``exc`` is raised as usual.
        """
        if self.size == 1:
            raise exc
        if isinstance(exc, (RankFailedError, CollectiveTimeoutError)):
            report = str(exc)  # noticed here, raised elsewhere: rank 0 reports it
            own = False
        else:
            report = (f"rank {self.rank} of {self.size} raised "
                      + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
            own = True
        if self.rank == 0:
            self._abort(report)
        if own:
            # The report is a courtesy: if sending fails, the abort below still happens.
            with contextlib.suppress(Exception):
                request = self.comm.isend(report, dest=0, tag=_FAILURE_TAG)
                deadline = time.monotonic() + min(self.grace, 1.0)
                while not request.Test() and time.monotonic() < deadline:
                    time.sleep(1e-3)
        time.sleep(self.grace)  # rank 0 normally ends the job during this wait
        self._abort(report)

    def _abort(self, report):
        sys.stderr.write(f"fastnn.distributed: {report.rstrip()}\n"
                         f"fastnn.distributed: aborting all {self.size} ranks\n")
        sys.stderr.flush()
        time.sleep(0.5)  # let the launcher forward the report before it tears the job down
        self.MPI.COMM_WORLD.Abort(1)
