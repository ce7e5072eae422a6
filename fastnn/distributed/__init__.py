"""Data-parallel training on MPI, with Horovod's names.

A Keras-style script becomes data-parallel with two changes, then runs under
``mpiexec -n N python train.py``::

    import fastnn as keras
    from fastnn import distributed

    distributed.init()                                   # 1: join the MPI job
    model = keras.Sequential([...])
    model.compile(optimizer=distributed.DistributedOptimizer(
                      keras.optimizers.Adam(1e-3)),      # 2: average gradients
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=256, epochs=10, validation_split=0.1)

Every rank runs the same script on the same data. ``fit`` then broadcasts
rank 0's weights and optimizer state, gives each rank its contiguous share of
every global batch of ``batch_size`` rows, averages the gradients with one
allreduce over the flat gradient buffer per step (so all ranks take the same
step and keep identical weights), splits validation across the ranks, logs
global loss and metrics (so EarlyStopping, ReduceLROnPlateau and
ModelCheckpoint decide alike everywhere), and prints and writes files on rank
0 only. A rank that raises ends the whole job with its traceback printed by
rank 0; collectives never wait longer than ``timeout`` seconds.

``mpi4py`` is imported on first use, so ``import fastnn`` works without it:
``pip install "fastnn-toolkit[mpi]"``.
"""
import sys

from ._comm import (
    CollectiveTimeoutError,
    Communicator,
    ConfigMismatchError,
    DistributedError,
    RankFailedError,
)

_DEFAULT_TIMEOUT_S = 300.0
_state = {"comm": None}

__all__ = [
    "CollectiveTimeoutError",
    "ConfigMismatchError",
    "DistributedError",
    "DistributedOptimizer",
    "RankFailedError",
    "allreduce",
    "barrier",
    "broadcast",
    "init",
    "is_root",
    "load_model",
    "local_rank",
    "local_size",
    "rank",
    "size",
]


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("fastnn.distributed needs mpi4py and an MPI library: "
                          'pip install "fastnn-toolkit[mpi]" (or mpi4py built against your '
                          "cluster's MPI)") from exc
    return MPI


def init(comm=None, timeout=_DEFAULT_TIMEOUT_S, grace=10.0):
    """Join the MPI job (idempotent); returns the rank.

    Args:
        comm: the ``mpi4py`` communicator to train over (default ``COMM_WORLD``).
        timeout: seconds any collective may wait for the other ranks before the job is
            declared broken and aborted with a clear error (default 300).
        grace: seconds a failing rank gives rank 0 to print its report and end the job.

    With more than one rank, an exception that no code catches on any rank ends the
    whole job (``MPI_Abort``) rather than leaving the other ranks waiting.
    """
    if _state["comm"] is None:
        MPI = _mpi()
        _state["comm"] = Communicator(comm if comm is not None else MPI.COMM_WORLD,
                                      timeout, grace)
        if _state["comm"].size > 1:
            _install_excepthook(_state["comm"])
    return _state["comm"].rank


def _comm():
    if _state["comm"] is None:
        init()
    return _state["comm"]


def rank():
    """This process's rank, 0 ... size() - 1."""
    return _comm().rank


def size():
    """The number of processes training together."""
    return _comm().size


def is_root():
    """True on rank 0, the rank that prints and writes files."""
    return _comm().rank == 0


def local_rank():
    """This process's rank among the ranks on its machine (e.g. to pin threads)."""
    return _local_comm().Get_rank()


def local_size():
    """The number of ranks on this machine (e.g. to divide its cores among them)."""
    return _local_comm().Get_size()


def _local_comm():
    comm = _comm()
    if not hasattr(comm, "local"):
        comm.local = comm.comm.Split_type(comm.MPI.COMM_TYPE_SHARED)
    return comm.local


def barrier():
    """Wait until every rank gets here (guarded by the timeout)."""
    _comm().barrier()


def allreduce(value, average=True):
    """The sum (or, by default, the mean) over ranks of a number or NumPy array."""
    import numpy
    arr = numpy.array(value, dtype="float64")
    total = _comm().allreduce_(arr.reshape(-1).copy(), "allreduce").reshape(arr.shape)
    if average:
        total /= size()
    return float(total) if total.ndim == 0 else total


def broadcast(obj, root=0):
    """Rank ``root``'s picklable ``obj`` on every rank."""
    return _comm().bcast_object(obj, root)


def DistributedOptimizer(optimizer):
    """``optimizer`` (an Optimizer or a name) made data-parallel: compile a model with it.

    The result is an instance of the optimizer's own class (same name, config and
    state) whose step first averages the gradients over all ranks.
    """
    from ._optimizer import wrap
    from ._run import MPIRun
    return wrap(optimizer, MPIRun(_comm()))


def load_model(path, compile=True):
    """``fastnn.models.load_model`` with the optimizer made a DistributedOptimizer.

    Every rank reads the file (rank 0's copy wins at the start of ``fit``); with the
    saved optimizer state and random stream, a resumed ``fit(initial_epoch=...)``
    continues as the uninterrupted run would have.
    """
    from ..models import load_model as load
    model = load(path, compile=compile)
    if compile and model.optimizer is not None:
        model.optimizer = DistributedOptimizer(model.optimizer)
    return model


def _install_excepthook(comm):
    previous = sys.excepthook

    def hook(kind, exc, tb):
        if comm.rank == 0:
            previous(kind, exc, tb)
            sys.stderr.flush()
            comm.MPI.COMM_WORLD.Abort(1)
        elif not isinstance(exc, ConfigMismatchError):  # that one every rank raised
            comm.fail(exc)  # rank 0 prints this rank's traceback and ends the job

    sys.excepthook = hook
