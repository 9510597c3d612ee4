"""One log segment: a ``.log`` file of batches plus its ``.index`` and ``.timeindex``.

Files are named by the segment's base offset, zero-padded to 20 digits, as Kafka names them.
This module tracks a segment's size, offsets and timestamps and maintains its sparse indexes;
the policy of when to roll, recover or delete lives in the partition log (``log.py`` and the
``log_*.py`` modules it is built from).
"""

from __future__ import annotations

import os
from pathlib import Path

from headrace.record import BatchHeader
from headrace.storage.file_batches import FileBatchScanner, ScanOutcome, read_header
from headrace.storage.files import FileHandleCache
from headrace.storage.index import (
    OFFSET_ENTRY,
    TIME_ENTRY,
    EntryReader,
    file_reader,
    floor_entry,
    floor_index,
    memory_reader,
    offset_index_is_sane,
    time_index_is_sane,
)

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
NO_TIMESTAMP = -1


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


class Segment:
    """State of one segment. Only the active (last) segment holds index entries in memory."""

    __slots__ = (
        "_offset_entries",
        "_offset_written",
        "_time_entries",
        "_time_written",
        "base_offset",
        "bytes_since_index_entry",
        "files",
        "max_timestamp",
        "next_offset",
        "offset_of_max_timestamp",
        "prefix",
        "rolling_timestamp_ms",
        "size",
    )

    def __init__(self, directory: Path, base_offset: int, files: FileHandleCache) -> None:
        self.base_offset = base_offset
        self.files = files
        # One string instead of three Path objects: sealed segments should cost little memory.
        self.prefix = os.path.join(directory, segment_name(base_offset))
        self.size = 0
        self.next_offset = base_offset  # offset after the last batch
        self.max_timestamp = NO_TIMESTAMP
        self.offset_of_max_timestamp = base_offset
        # When the segment got its first batch (wall clock), for segment.ms; None while empty.
        self.rolling_timestamp_ms: int | None = None
        self.bytes_since_index_entry = 0
        # In-memory index entries (active segment only) and how many bytes are on disk.
        self._offset_entries: bytearray | None = None
        self._time_entries: bytearray | None = None
        self._offset_written = 0
        self._time_written = 0

    # -- files ---------------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return Path(self.prefix + LOG_SUFFIX)

    @property
    def index_path(self) -> Path:
        return Path(self.prefix + INDEX_SUFFIX)

    @property
    def time_index_path(self) -> Path:
        return Path(self.prefix + TIME_INDEX_SUFFIX)

    def log_fd(self) -> int:
        return self.files.get(self.prefix + LOG_SUFFIX, create=True)

    def create_files(self) -> None:
        for path in (self.log_path, self.index_path, self.time_index_path):
            self.files.get(path, create=True)
        self.activate_empty()

    def delete_files(self) -> None:
        for path in (self.log_path, self.index_path, self.time_index_path):
            self.files.forget(path)
            path.unlink(missing_ok=True)

    def forget_files(self) -> None:
        for path in (self.log_path, self.index_path, self.time_index_path):
            self.files.forget(path)

    @property
    def is_active(self) -> bool:
        return self._offset_entries is not None

    @property
    def offset_entries(self) -> bytearray:
        assert self._offset_entries is not None, "segment is not active"
        return self._offset_entries

    @property
    def time_entries(self) -> bytearray:
        assert self._time_entries is not None, "segment is not active"
        return self._time_entries

    # -- building the index while appending or scanning ------------------------------------------
    def activate_empty(self) -> None:
        self._offset_entries = bytearray()
        self._time_entries = bytearray()
        self._offset_written = 0
        self._time_written = 0
        self.bytes_since_index_entry = 0

    def track(
        self,
        base_offset: int,
        position: int,
        size: int,
        next_offset: int,
        max_timestamp: int,
        index_interval: int,
    ) -> None:
        """Account for a batch written at ``position`` (active segment only)."""
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
            self.offset_of_max_timestamp = base_offset
        if self.bytes_since_index_entry >= index_interval and (position > 0 or index_interval == 0):
            self.offset_entries.extend(OFFSET_ENTRY.pack(base_offset - self.base_offset, position))
            self._maybe_add_time_entry()
            self.bytes_since_index_entry = 0
        self.bytes_since_index_entry += size
        self.size = position + size
        self.next_offset = next_offset

    def _maybe_add_time_entry(self) -> None:
        entries = self.time_entries
        last_ts = None
        if entries:
            last_ts = TIME_ENTRY.unpack_from(entries, len(entries) - TIME_ENTRY.size)[0]
        if self.max_timestamp >= 0 and (last_ts is None or self.max_timestamp > last_ts):
            entries.extend(
                TIME_ENTRY.pack(self.max_timestamp, self.offset_of_max_timestamp - self.base_offset)
            )

    def rebuild(self, *, verify_crc: bool, index_interval: int) -> ScanOutcome:
        """Scan the whole log file, rebuilding the in-memory indexes; the segment becomes
        active. The caller truncates at ``outcome.valid_end`` if the scan stopped early."""
        fd = self.log_fd()
        file_size = os.fstat(fd).st_size
        self.activate_empty()
        self.size = 0
        self.next_offset = self.base_offset
        self.max_timestamp = NO_TIMESTAMP
        self.offset_of_max_timestamp = self.base_offset
        self.rolling_timestamp_ms = None
        scanner = FileBatchScanner(
            fd, file_size, verify_crc=verify_crc, expected_base=self.base_offset
        )
        for header in scanner:
            self.track(
                header.base_offset,
                header.position,
                header.size,
                header.next_offset,
                header.max_timestamp,
                index_interval,
            )
        self._offset_written = self._time_written = -1  # force a full rewrite of the files
        return scanner.outcome

    def load_active(self, *, index_interval: int) -> ScanOutcome | None:
        """Activate from the index files plus a CRC-checked scan of the tail after the last
        index entry. Returns None if the index files are missing or insane (rebuild needed)."""
        try:
            offset_data = self.index_path.read_bytes()
            time_data = self.time_index_path.read_bytes()
        except FileNotFoundError:
            return None
        fd = self.log_fd()
        file_size = os.fstat(fd).st_size
        if not offset_index_is_sane(offset_data, file_size):
            return None
        start_offset, start_position = self.base_offset, 0
        if offset_data:
            rel, start_position = OFFSET_ENTRY.unpack_from(offset_data, len(offset_data) - 8)
            start_offset = self.base_offset + rel
            header = read_header(fd, start_position)
            if header is None or header.base_offset != start_offset:
                return None
        self._offset_entries = bytearray(offset_data)
        self._time_entries = bytearray(time_data)
        self._offset_written = len(offset_data)
        self._time_written = len(time_data)
        if time_data and len(time_data) % TIME_ENTRY.size == 0:
            ts, rel = TIME_ENTRY.unpack_from(time_data, len(time_data) - TIME_ENTRY.size)
            self.max_timestamp, self.offset_of_max_timestamp = ts, self.base_offset + rel
        self.next_offset = start_offset
        self.size = start_position
        # Entries for the tail batches are re-added by track(); drop the last one first.
        if offset_data:
            del self._offset_entries[-OFFSET_ENTRY.size :]
        # So the batch at the dropped entry is indexed again (position 0 never is).
        self.bytes_since_index_entry = index_interval if offset_data else 0
        scanner = FileBatchScanner(
            fd, file_size, start=start_position, verify_crc=True, expected_base=start_offset
        )
        for header in scanner:
            self.track(
                header.base_offset,
                header.position,
                header.size,
                header.next_offset,
                header.max_timestamp,
                index_interval,
            )
        if not time_index_is_sane(self.time_entries, self.next_offset - self.base_offset):
            return None
        # Only what differs from the files needs writing later (normally nothing).
        if self.offset_entries[: len(offset_data)] != offset_data:
            self._offset_written = -1
        if self.time_entries[: len(time_data)] != time_data:
            self._time_written = -1
        return scanner.outcome

    def load_sealed(self, next_base: int) -> bool:
        """Cheap sanity check of a sealed segment's index files; False means rebuild."""
        fd = self.log_fd()
        self.size = os.fstat(fd).st_size
        self.next_offset = next_base
        try:
            index_size = self.index_path.stat().st_size
            time_size = self.time_index_path.stat().st_size
        except FileNotFoundError:
            return False
        if index_size % OFFSET_ENTRY.size or time_size % TIME_ENTRY.size:
            return False
        span = next_base - self.base_offset
        if index_size:
            rel, position = file_reader(self.files.get(self.index_path), OFFSET_ENTRY)(
                index_size // OFFSET_ENTRY.size - 1
            )
            if not (0 <= rel < span and 0 <= position < self.size):
                return False
        if time_size:
            ts, rel = file_reader(self.files.get(self.time_index_path), TIME_ENTRY)(
                time_size // TIME_ENTRY.size - 1
            )
            if not 0 <= rel < span:
                return False
            self.max_timestamp, self.offset_of_max_timestamp = ts, self.base_offset + rel
        return True

    # -- persisting ----------------------------------------------------------------------------
    def write_indexes(self, *, durable: bool) -> None:
        """Write in-memory index entries not yet on disk (active segment)."""
        if self._offset_entries is None or self._time_entries is None:
            return
        for path, entries, written in (
            (self.index_path, self._offset_entries, self._offset_written),
            (self.time_index_path, self._time_entries, self._time_written),
        ):
            fd = self.files.get(path, create=True)
            if written < 0 or written > len(entries):
                os.ftruncate(fd, 0)
                written = 0
            if written < len(entries):
                os.pwrite(fd, bytes(entries[written:]), written)
            if os.fstat(fd).st_size != len(entries):
                os.ftruncate(fd, len(entries))
            if durable:
                os.fsync(fd)
        self._offset_written = len(self._offset_entries)
        self._time_written = len(self._time_entries)

    def seal(self, *, durable: bool) -> None:
        """Finish the segment: final time index entry, indexes to disk, memory released."""
        if self._time_entries is not None:
            self._maybe_add_time_entry()
        self.write_indexes(durable=durable)
        if durable:
            os.fsync(self.log_fd())
        self._offset_entries = None
        self._time_entries = None

    def finish_index_entries(self) -> tuple[bytes, bytes]:
        """Seal the in-memory indexes without touching files: (offset index, time index)
        bytes, for a segment built elsewhere (the cleaner's output)."""
        self._maybe_add_time_entry()
        return bytes(self.offset_entries), bytes(self.time_entries)

    def fsync(self, *, with_indexes: bool) -> None:
        os.fsync(self.log_fd())
        if with_indexes:
            for path in (self.index_path, self.time_index_path):
                os.fsync(self.files.get(path, create=True))

    # -- lookups -------------------------------------------------------------------------------
    def _offset_index_reader(self) -> tuple[EntryReader, int]:
        if self._offset_entries is not None:
            count = len(self._offset_entries) // OFFSET_ENTRY.size
            return memory_reader(self._offset_entries, OFFSET_ENTRY), count
        try:
            fd = self.files.get(self.index_path)
        except FileNotFoundError:
            return memory_reader(b"", OFFSET_ENTRY), 0
        return file_reader(fd, OFFSET_ENTRY), os.fstat(fd).st_size // OFFSET_ENTRY.size

    def last_boundary_within(self, max_position: int, max_offset: int) -> tuple[int, int] | None:
        """(offset, position) of the last indexed batch start at or before both limits.

        Everything between an earlier batch start and this position is whole batches, so a
        read can take that span without reading each header.
        """
        read, count = self._offset_index_reader()
        by_position = floor_index(read, count, max_position, field=1)
        by_offset = floor_index(read, count, max_offset - self.base_offset, field=0)
        found = min(by_position, by_offset)
        if found < 0:
            return None
        rel, position = read(found)
        return self.base_offset + rel, position

    def index_floor(self, offset: int) -> tuple[int, int]:
        """(offset, position) of the last index entry at or before ``offset``; the segment
        start if none."""
        rel = offset - self.base_offset
        if self._offset_entries is not None:
            count = len(self._offset_entries) // OFFSET_ENTRY.size
            entry = floor_entry(memory_reader(self._offset_entries, OFFSET_ENTRY), count, rel)
        else:
            try:
                fd = self.files.get(self.index_path)
            except FileNotFoundError:
                return self.base_offset, 0
            count = os.fstat(fd).st_size // OFFSET_ENTRY.size
            entry = floor_entry(file_reader(fd, OFFSET_ENTRY), count, rel)
        if entry is None:
            return self.base_offset, 0
        return self.base_offset + entry[0], entry[1]

    def time_floor_offset(self, timestamp_ms: int) -> int:
        """The offset to start scanning from for the first batch with max timestamp >= target:
        the latest time index entry whose timestamp is below the target, else the base."""
        if self._time_entries is not None:
            count = len(self._time_entries) // TIME_ENTRY.size
            reader = memory_reader(self._time_entries, TIME_ENTRY)
            entry = floor_entry(reader, count, timestamp_ms - 1)
        else:
            try:
                fd = self.files.get(self.time_index_path)
            except FileNotFoundError:
                return self.base_offset
            count = os.fstat(fd).st_size // TIME_ENTRY.size
            entry = floor_entry(file_reader(fd, TIME_ENTRY), count, timestamp_ms - 1)
        return self.base_offset if entry is None else self.base_offset + entry[1]

    def truncate_after(self, header: BatchHeader | None, *, index_interval: int) -> int:
        """Cut the (active) segment so ``header``'s batch and everything after it are gone;
        None keeps everything. Returns the bytes removed."""
        if header is None:
            return 0
        position, new_next = header.position, header.base_offset
        removed = self.size - position
        os.ftruncate(self.log_fd(), position)
        rel_limit = new_next - self.base_offset
        offsets = self.offset_entries
        keep = 0
        for i in range(len(offsets) // OFFSET_ENTRY.size):
            rel, pos = OFFSET_ENTRY.unpack_from(offsets, i * OFFSET_ENTRY.size)
            if rel >= rel_limit or pos >= position:
                break
            keep = i + 1
        del offsets[keep * OFFSET_ENTRY.size :]
        times = self.time_entries
        keep = 0
        for i in range(len(times) // TIME_ENTRY.size):
            _, rel = TIME_ENTRY.unpack_from(times, i * TIME_ENTRY.size)
            if rel >= rel_limit:
                break
            keep = i + 1
        del times[keep * TIME_ENTRY.size :]
        self._offset_written = self._time_written = -1
        # Recompute the tail statistics from the last kept index entry.
        start_offset, start_position = self.base_offset, 0
        if offsets:
            rel, start_position = OFFSET_ENTRY.unpack_from(offsets, len(offsets) - 8)
            start_offset = self.base_offset + rel
            del offsets[-OFFSET_ENTRY.size :]
        if times:
            ts, rel = TIME_ENTRY.unpack_from(times, len(times) - TIME_ENTRY.size)
            self.max_timestamp, self.offset_of_max_timestamp = ts, self.base_offset + rel
        else:
            self.max_timestamp, self.offset_of_max_timestamp = NO_TIMESTAMP, self.base_offset
        self.size, self.next_offset = start_position, start_offset
        self.bytes_since_index_entry = index_interval
        if start_position == 0:
            self.rolling_timestamp_ms = None
            self.bytes_since_index_entry = 0
        scanner = FileBatchScanner(
            self.log_fd(),
            position,
            start=start_position,
            verify_crc=False,
            expected_base=start_offset,
        )
        for batch in scanner:
            self.track(
                batch.base_offset,
                batch.position,
                batch.size,
                batch.next_offset,
                batch.max_timestamp,
                index_interval,
            )
        return removed
