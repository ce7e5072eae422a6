"""Checks on a model file's raw bytes, run before zipfile or json parse anything.

``zipfile`` parses the whole central directory when it opens a file, and
``json`` builds the whole object tree before anyone can look at it: the
bounds that keep loading cheap must come first. This module opens only
regular files, reads the zip's end-of-central-directory record itself (entry
count and directory size, before ``zipfile`` sees them), requires the zip to
fill the file exactly (no data before it, none after it: a file with a
second zip appended or a zip wrapped in a tar is refused), and bounds the
nesting depth and container count of ``config.json`` before it is parsed.
"""
import os
import re
import stat
import struct

import numpy

_LOCAL_HEADER = b"PK\x03\x04"
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_EOCD = b"PK\x06\x06"
_ZIP64_EOCD_SIZE = 56
_MAX_COMMENT = 0xFFFF
_MIN_DIRECTORY_ENTRY = 46  # a central-directory record without name, extra or comment


class InvalidModelFileError(ValueError):
    """A file that is not a readable fastnn model: truncated, corrupted, foreign or hostile."""


def open_regular_file(path):
    """``(binary file object, size)`` for ``path``, refusing anything but a regular file.

    A FIFO would block the reader forever and ``/dev/zero`` would feed it
    until memory runs out, so the type is checked with ``os.stat`` before the
    file is opened, and again with ``fstat`` on what was opened (the path may
    have been swapped in between; ``O_NONBLOCK`` keeps that open from
    blocking on a FIFO). A missing file is still FileNotFoundError.
    """
    _require_regular(path, os.stat(path).st_mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        _require_regular(path, info.st_mode)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def _require_regular(path, mode):
    if stat.S_ISREG(mode):
        return
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))
    kind = next((name for test, name in kinds if test(mode)), "not a plain file")
    raise InvalidModelFileError(f"{os.fspath(path)!r} is not a valid fastnn file: it is "
                                f"{kind}, not a regular file")


def check_zip_layout(f, size, max_entries, max_directory_bytes):
    """The entry count of the zip in ``f`` (``size`` bytes), from its end records.

    Refuses, before the central directory is parsed: too many entries or too
    large a directory, a multi-disk zip, and any byte of the file outside the
    zip (the first local header must sit at offset 0, the directory must end
    where the end records begin, and the end record plus its comment must end
    the file).
    """
    _require(size >= _EOCD_SIZE, f"{size} bytes: too short to be a zip")
    f.seek(0)
    _require(f.read(4) == _LOCAL_HEADER, "it does not start with a zip entry "
             "(not a zip, or data before the zip)")
    tail_size = min(size, _EOCD_SIZE + _MAX_COMMENT + _ZIP64_LOCATOR_SIZE + _ZIP64_EOCD_SIZE)
    f.seek(size - tail_size)
    tail = f.read(tail_size)
    _require(len(tail) == tail_size, "the file changed while it was read")
    # The record zipfile would take: a comment-less one at the very end, else the last one.
    if tail[-_EOCD_SIZE:-_EOCD_SIZE + 4] == _EOCD and tail[-2:] == b"\0\0":
        at = tail_size - _EOCD_SIZE
    else:
        at = tail.rfind(_EOCD)
        _require(at >= 0, "no zip end-of-central-directory record (not a zip, or data "
                 "after the zip)")
    fields = struct.unpack("<4s4H2LH", tail[at:at + _EOCD_SIZE].ljust(_EOCD_SIZE, b"\0"))
    _, disk, directory_disk, disk_entries, entries, directory_size, directory_offset, \
        comment = fields
    _require(at + _EOCD_SIZE + comment == tail_size,
             "data after the zip (the end-of-central-directory record does not end the file)")
    end_records = size - tail_size + at
    locator = at - _ZIP64_LOCATOR_SIZE
    if locator >= 0 and tail[locator:locator + 4] == _ZIP64_LOCATOR:
        record = locator - _ZIP64_EOCD_SIZE
        _require(record >= 0, "a truncated zip64 end record")
        _, locator_disk, record_offset, disks = struct.unpack(
            "<4sLQL", tail[locator:locator + _ZIP64_LOCATOR_SIZE])
        (signature, _, _, _, disk, directory_disk, disk_entries, entries, directory_size,
         directory_offset) = struct.unpack("<4sQ2H2L4Q", tail[record:locator])
        end_records = size - tail_size + record
        _require(signature == _ZIP64_EOCD and record_offset == end_records
                 and locator_disk == 0 and disks == 1, "an invalid zip64 end record")
    _require(disk == directory_disk == 0 and disk_entries == entries,
             "a multi-disk zip")
    _require(entries <= max_entries, f"{entries} entries (limit {max_entries})")
    _require(entries * _MIN_DIRECTORY_ENTRY <= directory_size <= max_directory_bytes,
             f"a central directory of {directory_size} bytes for {entries} entries "
             f"(limit {max_directory_bytes} bytes)")
    _require(directory_offset + directory_size == end_records,
             "data before the zip or between its directory and end record")
    return entries


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPENERS, _CLOSERS = b"[{", b"]}"


def check_json_structure(raw, max_depth, max_containers):
    """Refuse JSON text nested deeper than ``max_depth`` or holding more than
    ``max_containers`` arrays and objects, before ``json.loads`` builds any of it.

    Strings are removed first (brackets inside them do not count); the rest is
    counted with NumPy, so a few MiB take milliseconds.
    """
    structure = _JSON_STRING.sub(b"", raw).translate(None, delete=bytes(
        c for c in range(256) if c not in _OPENERS + _CLOSERS))
    if not structure:
        return
    codes = numpy.frombuffer(structure, dtype=numpy.uint8)
    steps = numpy.isin(codes, numpy.frombuffer(_OPENERS, numpy.uint8)).astype(numpy.int32)
    containers = int(steps.sum())
    _require(containers <= max_containers, f"config.json holds {containers} arrays and "
             f"objects (limit {max_containers})")
    steps -= numpy.isin(codes, numpy.frombuffer(_CLOSERS, numpy.uint8))
    depth = int(numpy.cumsum(steps).max())
    _require(depth <= max_depth, f"config.json is nested {depth} levels deep "
             f"(limit {max_depth})")


def _require(condition, message):
    if not condition:
        raise InvalidModelFileError(message)
