"""Atomic file writes: readers see the old file or the complete new one, never a torn one.

The data goes to a temporary file in the target's directory (so the final
rename stays on one file system), is flushed and fsync'ed, then
``os.replace`` swaps it in and the directory is fsync'ed so the rename itself
survives a power cut. If the writer dies before the rename, the target is
untouched; a process killed outright (SIGKILL) may leave its hidden
``.<name>.*.tmp`` file behind, never a broken target.

Like an editor's save, a write goes through a symbolic link to the file it
points at (the link stays a link) and the replaced file keeps its permission
bits (and, where the process may set them, its owner and group). A target
without any write permission is refused with PermissionError rather than
silently replaced: the rename would otherwise bypass the read-only bit.
"""
import contextlib
import errno
import os
import stat
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
    path = os.path.realpath(os.fspath(path))  # through symlinks, to the file itself
    existing = _writable_target(path)
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if existing is None:
            os.chmod(tmp, 0o666 & ~_UMASK)
        else:
            os.chmod(tmp, stat.S_IMODE(existing.st_mode))
            with contextlib.suppress(OSError):  # only a privileged process may change owners
                os.chown(tmp, existing.st_uid, existing.st_gid)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _writable_target(path):
    """The stat of the file ``path`` replaces (None when there is none yet).

    Raises PermissionError for a file nobody may write (no ``w`` bit at all, which
    stops root too) or that this process may not write.
    """
    try:
        existing = os.stat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(existing.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
    if not existing.st_mode & 0o222 or not os.access(path, os.W_OK):
        raise PermissionError(errno.EACCES, "Refusing to replace a read-only file (make it "
                                            "writable first, or save under another name)", path)
    return existing


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
