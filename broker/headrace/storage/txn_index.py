"""A partition's side of transactions (KIP-98): control markers and aborted ranges.

A transaction coordinator ends a transaction by writing a control batch (a COMMIT or ABORT
marker) to every partition the transaction wrote. The partition log keeps, per producer, the
first offset of its ongoing transaction (in the producer state); the smallest of those is
the first unstable offset, which bounds the Last Stable Offset that ``read_committed``
consumers read up to. An ABORT marker turns the producer's range [first offset, marker offset]
into an :class:`AbortedTxn`, kept in :class:`TxnIndex` and returned by Fetch as
``aborted_transactions`` so consumers drop those records.

The index lives in memory (sorted by marker offset) and in ``<segment base>.txnindex`` files
in Kafka's entry format (version int16, producer id int64, first offset int64, last offset
int64, last stable offset int64 — 34 bytes), one file per segment the marker landed in. On
open the files are read; entries at or after the point where the producer state replays the
log are dropped and rebuilt by that replay, so a crash cannot leave a stale or missing range.
"""

from __future__ import annotations

import bisect
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from headrace import record
from headrace.record.layout import BatchHeader
from headrace.storage.files import write_atomic

TXN_INDEX_SUFFIX = ".txnindex"
_ENTRY = struct.Struct(">hqqqq")
_CONTROL_KEY = struct.Struct(">hh")  # version, type
_CONTROL_VALUE = struct.Struct(">hi")  # version, coordinator epoch
CONTROL_ABORT = 0
CONTROL_COMMIT = 1
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20


def is_transactional(header: BatchHeader) -> bool:
    return bool(header.attributes & ATTR_TRANSACTIONAL)


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    producer_id: int
    first_offset: int
    last_offset: int  # the ABORT marker's offset
    last_stable_offset: int


def control_batch(
    producer_id: int, producer_epoch: int, *, commit: bool, coordinator_epoch: int,
    timestamp_ms: int,
) -> bytes:
    """One transaction marker: a control batch holding one control record (Kafka's
    ``EndTransactionMarker``: key = version 0 + type, value = version 0 + coordinator epoch)."""
    key = _CONTROL_KEY.pack(0, CONTROL_COMMIT if commit else CONTROL_ABORT)
    value = _CONTROL_VALUE.pack(0, coordinator_epoch)
    plain = record.build_batch([(timestamp_ms, key, value, ())])
    header = record.parse_header(plain)
    return record.pack_batch(
        plain[61:], 1, 0, header.base_timestamp, header.max_timestamp,
        attributes=ATTR_TRANSACTIONAL | ATTR_CONTROL,
        producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=-1,
    )


def parse_marker(batch: bytes | memoryview, header: BatchHeader) -> tuple[bool, int] | None:
    """(COMMIT?, coordinator epoch) of a transaction marker; None for a control batch that is
    neither COMMIT nor ABORT (an unknown control type, which Kafka also ignores)."""
    try:
        for entry in record.batch_records(batch, header):
            key, value = entry.key, entry.value
            if key is None or len(key) < _CONTROL_KEY.size:
                return None
            _version, kind = _CONTROL_KEY.unpack_from(key)
            epoch = -1
            if value is not None and len(value) >= _CONTROL_VALUE.size:
                epoch = _CONTROL_VALUE.unpack_from(value)[1]
            if kind in (CONTROL_COMMIT, CONTROL_ABORT):
                return kind == CONTROL_COMMIT, epoch
            return None
    except record.RecordError:
        return None
    return None


class TxnIndex:
    """The aborted transactions of one partition, in memory and in ``.txnindex`` files."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self.entries: list[AbortedTxn] = []  # sorted by last_offset
        self._lasts: list[int] = []
        self._unsynced: set[Path] = set()  # files appended to since the last sync()

    def _path(self, segment_base: int) -> Path:
        return self._directory / f"{segment_base:020d}{TXN_INDEX_SUFFIX}"

    def _files(self) -> list[tuple[int, Path]]:
        found = []
        for path in self._directory.glob("*" + TXN_INDEX_SUFFIX):
            stem = path.name[: -len(TXN_INDEX_SUFFIX)]
            if stem.isdigit():
                found.append((int(stem), path))
        return sorted(found)

    def load(self, replay_from: int) -> None:
        """Read every file, keeping the entries whose marker is before ``replay_from`` (the
        producer state's replay re-adds the rest); files are cut to what was kept."""
        kept: list[AbortedTxn] = []
        for _base, path in self._files():
            data = path.read_bytes()
            entries = []
            usable = len(data) - len(data) % _ENTRY.size
            for position in range(0, usable, _ENTRY.size):
                _v, pid, first, last, lso = _ENTRY.unpack_from(data, position)
                if last < replay_from:
                    entries.append(AbortedTxn(pid, first, last, lso))
            if len(entries) * _ENTRY.size != len(data):
                self._rewrite(path, entries)
            kept.extend(entries)
        kept.sort(key=lambda entry: entry.last_offset)
        self.entries = kept
        self._lasts = [entry.last_offset for entry in kept]

    def add(self, entry: AbortedTxn, segment_base: int) -> None:
        """Record an aborted range whose marker went into the segment at ``segment_base``."""
        if self._lasts and entry.last_offset <= self._lasts[-1]:
            return  # already known (a replay over a range the files kept)
        self.entries.append(entry)
        self._lasts.append(entry.last_offset)
        path = self._path(segment_base)
        with open(path, "ab") as file:
            file.write(_ENTRY.pack(0, entry.producer_id, entry.first_offset,
                                   entry.last_offset, entry.last_stable_offset))
        self._unsynced.add(path)

    def sync(self) -> None:
        """fsync the files appended to, with the log data they describe (the log's flush):
        a range the replay would not rebuild must not be lost by a power cut."""
        for path in self._unsynced:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # rewritten or dropped since
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._unsynced.clear()

    def collect(self, start: int, upper: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of the aborted ranges that overlap [start, upper)."""
        index = bisect.bisect_left(self._lasts, start)
        return [
            (entry.producer_id, entry.first_offset)
            for entry in self.entries[index:]
            if entry.first_offset < upper
        ]

    def truncate_from(self, offset: int) -> None:
        """Forget ranges whose marker is at or after ``offset`` (the log was cut there)."""
        index = bisect.bisect_left(self._lasts, offset)
        if index == len(self.entries):
            return
        del self.entries[index:]
        del self._lasts[index:]
        for _base, path in self._files():
            self._rewrite_filtered(path, lambda last: last < offset)

    def drop_before(self, log_start: int) -> None:
        """Forget ranges that ended before the log start (their records are gone)."""
        index = bisect.bisect_left(self._lasts, log_start)
        if index:
            del self.entries[:index]
            del self._lasts[:index]
        for _base, path in self._files():
            self._rewrite_filtered(path, lambda last: last >= log_start)

    def clear(self) -> None:
        self.entries.clear()
        self._lasts.clear()
        for _base, path in self._files():
            path.unlink(missing_ok=True)

    def _rewrite_filtered(self, path: Path, keep: Callable[[int], bool]) -> None:
        data = path.read_bytes()
        entries = []
        for position in range(0, len(data) - len(data) % _ENTRY.size, _ENTRY.size):
            _v, pid, first, last, lso = _ENTRY.unpack_from(data, position)
            if keep(last):
                entries.append(AbortedTxn(pid, first, last, lso))
        if len(entries) * _ENTRY.size != len(data):
            self._rewrite(path, entries)

    def _rewrite(self, path: Path, entries: list[AbortedTxn]) -> None:
        if not entries:
            path.unlink(missing_ok=True)
            return
        write_atomic(path, b"".join(
            _ENTRY.pack(0, e.producer_id, e.first_offset, e.last_offset, e.last_stable_offset)
            for e in entries
        ), durable=True)
