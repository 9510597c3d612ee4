"""Sparse offset and time indexes, in Kafka's on-disk formats.

Offset index entry: (offset - segment base) i32, file position i32 — 8 bytes.
Time index entry: max timestamp so far i64, (offset - segment base) i32 — 12 bytes.
Entries are strictly increasing in both fields. The active segment keeps its entries in a
``bytearray`` (written to disk at flush/roll/close); sealed segments are searched in the file
with a handful of ``pread`` calls, so they cost no memory.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

OFFSET_ENTRY = struct.Struct(">ii")
TIME_ENTRY = struct.Struct(">qi")

EntryReader = Callable[[int], tuple[int, int]]


def memory_reader(buf: bytearray | bytes, entry: struct.Struct) -> EntryReader:
    def read(i: int) -> tuple[int, int]:
        a, b = entry.unpack_from(buf, i * entry.size)
        return int(a), int(b)

    return read


def file_reader(fd: int, entry: struct.Struct) -> EntryReader:
    def read(i: int) -> tuple[int, int]:
        data = os.pread(fd, entry.size, i * entry.size)
        if len(data) != entry.size:
            raise OSError("index entry beyond end of file")
        a, b = entry.unpack(data)
        return int(a), int(b)

    return read


def floor_index(read: EntryReader, count: int, key: int, field: int = 0) -> int:
    """Index of the last entry whose ``field`` is <= ``key`` (binary search), or -1."""
    low, high = 0, count - 1
    found = -1
    while low <= high:
        mid = (low + high) // 2
        if read(mid)[field] <= key:
            found = mid
            low = mid + 1
        else:
            high = mid - 1
    return found


def floor_entry(read: EntryReader, count: int, key: int) -> tuple[int, int] | None:
    """The last entry whose first field is <= ``key``, or None."""
    found = floor_index(read, count, key)
    return None if found < 0 else read(found)


def offset_index_is_sane(data: bytes | bytearray, log_size: int) -> bool:
    """Entries strictly increase and point inside the log file."""
    if len(data) % OFFSET_ENTRY.size:
        return False
    last_rel, last_pos = -1, -1
    for rel, pos in OFFSET_ENTRY.iter_unpack(data):
        if rel <= last_rel or pos <= last_pos or pos >= log_size or rel < 0:
            return False
        last_rel, last_pos = rel, pos
    return True


def time_index_is_sane(data: bytes | bytearray, max_relative_offset: int) -> bool:
    """Timestamps and offsets strictly increase and offsets stay inside the segment."""
    if len(data) % TIME_ENTRY.size:
        return False
    last_ts, last_rel = -(2**63), -1
    for ts, rel in TIME_ENTRY.iter_unpack(data):
        if ts <= last_ts or rel < last_rel or rel < 0 or rel > max_relative_offset:
            return False
        last_ts, last_rel = ts, rel
    return True
