"""Atomic file writes: readers see the old file or the complete new one, never a torn one.

The data goes to a temporary file in the target's directory (so the final
rename stays on one file system), is flushed and fsync'ed, then
``os.replace`` swaps it in and the directory is fsync'ed so the rename itself
survives a power cut. If the writer dies before the rename, the target is
untouched; a process killed outright (SIGKILL) may leave its hidden
``.<name>.*.tmp`` file behind, never a broken target.
"""
import contextlib
import os
import tempfile

# Read the umask once (os.umask can only be read by setting it), so the final
# file gets the permissions a plain open() would give it, not mkstemp's 0600.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_write(path):
    """Open a binary file that replaces ``path`` only when the ``with`` block succeeds.

    Example:
        >>> with atomic_write("model.fastnn") as f:   # doctest: +SKIP
        ...     f.write(payload)
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
