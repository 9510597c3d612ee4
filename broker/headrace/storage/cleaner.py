"""Log compaction (``cleanup.policy`` containing ``compact``): Kafka's log cleaner, per partition.

A cleaning pass rewrites the sealed segments that are old enough (``min.compaction.lag.ms``)
keeping, per key, only the record with the highest offset; offsets are preserved, so a
compacted segment has gaps. The pass happens in three steps so the expensive middle one can
run off the broker's event loop:

1. ``PartitionLog.prepare_cleaning`` (owner thread) decides whether a pass is due (dirty ratio,
   ``max.compaction.lag.ms``, tombstones past ``delete.retention.ms``) and captures what the
   pass needs: the source segments (paths and sizes), the producers' last offsets and a copy
   of the cleaner checkpoint.
2. ``CleaningTask.run`` (any thread; touches no shared object, opens the sources itself)
   builds the key -> latest offset map from the dirty records and writes the cleaned segments
   to ``<base>.log.cleaned`` (+ indexes), merging neighbours while they fit in
   ``segment.bytes``.
3. ``CleaningTask.finish`` (owner thread) swaps each cleaned segment in, crash-safely:
   ``.cleaned`` -> ``.swap`` (the commit point), delete the replaced segments, ``.swap`` -> final.
   If the log changed meanwhile (truncation, retention, deletion) the work is discarded.

The planning and retention rules below are pure functions, tested without files.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from headrace.record import (
    BatchHeader,
    InflationLimitError,
    UnsupportedCompressionError,
    rebuild_batch,
    record_spans,
)
from headrace.record.layout import INT32_MAX
from headrace.storage.config import LogConfig
from headrace.storage.errors import StorageError
from headrace.storage.file_batches import FileBatchScanner
from headrace.storage.files import FileHandleCache, write_atomic
from headrace.storage.segment import (
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    Segment,
    segment_name,
)

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "cleaner-checkpoint.json"
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
SEGMENT_SUFFIXES = (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX)
DEFAULT_MAX_MAP_KEYS = 500_000  # bounds the offset map's memory (~100 bytes per small key)
_MAX_CLEANED_RANGES = 64
_WRITE_CHUNK = 1 << 20


# -- the persisted cleaner state ---------------------------------------------------------------
@dataclass
class CleanerCheckpoint:
    """Per-partition cleaner state, in ``cleaner-checkpoint.json``.

    ``first_dirty``: offsets below it have been through a cleaning pass. ``cleaned`` lists
    ``(end, ms)``: the offsets below ``end`` (and at or above the previous entry's end) were
    first cleaned at wall-clock ``ms`` — a tombstone becomes removable ``delete.retention.ms``
    after that. ``tombstone_expiry_ms``: when the earliest retained tombstone becomes
    removable (a pass is due then even without new dirty data).
    """

    first_dirty: int = 0
    cleaned: list[tuple[int, int]] = field(default_factory=list)
    tombstone_expiry_ms: int | None = None

    def first_cleaned_ms(self) -> Callable[[int], int | None]:
        """A lookup offset -> first cleaning time (None: never cleaned)."""
        ends = [end for end, _ in self.cleaned]
        times = [ms for _, ms in self.cleaned]

        def lookup(offset: int) -> int | None:
            index = bisect.bisect_right(ends, offset)
            return times[index] if index < len(times) else None

        return lookup

    def record_pass(self, cleaned_end: int, now_ms: int, tombstone_expiry_ms: int | None) -> None:
        if cleaned_end > self.first_dirty:
            self.cleaned.append((cleaned_end, now_ms))
            self.first_dirty = cleaned_end
        self.tombstone_expiry_ms = tombstone_expiry_ms
        while len(self.cleaned) > _MAX_CLEANED_RANGES:
            # Merge the two oldest ranges under the later time: tombstones only live longer.
            (_, first_ms), (second_end, second_ms) = self.cleaned[0], self.cleaned[1]
            self.cleaned[:2] = [(second_end, max(first_ms, second_ms))]

    def truncate(self, offset: int) -> None:
        """The log was cut at ``offset``: what is appended from there on is dirty."""
        self.first_dirty = min(self.first_dirty, offset)
        kept = [(end, ms) for end, ms in self.cleaned if end <= offset]
        cut = next(((end, ms) for end, ms in self.cleaned if end > offset), None)
        if cut is not None and (not kept or kept[-1][0] < offset):
            kept.append((offset, cut[1]))
        self.cleaned = kept

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "version": 1,
                "first_dirty": self.first_dirty,
                "cleaned": self.cleaned,
                "tombstone_expiry_ms": self.tombstone_expiry_ms,
            }
        ).encode()

    @classmethod
    def load(cls, directory: Path) -> CleanerCheckpoint:
        """The saved checkpoint; a missing or unreadable one means "nothing cleaned yet"
        (safe: the next pass re-cleans and keeps tombstones a full retention longer)."""
        try:
            data = json.loads((directory / CHECKPOINT_NAME).read_bytes())
            expiry = data["tombstone_expiry_ms"]
            return cls(
                int(data["first_dirty"]),
                [(int(end), int(ms)) for end, ms in data["cleaned"]],
                None if expiry is None else int(expiry),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return cls()

    def save(self, directory: Path) -> None:
        write_atomic(directory / CHECKPOINT_NAME, self.to_bytes())


# -- pure planning -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SegmentStats:
    """What planning needs to know about one sealed segment."""

    base_offset: int
    next_offset: int
    size: int
    newest_timestamp_ms: int


def cleanable_count(segments: Sequence[SegmentStats], now_ms: int, min_lag_ms: int) -> int:
    """How many of the oldest sealed segments may be cleaned: those whose newest record is at
    least ``min.compaction.lag.ms`` old (segment granularity, as in Kafka)."""
    count = 0
    for segment in segments:
        if segment.newest_timestamp_ms > now_ms - min_lag_ms:
            break
        count += 1
    return count


def dirty_bytes(segments: Sequence[SegmentStats], first_dirty: int) -> int:
    return sum(s.size for s in segments if s.next_offset > first_dirty)


def cleaning_due(
    segments: Sequence[SegmentStats],
    first_dirty: int,
    config: LogConfig,
    now_ms: int,
    *,
    first_dirty_timestamp_ms: int | None,
    tombstone_expiry_ms: int | None,
) -> bool:
    """Whether the cleanable ``segments`` deserve a pass now (Kafka's triggers)."""
    total = sum(s.size for s in segments)
    if not total:
        return False
    if tombstone_expiry_ms is not None and tombstone_expiry_ms <= now_ms:
        return True
    dirty = dirty_bytes(segments, first_dirty)
    if not dirty:
        return False
    if dirty / total >= config.min_cleanable_dirty_ratio:
        return True
    lag = config.max_compaction_lag_ms
    return (
        lag is not None
        and first_dirty_timestamp_ms is not None
        and now_ms - first_dirty_timestamp_ms >= lag
    )


def group_for_rewrite(segments: Sequence[SegmentStats], max_bytes: int) -> list[list[int]]:
    """Consecutive segments merged into one output while their sizes before cleaning fit in
    ``max_bytes`` (so the output surely does) and relative offsets fit an int32 index entry.
    Returns lists of indexes into ``segments``."""
    groups: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index, segment in enumerate(segments):
        if current:
            base = segments[current[0]].base_offset
            if size + segment.size > max_bytes or segment.next_offset - 1 - base > INT32_MAX:
                groups.append(current)
                current, size = [], 0
        current.append(index)
        size += segment.size
    if current:
        groups.append(current)
    return groups


def record_survives(
    key: bytes | None,
    offset: int,
    is_tombstone: bool,
    latest: Mapping[bytes, int],
    tombstone_removable: bool,
) -> bool:
    """Kafka's rule: keyless records go, a key's older records go, and a tombstone goes once
    it has been readable in the cleaned log for ``delete.retention.ms``."""
    if key is None:
        return False
    newest = latest.get(key)
    if newest is not None and newest > offset:
        return False
    return not (is_tombstone and tombstone_removable)


# -- the task ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceSegment:
    """A sealed segment to clean. The worker opens it by path, one at a time (a pass over
    thousands of segments must not hold thousands of descriptors); if the log changed it
    meanwhile, the generation check in ``finish`` discards whatever was read."""

    path: Path
    base_offset: int
    next_offset: int
    size: int
    newest_timestamp_ms: int


@dataclass(frozen=True)
class CleanedGroup:
    """One output segment, written as ``<base>.*.cleaned``, replacing ``source_bases``."""

    base_offset: int
    next_offset: int
    source_bases: tuple[int, ...]
    size: int


@dataclass
class CleaningStats:
    bytes_before: int = 0
    bytes_after: int = 0
    batches_removed: int = 0
    records_removed: int = 0
    tombstones_removed: int = 0


def cleaned_name(directory: Path, base_offset: int, suffix: str) -> Path:
    return directory / f"{segment_name(base_offset)}{suffix}{CLEANED_SUFFIX}"


def swap_name(directory: Path, base_offset: int, suffix: str) -> Path:
    return directory / f"{segment_name(base_offset)}{suffix}{SWAP_SUFFIX}"


_NO_FILES = FileHandleCache(2)  # the output tracker never opens files through it


class CleaningTask:
    """One prepared cleaning pass over a partition; see the module docstring."""

    def __init__(
        self,
        *,
        topic: str,
        partition: int,
        directory: Path,
        config: LogConfig,
        now_ms: int,
        first_dirty: int,
        sources: list[SourceSegment],
        producer_last_offsets: dict[int, int],
        checkpoint: CleanerCheckpoint,
        generation: int,
        max_map_keys: int,
        on_finish: Callable[[CleaningTask], bool],
        aborted: tuple[tuple[int, int, int], ...] = (),
    ) -> None:
        self.topic = topic
        #: (producer id, first offset, marker offset) of aborted transactions: their records
        #: never count as a key's newest value, and are kept whole (read_committed consumers
        #: skip them through the aborted-transaction index, which outlives them).
        self.aborted = aborted
        self._aborted_by_pid: dict[int, list[tuple[int, int]]] = {}
        for pid, first, last in aborted:
            self._aborted_by_pid.setdefault(pid, []).append((first, last))
        self.partition = partition
        self.directory = directory
        self.config = config
        self.now_ms = now_ms
        self.first_dirty = first_dirty
        self.sources = sources
        self.producer_last_offsets = producer_last_offsets
        self.checkpoint = checkpoint
        self.generation = generation
        self.max_map_keys = max_map_keys
        self._on_finish = on_finish
        self.outputs: list[CleanedGroup] = []
        self.cleaned_end = first_dirty  # offsets below it are clean once the task commits
        self.tombstone_expiry_ms: int | None = None
        self.stats = CleaningStats()
        self.error: BaseException | None = None
        self.ran = False
        self.finished = False
        self._running = False
        self._lock = threading.Lock()  # run() on a worker thread vs discard() on the owner

    def __repr__(self) -> str:
        return (
            f"CleaningTask({self.topic}-{self.partition}, {len(self.sources)} segments, "
            f"first dirty {self.first_dirty})"
        )

    # -- step 2: any thread --------------------------------------------------------------------
    def run(self) -> None:
        """Write the cleaned segments; never raises (a failure is kept in ``error``)."""
        with self._lock:
            if self.finished or self.ran:
                return  # discarded before it started
            self._running = True
        try:
            latest, included = self._build_offset_map()
            sources = self.sources[:included]
            if sources:
                self.cleaned_end = max(self.first_dirty, sources[-1].next_offset)
            stats = [
                SegmentStats(s.base_offset, s.next_offset, s.size, s.newest_timestamp_ms)
                for s in sources
            ]
            writer = _GroupWriter(self, latest)
            for group in group_for_rewrite(stats, self.config.segment_bytes):
                self.outputs.append(writer.write([sources[i] for i in group]))
            self.tombstone_expiry_ms = writer.tombstone_expiry_ms
        except BaseException as error:  # reported to the owner thread by finish()
            self.error = error
            self.remove_outputs()
        finally:
            with self._lock:
                self._running = False
                self.ran = True
                abandoned = self.finished  # discard() was called while we ran
            if abandoned:
                self.remove_outputs()

    def _build_offset_map(self) -> tuple[dict[bytes, int], int]:
        """key -> offset of its newest record among the dirty records, and how many sources
        the pass covers (it stops early once the map holds ``max_map_keys`` keys)."""
        latest: dict[bytes, int] = {}
        dirty_seen = False
        for index, source in enumerate(self.sources):
            if source.next_offset <= self.first_dirty:
                continue
            if dirty_seen and len(latest) >= self.max_map_keys:
                return latest, index
            dirty_seen = True
            for header, batch in _batches(source):
                if header.next_offset <= self.first_dirty or header.is_control:
                    continue
                if self.is_aborted(header):
                    continue
                try:
                    _, spans = record_spans(batch, header)
                except (UnsupportedCompressionError, InflationLimitError):
                    continue  # kept whole by the rewrite
                for span in spans:
                    offset = header.base_offset + span.offset_delta
                    if span.key is not None and offset >= self.first_dirty:
                        latest[span.key] = offset
        return latest, len(self.sources)

    def is_aborted(self, header: BatchHeader) -> bool:
        """Whether a batch belongs to an aborted transaction."""
        if header.producer_id < 0 or not header.attributes & 0x10:
            return False
        ranges = self._aborted_by_pid.get(header.producer_id, ())
        return any(first <= header.base_offset <= last for first, last in ranges)

    def remove_outputs(self) -> None:
        """Delete whatever this task wrote (after a failure or when discarded)."""
        for group in self.outputs:
            for suffix in SEGMENT_SUFFIXES:
                cleaned_name(self.directory, group.base_offset, suffix).unlink(missing_ok=True)
        for source in self.sources:  # a group that failed half-way is not in outputs yet
            for suffix in SEGMENT_SUFFIXES:
                cleaned_name(self.directory, source.base_offset, suffix).unlink(missing_ok=True)
        self.outputs = []

    # -- step 3: owner thread ------------------------------------------------------------------
    def finish(self) -> bool:
        """Swap the cleaned segments in (call on the log's owner thread after ``run``).

        Returns True if the pass was committed, False if it failed or was discarded.
        """
        if self.finished:
            return False
        self.finished = True
        if not self.ran:
            return False
        return self._on_finish(self)

    def discard(self) -> None:
        """Give the task up; if ``run()`` is still going, it cleans up when it ends."""
        with self._lock:
            self.finished = True
            if self._running:
                return
        self.remove_outputs()


def _batches(source: SourceSegment) -> Iterator[tuple[BatchHeader, bytes]]:
    """Every batch of a source segment, CRC-verified, with its bytes (batch-relative)."""
    fd = os.open(source.path, os.O_RDONLY)
    try:
        scanner = FileBatchScanner(
            fd, source.size, verify_crc=True, expected_base=source.base_offset
        )
        for header in scanner:
            data = os.pread(fd, header.size, header.position)
            if len(data) != header.size:
                raise StorageError(f"short read cleaning segment {source.base_offset}")
            yield header._replace(position=0), data
    finally:
        os.close(fd)
    if scanner.outcome.problem:
        raise StorageError(
            f"cannot clean segment {segment_name(source.base_offset)}: {scanner.outcome.problem}"
        )


class _GroupWriter:
    """Writes output segments, applying the retention rules batch by batch in log order."""

    def __init__(self, task: CleaningTask, latest: dict[bytes, int]) -> None:
        self.task = task
        self.latest = latest
        self.first_cleaned_ms = task.checkpoint.first_cleaned_ms()
        self.retention_ms = task.config.delete_retention_ms
        # A batch we cannot decode may hold older values of any key: once one is seen, later
        # tombstones stay, or removing them could bring those values back.
        self.opaque_seen = False
        self.tombstone_expiry_ms: int | None = None

    def write(self, group: list[SourceSegment]) -> CleanedGroup:
        task = self.task
        base = group[0].base_offset
        tracker = Segment(task.directory, base, _NO_FILES)
        tracker.activate_empty()
        interval = task.config.index_interval_bytes
        log_path = cleaned_name(task.directory, base, LOG_SUFFIX)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        position = 0
        try:
            pending: list[bytes] = []
            pending_bytes = 0
            for header, batch, is_last in _with_last(group):
                task.stats.bytes_before += len(batch)
                out = self._filter(header, batch, is_last)
                if out is None:
                    task.stats.batches_removed += 1
                    continue
                tracker.track(
                    header.base_offset,
                    position,
                    len(out),
                    header.next_offset,
                    header.max_timestamp,
                    interval,
                )
                pending.append(out)
                pending_bytes += len(out)
                position += len(out)
                if pending_bytes >= _WRITE_CHUNK:
                    _write_all(fd, b"".join(pending))
                    pending, pending_bytes = [], 0
            _write_all(fd, b"".join(pending))
            os.fsync(fd)
        finally:
            os.close(fd)
        task.stats.bytes_after += position
        offset_entries, time_entries = tracker.finish_index_entries()
        for suffix, data in ((INDEX_SUFFIX, offset_entries), (TIME_INDEX_SUFFIX, time_entries)):
            index_fd = os.open(
                cleaned_name(task.directory, base, suffix),
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                0o644,
            )
            try:
                _write_all(index_fd, data)
                os.fsync(index_fd)
            finally:
                os.close(index_fd)
        return CleanedGroup(
            base, tracker.next_offset, tuple(s.base_offset for s in group), position
        )

    def _filter(self, header: BatchHeader, batch: bytes, is_last: bool) -> bytes | None:
        """The batch as it survives cleaning, or None if it goes entirely."""
        if header.is_control or self.task.is_aborted(header):
            return batch  # markers and aborted records stay (see CleaningTask.aborted)
        try:
            payload, spans = record_spans(batch, header)
        except (UnsupportedCompressionError, InflationLimitError):
            # A codec we do not open, or records inflating past the bound: kept whole.
            self.opaque_seen = True
            return batch
        task = self.task
        kept = []
        for span in spans:
            offset = header.base_offset + span.offset_delta
            cleaned_ms = self.first_cleaned_ms(offset)
            removable = (
                not self.opaque_seen
                and cleaned_ms is not None
                and cleaned_ms + self.retention_ms <= task.now_ms
            )
            if record_survives(span.key, offset, span.is_tombstone, self.latest, removable):
                kept.append(span)
                if span.is_tombstone and not self.opaque_seen:
                    first_ms = task.now_ms if cleaned_ms is None else cleaned_ms
                    expiry = first_ms + self.retention_ms
                    if self.tombstone_expiry_ms is None or expiry < self.tombstone_expiry_ms:
                        self.tombstone_expiry_ms = expiry
            elif span.is_tombstone:
                task.stats.tombstones_removed += 1
        task.stats.records_removed += len(spans) - len(kept)
        # Kept even when empty: the last batch of an output segment (its end offset must meet
        # the next segment's base) and a producer's last batch (its idempotence state).
        producer_last = header.producer_id >= 0 and (
            task.producer_last_offsets.get(header.producer_id) == header.last_offset
        )
        if not kept and not is_last and not producer_last:
            return None
        return rebuild_batch(batch, header, payload, kept)


def _with_last(group: list[SourceSegment]) -> Iterator[tuple[BatchHeader, bytes, bool]]:
    """The batches of all segments of a group, flagging the very last one."""
    previous: tuple[BatchHeader, bytes] | None = None
    for source in group:
        for item in _batches(source):
            if previous is not None:
                yield previous[0], previous[1], False
            previous = item
    if previous is not None:
        yield previous[0], previous[1], True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
