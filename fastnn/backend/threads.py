"""One thread policy for both pools: our OpenMP kernels and the BLAS behind scipy.

``set_num_threads(n)`` stores ``n`` for the kernels (they take their thread
count as an argument, so it holds for every calling thread) and sets the BLAS
pool to ``n`` through threadpoolctl. Until it is called, ``n`` is
``default_num_threads()``: ``OMP_NUM_THREADS`` when set, else the cores this
process may run on (affinity), capped by a cgroup CPU quota (a container
limited to 1.5 CPUs on a 64-core host gets 2, not 64).

Work is handed to threads only when it is large enough to pay for the
hand-off and there are cores to run them: a thread that has to be woken costs
microseconds, and on a loaded machine it waits for a core while every product
waits for it (milliseconds), which no product earns back. ``thread_scope`` is
taken once per ``fit``/``evaluate``/``predict`` call, never inside a kernel: it
grants ``threads_for(macs)`` threads, holding the BLAS pool to one thread for
work below ``BLAS_MIN_MACS`` or when other processes keep the cores busy (as
GNU OpenMP's ``OMP_DYNAMIC`` does from the load average). The thresholds are
measured (see ``docs/backends.md``, "Threads").
"""
import contextlib
import math
import os
import threading
import time

# A scope whose largest matrix product has fewer multiply-adds than this runs BLAS
# on one thread. Measured on the 2-core development VM (AMD EPYC, AVX2/FMA) with
# scipy's OpenBLAS, sgemm 1 thread against 2, interleaved, medians: see
# docs/backends.md ("Threads"). Below it two threads win little with idle cores and
# lose 3x-100x when other processes keep the cores busy.
BLAS_MIN_MACS = 1 << 22

_state = {"n": None, "pool": None}
_lock = threading.Lock()
_scope = {"depth": 0, "libs": None}
_local = threading.local()  # .n: the threads granted by this thread's innermost scope
LOAD_TTL = 1.0  # seconds a sample of the machine's load is reused
_load = {"at": float("-inf"), "free": 1}
try:
    _CLK_TCK = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):
    _CLK_TCK = 100


# ---------------------------------------------------------------------- defaults
def _cgroup_cpu_limit(root="/sys/fs/cgroup"):
    """CPUs allowed by a cgroup CPU quota (rounded up), or None without a quota.

    cgroup v2 writes ``"<quota> <period>"`` (quota ``max``: none) to ``cpu.max``;
    v1 has ``cpu.cfs_quota_us`` (-1: none) and ``cpu.cfs_period_us``. The same
    reading as loky's ``cpu_count``.
    """
    try:
        with open(os.path.join(root, "cpu.max")) as f:
            quota, period = f.read().split()[:2]
    except (OSError, ValueError):
        try:
            with open(os.path.join(root, "cpu", "cpu.cfs_quota_us")) as f:
                quota = f.read().strip()
            with open(os.path.join(root, "cpu", "cpu.cfs_period_us")) as f:
                period = f.read().strip()
        except OSError:
            return None
    try:
        quota, period = int(quota), int(period)
    except ValueError:  # "max"
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def _env_threads():
    """The first count in ``OMP_NUM_THREADS`` ("4" or "4,2"), or None."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return max(1, int(value)) if value.isdigit() else None


def default_num_threads():
    """Threads to use when ``set_num_threads`` was not called.

    ``OMP_NUM_THREADS`` when set (the user's explicit choice); else the CPUs in
    this process's affinity mask, capped by a cgroup CPU quota.
    """
    env = _env_threads()
    if env is not None:
        return env
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_limit()
    return max(1, min(cores, quota) if quota else cores)


def openmp_enabled():
    """True when the compiled kernels were built with OpenMP."""
    from .._kernels._openmp import openmp_enabled as enabled
    return enabled()


def get_num_threads():
    """Threads the kernels and BLAS may use."""
    n = _state["n"]
    if n is None:
        n = _state["n"] = default_num_threads()
    return n


def set_num_threads(n):
    """Use ``n`` threads in the OpenMP kernels and in BLAS (threadpoolctl).

    Process-wide; meant to be called once, before training or serving starts.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads needs a positive int, got {n!r}")
    with _lock:
        _state["n"] = n
        _set_pool(n)


# ---------------------------------------------------------------------- the BLAS pool
def _blas_libs():
    """threadpoolctl's controllers of the BLAS libraries in this process, found once.

    Building a ``ThreadpoolController`` scans the loaded libraries (milliseconds),
    so it is done once; our kernels are imported first so that the BLAS behind
    scipy's cython_blas is among them.
    """
    libs = _scope["libs"]
    if libs is None:
        from threadpoolctl import ThreadpoolController

        from .._kernels import _blas  # noqa: F401
        libs = ThreadpoolController().select(user_api="blas").lib_controllers
        _scope["libs"] = libs
    return libs


def _set_pool(n):
    """Set every BLAS pool to ``n`` threads (called under ``_lock``)."""
    for lib in _blas_libs():
        if lib.get_num_threads() != n:
            lib.set_num_threads(n)
    _state["pool"] = n


def _ensure_pool():
    """Apply the thread count to the BLAS pool once (BLAS ignores cgroup quotas)."""
    if _state["pool"] is None:
        with _lock:
            if _state["pool"] is None:
                _set_pool(get_num_threads())


def blas_held_single():
    """True while the BLAS pool runs one thread (a one-thread scope, or n = 1)."""
    return _scope["depth"] > 0 or _state["pool"] == 1


def _runnable_total(path="/proc/loadavg"):
    """Threads runnable on the machine right now (the ``R`` of the ``R/T`` field of
    /proc/loadavg, the caller included); 0 where it cannot be read."""
    try:
        with open(path) as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return 0


def _runnable_own(task_dir="/proc/self/task"):
    """Threads of this process that are runnable now (state R), the caller included.

    BLAS worker threads spin for a while after each product (OpenBLAS: ~0.1 s), so
    they show as runnable; they are ours, not load from other processes."""
    count = 0
    try:
        tids = os.listdir(task_dir)
    except OSError:
        return 1
    for tid in tids:
        try:
            with open(os.path.join(task_dir, tid, "stat"), "rb") as f:
                stat = f.read()
        except OSError:  # the thread ended meanwhile
            continue
        end = stat.rfind(b")")
        if stat[end + 2:end + 3] == b"R":
            count += 1
    return max(count, 1)


def _runnable_elsewhere():
    """Runnable threads of other processes right now (an instant: noisy)."""
    total = _runnable_total()
    return max(0, total - _runnable_own()) if total else 0


def _cpu_busy_seconds(path="/proc/stat"):
    """CPU seconds the whole machine has spent busy (not idle or waiting for I/O;
    stolen time counts as busy: those cores were not ours), or None."""
    try:
        with open(path) as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        return (sum(fields[:8]) - fields[3] - fields[4]) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def _busy_elsewhere():
    """Cores other processes kept busy on average since the previous sample: the
    machine's busy CPU time less this process's own (``time.process_time``, which
    counts our spinning BLAS workers too), over the wall time between. None at the
    first sample, or when the previous one is too old to speak for now."""
    now, own, busy = time.monotonic(), time.process_time(), _cpu_busy_seconds()
    previous, _load["previous"] = _load.get("previous"), (now, own, busy)
    if busy is None or previous is None or previous[2] is None:
        return None
    wall = now - previous[0]
    if wall <= 0 or wall > 10 * max(LOAD_TTL, 1.0):
        return None
    return max(0.0, (busy - previous[2]) - (own - previous[1])) / wall


def _free_cores():
    """The machine's cores less those other processes use, sampled at most every
    ``LOAD_TTL`` seconds: reading /proc (and ``os.cpu_count()``, which reads /sys)
    costs tens of microseconds, as much as a batch-1 predict. The average over the
    interval since the previous sample (other processes' short-lived threads count
    for the time they ran); at the first sample, the runnable threads of this instant."""
    now = time.monotonic()
    if now - _load["at"] >= LOAD_TTL:
        cores = os.cpu_count() or 1
        busy = _busy_elsewhere()
        if busy is None:
            _load["free"] = cores - _runnable_elsewhere()
        else:
            _load["free"] = int(cores - busy + 0.5)
        _load["at"] = now
    return _load["free"]


def available_threads():
    """``get_num_threads()``, less the cores other runnable threads are using now."""
    n = get_num_threads()
    if n <= 1:
        return 1
    return max(1, min(n, _free_cores()))


def threads_for(macs):
    """Threads for a call whose largest matrix product has ``macs`` multiply-adds: one
    below ``BLAS_MIN_MACS``, else the threads the machine's load leaves free."""
    if macs < BLAS_MIN_MACS or get_num_threads() <= 1:
        return 1
    return available_threads()


def scope_threads():
    """Threads granted by the innermost ``thread_scope`` of the calling thread
    (``get_num_threads()`` outside any)."""
    n = getattr(_local, "n", None)
    return get_num_threads() if n is None else n


@contextlib.contextmanager
def blas_single_thread():
    """Hold the BLAS pool to one thread inside the block (threadpoolctl).

    Thread-safe and nestable: the pool goes to one thread when the first such block
    opens and back to ``get_num_threads()`` when the last one closes (BLAS calls from
    other threads meanwhile also run on one thread: the pool is process-wide).
    """
    with _lock:
        if _state["pool"] is None:
            _set_pool(get_num_threads())
        _scope["depth"] += 1
        if _scope["depth"] == 1 and _state["pool"] != 1:
            for lib in _blas_libs():
                lib.set_num_threads(1)
    try:
        yield
    finally:
        with _lock:
            _scope["depth"] -= 1
            if _scope["depth"] == 0 and _state["pool"] != 1:
                for lib in _blas_libs():
                    lib.set_num_threads(_state["pool"])


def in_thread_scope():
    """True inside a ``thread_scope`` on this thread (its grant holds for nested calls)."""
    return getattr(_local, "n", None) is not None


@contextlib.contextmanager
def thread_scope(n, blas_single=None):
    """Grant ``n`` threads to the calls inside (``scope_threads()``), with the BLAS pool
    held to one thread when ``blas_single`` (default: when ``n`` is 1). Taken once per
    fit/evaluate/predict call; costs nothing from threadpoolctl when the pool stays."""
    if blas_single is None:
        blas_single = n <= 1
    previous = getattr(_local, "n", None)
    _local.n = n
    try:
        if blas_single and get_num_threads() > 1:
            with blas_single_thread():
                yield
        else:
            _ensure_pool()
            yield
    finally:
        _local.n = previous


def blas_scope(macs):
    """The scope for a call whose largest matrix product has ``macs`` multiply-adds:
    ``thread_scope(threads_for(macs))``."""
    return thread_scope(threads_for(macs))
