"""File-system helpers: crash-safe small-file writes and a bounded cache of open descriptors.

Small metadata files (topic list, checkpoints, snapshots) are replaced atomically
(tmp + fsync + rename + directory fsync) so a crash leaves either the old or the new version.
Segment and index descriptors go through ``FileHandleCache`` so thousands of partitions do not
exhaust the process's file limit; readers that must keep a file open beyond one call ``dup``
the descriptor (see ``LogRead``).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

TMP_SUFFIX = ".tmp"


def fsync_dir(path: Path) -> None:
    """Make renames/creations/deletions inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so readers and crashes see the old or the new content."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


class FileHandleCache:
    """At most ``max_open`` descriptors, least recently used closed first.

    Callers fetch the descriptor right before each system call and never hold it across
    another ``get``; a descriptor that must outlive that is ``os.dup``-ed.
    """

    def __init__(self, max_open: int) -> None:
        if max_open < 2:
            raise ValueError("max_open must be at least 2")
        self.max_open = max_open
        self._open: OrderedDict[str, int] = OrderedDict()
        self.opens = 0  # how many times a file had to be opened (for tests and metrics)

    def get(self, path: Path | str, *, create: bool = False) -> int:
        key = path if isinstance(path, str) else str(path)
        fd = self._open.get(key)
        if fd is not None:
            self._open.move_to_end(key)
            return fd
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        fd = os.open(key, flags, 0o644)
        self.opens += 1
        self._open[key] = fd
        while len(self._open) > self.max_open:
            _, old = self._open.popitem(last=False)
            os.close(old)
        return fd

    def forget(self, path: Path | str) -> None:
        """Close ``path`` if open (before deleting, renaming or truncating it away)."""
        fd = self._open.pop(str(path), None)
        if fd is not None:
            os.close(fd)

    def forget_under(self, directory: Path) -> None:
        prefix = str(directory) + os.sep
        for key in [k for k in self._open if k.startswith(prefix)]:
            os.close(self._open.pop(key))

    @property
    def open_count(self) -> int:
        return len(self._open)

    def close_all(self) -> None:
        while self._open:
            _, fd = self._open.popitem()
            os.close(fd)
