"""PartitionLog: one topic-partition as a directory of segments (Kafka's ``Log``/``UnifiedLog``).

Appends validate every batch header and CRC, assign offsets by rewriting the 17 bytes in front
of the CRC-covered range, and write the batches with one ``pwritev`` (no record is ever decoded
or copied). Reads return file regions for ``sendfile``. Recovery on open verifies by CRC every
segment after the last durable recovery point (or nothing after a clean shutdown), truncates
a torn or corrupt tail and rebuilds damaged indexes.

Not thread-safe: one caller thread (the broker's event loop) at a time.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from headrace.record.layout import (
    HEADER_SIZE,
    INT32_MAX,
    LOG_OVERHEAD,
    MAGIC,
    PREFIX_SIZE,
    BatchHeader,
    log_append_time_header,
    rewritten_prefix,
)
from headrace.storage.cleaner import (
    CLEANED_SUFFIX,
    DEFAULT_MAX_MAP_KEYS,
    SWAP_SUFFIX,
    CleanerCheckpoint,
    CleaningTask,
    SegmentStats,
    SourceSegment,
    cleanable_count,
    cleaning_due,
    swap_name,
)
from headrace.storage.config import LogConfig
from headrace.storage.epoch_cache import CHECKPOINT_NAME, LeaderEpochCache
from headrace.storage.errors import (
    BatchTooLargeError,
    DuplicateSequenceError,
    InvalidBatchError,
    OffsetOutOfRangeError,
    StorageError,
    UnknownPartitionError,
)
from headrace.storage.file_batches import FileBatchScanner, ScanOutcome, read_header
from headrace.storage.files import TMP_SUFFIX, FileHandleCache, fsync_dir, write_atomic
from headrace.storage.producer_state import (
    DEFAULT_PRODUCER_ID_EXPIRATION_MS,
    ProducerEntry,
    ProducerStateManager,
    list_snapshots,
    replayed_write_time,
)
from headrace.storage.results import AppendResult, FileRegion, LogRead, RecoveryEvent
from headrace.storage.segment import (
    INDEX_SUFFIX,
    LOG_SUFFIX,
    NO_TIMESTAMP,
    TIME_INDEX_SUFFIX,
    Segment,
)
from headrace.storage.segment import segment_name as segment_name_of
from headrace.storage.validation import require_keys, validate_batches

log = logging.getLogger(__name__)

STATE_NAME = "partition-state.json"
_IOV_MAX = 1024
_TRUSTED = 2**63 - 1  # recovery point meaning "clean shutdown: verify nothing"
LATEST_TIMESTAMP = -1  # ListOffsets special timestamps
EARLIEST_TIMESTAMP = -2


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class PartitionLog:
    """An append-only log of RecordBatch v2 batches for one topic-partition."""

    def __init__(
        self,
        directory: Path,
        topic: str,
        partition: int,
        config: LogConfig,
        *,
        files: FileHandleCache | None = None,
        clean_shutdown: bool = False,
        verify_all: bool = False,
        clock_ms: Callable[[], int] = wall_clock_ms,
        on_recovery: Callable[[RecoveryEvent], None] | None = None,
        producer_id_expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS,
    ) -> None:
        self.directory = directory
        self._topic = topic
        self._partition = partition
        self._config = config
        self.files = files if files is not None else FileHandleCache(64)
        self._clock_ms = clock_ms
        self._on_recovery = on_recovery
        self.segments: list[Segment] = []
        self._bases: list[int] = []
        self._log_start = 0
        self._recovery_point = 0
        self._unflushed_records = 0
        self._unflushed_sealed: list[Segment] = []
        self._dir_dirty = False
        self._last_flush_ms = clock_ms()
        self.producer_state = ProducerStateManager(producer_id_expiration_ms)
        self.epoch_cache = LeaderEpochCache(directory / CHECKPOINT_NAME)
        self.segments_scanned = 0  # full CRC scans done while opening (for the recovery report)
        self._closed = False
        # Something changed since the files were last made durable (close() skips idle logs).
        self._dirty = False
        # Bumped whenever sealed segments are removed or cut: a cleaning prepared before that
        # must not be swapped in.
        self._generation = 0
        self._cleaner_checkpoint = CleanerCheckpoint()
        # Tests inject crashes between the steps of a cleaning swap through this hook.
        self.cleaner_fault: Callable[[str], None] | None = None
        self._open(clean_shutdown=clean_shutdown, verify_all=verify_all)

    # -- properties ------------------------------------------------------------------------------
    @property
    def topic(self) -> str:
        return self._topic

    @property
    def partition(self) -> int:
        return self._partition

    @property
    def config(self) -> LogConfig:
        return self._config

    def update_config(self, config: LogConfig) -> None:
        self._config = config

    @property
    def log_start_offset(self) -> int:
        return self._log_start

    @property
    def log_end_offset(self) -> int:
        return self.segments[-1].next_offset

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    @property
    def segment_count(self) -> int:
        return len(self.segments)

    @property
    def latest_leader_epoch(self) -> int:
        return self.epoch_cache.latest_epoch

    @property
    def recovery_point(self) -> int:
        return self._recovery_point

    @property
    def _active(self) -> Segment:
        return self.segments[-1]

    @property
    def _durable_policy(self) -> bool:
        return self._config.flush_messages is not None or self._config.flush_ms is not None

    def __repr__(self) -> str:
        return (
            f"PartitionLog({self._topic}-{self._partition}, start={self._log_start}, "
            f"end={self.log_end_offset}, segments={len(self.segments)})"
        )

    def _check_open(self) -> None:
        if self._closed:
            raise UnknownPartitionError(
                f"{self._topic}-{self._partition} is closed (topic deleted or broker stopping)"
            )

    # -- appends ---------------------------------------------------------------------------------
    def append(self, batches: bytes | memoryview, *, leader_epoch: int) -> AppendResult:
        """Leader append: validate, assign offsets, write; all batches or none."""
        self._check_open()
        view = memoryview(batches).cast("B")
        config = self._config
        headers = validate_batches(view, max_batch_bytes=config.max_message_bytes, leader=True)
        if config.compacts:
            require_keys(view, headers, f"{self._topic}-{self._partition}")
        pending: dict[int, ProducerEntry] = {}
        offsets: list[int] = []
        next_offset = self.log_end_offset
        state = self.producer_state
        records = 0
        now = self._clock_ms()
        log_append_time = config.message_timestamp_type == "LogAppendTime"
        for header in headers:
            if header.batch_length + LOG_OVERHEAD > config.segment_bytes:
                raise BatchTooLargeError(
                    f"batch of {header.size} bytes exceeds segment.bytes {config.segment_bytes}"
                )
            records += header.record_count
            if header.producer_id >= 0 and not header.is_control:
                original = state.check(header, pending)
                if original is not None:
                    if len(headers) == 1:
                        return AppendResult(
                            original.first_offset,
                            original.last_offset,
                            -1,
                            self._log_start,
                            duplicate=True,
                        )
                    raise DuplicateSequenceError(
                        f"producer {header.producer_id} resent sequence {header.base_sequence} "
                        "inside a multi-batch append"
                    )
                current = state.producers.get(header.producer_id)
                state.apply(pending, current, header, next_offset, now)
            offsets.append(next_offset)
            next_offset += header.last_offset_delta + 1
        self._maybe_roll(len(view), next_offset, now)
        iov: list[bytes | memoryview] = []
        for header, offset in zip(headers, offsets, strict=True):
            end = header.position + header.batch_length + LOG_OVERHEAD
            if log_append_time:
                iov.append(log_append_time_header(view, header, offset, leader_epoch, now))
                iov.append(view[header.position + HEADER_SIZE : end])
            else:
                iov.append(rewritten_prefix(header, offset, leader_epoch))
                iov.append(view[header.position + PREFIX_SIZE : end])
        active = self._active
        start_position = active.size
        self._write(active, iov, start_position, len(view))
        if active.rolling_timestamp_ms is None:
            active.rolling_timestamp_ms = now
        position = start_position
        for header, offset in zip(headers, offsets, strict=True):
            size = header.batch_length + LOG_OVERHEAD
            active.track(
                offset,
                position,
                size,
                offset + header.last_offset_delta + 1,
                now if log_append_time else header.max_timestamp,
                config.index_interval_bytes,
            )
            position += size
        if leader_epoch > self.epoch_cache.latest_epoch:
            self.epoch_cache.assign(leader_epoch, offsets[0])
        if pending:
            state.commit(pending)
        self._after_write(records, now)
        return AppendResult(
            offsets[0],
            next_offset - 1,
            now if log_append_time else -1,
            self._log_start,
        )

    def append_replica(self, batches: bytes | memoryview) -> AppendResult:
        """Follower append: batches keep their leader-assigned offsets and epochs."""
        self._check_open()
        view = memoryview(batches).cast("B")
        headers = validate_batches(view, max_batch_bytes=None, leader=False)
        expected = self.log_end_offset
        # A compacted leader's log has offset gaps, which its followers copy as they are.
        gaps_allowed = self._config.compacts
        for header in headers:
            if header.base_offset < expected or (
                header.base_offset != expected and not gaps_allowed
            ):
                raise InvalidBatchError(
                    f"replica batch starts at offset {header.base_offset}, expected {expected}"
                )
            expected = header.next_offset
        now = self._clock_ms()
        self._maybe_roll(len(view), expected, now)
        active = self._active
        start_position = active.size
        self._write(active, [view], start_position, len(view))
        if active.rolling_timestamp_ms is None:
            active.rolling_timestamp_ms = now
        for header in headers:
            active.track(
                header.base_offset,
                start_position + header.position,
                header.size,
                header.next_offset,
                header.max_timestamp,
                self._config.index_interval_bytes,
            )
            if header.leader_epoch > self.epoch_cache.latest_epoch:
                self.epoch_cache.assign(header.leader_epoch, header.base_offset)
            self.producer_state.observe(header, now)
        self._after_write(sum(h.record_count for h in headers), now)
        return AppendResult(headers[0].base_offset, expected - 1, -1, self._log_start)

    def _write(
        self, segment: Segment, iov: list[bytes | memoryview], position: int, total: int
    ) -> None:
        """Write all of ``iov`` at ``position``; on failure cut the file back (all-or-nothing)."""
        fd = segment.log_fd()
        self._dirty = True
        try:
            if len(iov) <= _IOV_MAX and os.pwritev(fd, iov, position) == total:
                return  # the usual case: one system call wrote everything
            offset = position  # short write or too many buffers: (re)write piece by piece
            pending = list(iov)
            while pending:
                chunk = pending[:_IOV_MAX]
                written = os.pwritev(fd, chunk, offset)
                offset += written
                # Drop fully written buffers; keep the unwritten rest of a partial one.
                while written and pending:
                    first_len = len(pending[0])
                    if written >= first_len:
                        written -= first_len
                        pending.pop(0)
                    else:
                        pending[0] = memoryview(pending[0])[written:]
                        written = 0
            if offset - position != total:
                raise OSError(f"wrote {offset - position} of {total} bytes")
        except OSError as error:
            os.ftruncate(fd, position)
            raise StorageError(f"write to {segment.log_path} failed: {error}") from error
        except BaseException:
            os.ftruncate(fd, position)
            raise

    def _after_write(self, records: int, now: int) -> None:
        self._unflushed_records += records
        config = self._config
        if (
            config.flush_messages is not None and self._unflushed_records >= config.flush_messages
        ) or (config.flush_ms is not None and now - self._last_flush_ms >= config.flush_ms):
            self._sync_data(now)

    def _sync_data(self, now: int) -> None:
        """fsync the log data written so far (the flush policy's unit of durability)."""
        for segment in self._unflushed_sealed:
            if segment in self.segments:
                segment.fsync(with_indexes=True)
        self._unflushed_sealed.clear()
        os.fsync(self._active.log_fd())
        if self._dir_dirty:
            fsync_dir(self.directory)
            self._dir_dirty = False
        self._unflushed_records = 0
        self._last_flush_ms = now

    def maybe_flush(self, now_ms: int | None = None) -> bool:
        """Apply the time-based flush policy from a periodic task; True if it fsynced."""
        now = self._clock_ms() if now_ms is None else now_ms
        flush_ms = self._config.flush_ms
        if (
            flush_ms is not None
            and self._unflushed_records
            and now - self._last_flush_ms >= flush_ms
        ):
            self._sync_data(now)
            return True
        return False

    # -- rolling ---------------------------------------------------------------------------------
    def _maybe_roll(self, incoming_bytes: int, next_offset: int, now: int) -> None:
        active = self._active
        if active.size == 0:
            return
        if (
            active.size + incoming_bytes > self._config.segment_bytes
            or next_offset - active.base_offset > INT32_MAX
            or self._age_roll_due(active, now)
        ):
            self.roll()

    def _age_roll_due(self, segment: Segment, now: int) -> bool:
        reference = segment.rolling_timestamp_ms
        limit = self._config.segment_ms
        if self._config.compacts and self._config.max_compaction_lag_ms is not None:
            # KIP-354: the active segment is never cleaned, so roll it once it is that old.
            limit = min(limit, self._config.max_compaction_lag_ms)
        return reference is not None and now - reference >= limit

    def roll(self) -> Segment:
        """Seal the active segment and start a new one at the log end offset."""
        old = self._active
        if old.size == 0:
            return old
        self._dirty = True
        durable = self._durable_policy
        old.seal(durable=durable)
        if not durable:
            self._unflushed_sealed.append(old)
        new = Segment(self.directory, self.log_end_offset, self.files)
        new.create_files()
        new.rolling_timestamp_ms = None
        self.segments.append(new)
        self._bases.append(new.base_offset)
        self._dir_dirty = True
        if durable:
            fsync_dir(self.directory)
            self._dir_dirty = False
        self.producer_state.write_snapshot(
            self.directory, new.base_offset, durable=durable, now_ms=self._clock_ms()
        )
        return new

    def roll_if_aged(self, now_ms: int) -> bool:
        if self._active.size and self._age_roll_due(self._active, now_ms):
            self.roll()
            return True
        return False

    # -- reads -----------------------------------------------------------------------------------
    def _segment_index_for(self, offset: int) -> int:
        return max(0, bisect.bisect_right(self._bases, offset) - 1)

    @staticmethod
    def _header_at(fd: int, segment: Segment, position: int) -> BatchHeader | None:
        """The batch header at ``position`` if it is plausible; None at the end or on damage
        (so a bit flip after a trusted clean start can end a read but never loop it)."""
        header = read_header(fd, position)
        if (
            header is None
            or header.magic != MAGIC
            or header.batch_length < HEADER_SIZE - LOG_OVERHEAD
            or position + header.batch_length + LOG_OVERHEAD > segment.size
        ):
            return None
        return header

    def _find_batch(
        self, segment: Segment, offset: int, *, repaired: bool = False
    ) -> tuple[int, int] | None:
        """(position, base offset) of the batch containing ``offset`` in ``segment``."""
        fd = segment.log_fd()
        indexed_offset, position = segment.index_floor(offset)
        header = self._header_at(fd, segment, position)
        if position and not repaired and (header is None or header.base_offset != indexed_offset):
            self._repair_index(segment, f"entry {indexed_offset}@{position} points elsewhere")
            return self._find_batch(segment, offset, repaired=True)
        while position < segment.size:
            header = self._header_at(fd, segment, position)
            if header is None:
                return None
            if header.next_offset > offset:
                return position, header.base_offset
            position += header.size
        return None

    def _repair_index(self, segment: Segment, why: str) -> None:
        was_active = segment.is_active
        outcome = segment.rebuild(
            verify_crc=False, index_interval=self._config.index_interval_bytes
        )
        self.segments_scanned += 1
        if was_active:
            segment.write_indexes(durable=False)
        else:
            segment.seal(durable=False)
        self._report("rebuilt-index", f"{segment.index_path.name}: {why}", 0)
        if outcome.problem:
            log.warning("index rebuild of %s stopped early: %s", segment.log_path, outcome.problem)

    def read(self, offset: int, max_bytes: int, *, max_offset: int | None = None) -> LogRead:
        """Whole batches starting with the one containing ``offset`` (see PartitionLogAPI)."""
        self._check_open()
        end = self.log_end_offset
        if offset < self._log_start or offset > end:
            raise OffsetOutOfRangeError(
                f"offset {offset} is outside [{self._log_start}, {end}] of "
                f"{self._topic}-{self._partition}"
            )
        limit = end if max_offset is None else min(max_offset, end)
        if offset >= limit:
            return LogRead([], offset)
        regions: list[FileRegion] = []
        total = 0
        high = offset
        index = self._segment_index_for(offset)
        try:
            while index < len(self.segments) and high < limit:
                segment = self.segments[index]
                found = self._find_batch(segment, high)
                if found is None:
                    index += 1
                    continue
                start, _ = found
                position = start
                # Skip whole batches using the sparse index instead of reading every header.
                jump = segment.last_boundary_within(start + max_bytes - total, limit)
                if jump is not None and jump[1] > start:
                    high, position = jump
                    total += position - start
                fd = segment.log_fd()
                while position < segment.size:
                    header = self._header_at(fd, segment, position)
                    if header is None or header.base_offset >= limit:
                        break
                    if total + header.size > max_bytes and (total or position > start):
                        break
                    total += header.size
                    position += header.size
                    high = header.next_offset
                if position > start:
                    regions.append(FileRegion(os.dup(segment.log_fd()), start, position - start))
                if position < segment.size or total >= max_bytes:
                    break
                index += 1
        except BaseException:
            for region in regions:
                os.close(region.fd)
            raise
        return LogRead(regions, high)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """(base offset, max timestamp) of the first batch whose max timestamp >= target.

        -2 (earliest) and -1 (latest) give (log start, -1) and (log end, -1) as in ListOffsets.
        """
        if timestamp_ms == EARLIEST_TIMESTAMP:
            return self._log_start, NO_TIMESTAMP
        if timestamp_ms == LATEST_TIMESTAMP:
            return self.log_end_offset, NO_TIMESTAMP
        for segment in self.segments:
            if segment.max_timestamp < timestamp_ms or segment.size == 0:
                continue
            start_offset = max(segment.time_floor_offset(timestamp_ms), self._log_start)
            found = self._find_batch(segment, start_offset)
            if found is None:
                continue
            position = found[0]
            fd = segment.log_fd()
            while position < segment.size:
                header = self._header_at(fd, segment, position)
                if header is None:
                    break
                if header.max_timestamp >= timestamp_ms and header.next_offset > self._log_start:
                    return max(header.base_offset, self._log_start), header.max_timestamp
                position += header.size
        return None

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        return self.epoch_cache.end_offset_for(epoch, self.log_end_offset)

    # -- deletion and truncation -----------------------------------------------------------------
    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: move the log start to ``offset`` and drop whole segments below it."""
        end = self.log_end_offset
        if offset < 0 or offset > end:
            raise OffsetOutOfRangeError(f"offset {offset} is outside [0, {end}]")
        if offset <= self._log_start:
            return self._log_start
        self._log_start = offset
        self._write_state()
        self._delete_segments_below_start()
        self.epoch_cache.truncate_from_start(self._log_start)
        return self._log_start

    def _delete_segments_below_start(self) -> tuple[int, int]:
        doomed = 0
        while (
            doomed + 1 < len(self.segments)
            and self.segments[doomed + 1].base_offset <= self._log_start
        ):
            doomed += 1
        return self._delete_oldest(doomed)

    def _delete_oldest(self, count: int) -> tuple[int, int]:
        """Delete the ``count`` oldest (sealed) segments; returns (segments, bytes)."""
        count = min(count, len(self.segments) - 1)
        if count <= 0:
            return 0, 0
        if self.producer_state.changed_since_snapshot:
            self.producer_state.write_snapshot(
                self.directory,
                self.log_end_offset,
                durable=self._durable_policy,
                now_ms=self._clock_ms(),
            )
        self._generation += 1
        removed = self.segments[:count]
        del self.segments[:count]
        del self._bases[:count]
        freed = 0
        for segment in removed:
            freed += segment.size
            segment.delete_files()
            if segment in self._unflushed_sealed:
                self._unflushed_sealed.remove(segment)
        if self.segments[0].base_offset > self._log_start:
            self._log_start = self.segments[0].base_offset
            self._write_state()
            self.epoch_cache.truncate_from_start(self._log_start)
        return count, freed

    def enforce_retention(self, now_ms: int) -> tuple[int, int, int]:
        """Roll an aged active segment, then delete whole segments past retention.ms or beyond
        retention.bytes. Returns (segments deleted, bytes deleted, segments rolled)."""
        rolled = int(self.roll_if_aged(now_ms))
        deleted, freed = self._delete_segments_below_start()
        config = self._config
        if not config.deletes_by_retention:
            return deleted, freed, rolled
        doomed = 0
        if config.retention_ms >= 0:
            cutoff = now_ms - config.retention_ms
            while (
                doomed < len(self.segments) and self._segment_time(self.segments[doomed]) < cutoff
            ):
                doomed += 1
            if doomed == len(self.segments):
                # Everything expired, including the active segment: roll so it can go too.
                if self._active.size:
                    self.roll()
                    rolled += 1
                doomed = len(self.segments) - 1
        if config.retention_bytes >= 0:
            excess = self.size_bytes - config.retention_bytes
            by_size = 0
            while by_size < len(self.segments) - 1 and excess >= self.segments[by_size].size:
                excess -= self.segments[by_size].size
                by_size += 1
            doomed = max(doomed, by_size)
        more, more_bytes = self._delete_oldest(doomed)
        return deleted + more, freed + more_bytes, rolled

    def expire_producers(self, now_ms: int) -> int:
        """Forget idempotent producers whose last write is at least ``producer.id.expiration.ms``
        old (the periodic retention pass calls this); returns how many were forgotten."""
        expired = self.producer_state.remove_expired(now_ms)
        if expired:
            self._dirty = True  # so even an otherwise idle close() writes the smaller snapshot
        return expired

    def _segment_time(self, segment: Segment) -> int:
        if segment.max_timestamp != NO_TIMESTAMP:
            return segment.max_timestamp
        if segment.size == 0:
            return 2**63 - 1  # an empty segment never expires
        return int(segment.log_path.stat().st_mtime * 1000)

    # -- compaction (see cleaner.py) -------------------------------------------------------------
    @property
    def cleaner_checkpoint(self) -> CleanerCheckpoint:
        return self._cleaner_checkpoint

    def prepare_cleaning(
        self, now_ms: int, *, max_map_keys: int = DEFAULT_MAX_MAP_KEYS
    ) -> CleaningTask | None:
        """A cleaning pass over the cleanable sealed segments if one is due, else None.

        Run the task's ``run()`` on any thread, then ``finish()`` on this log's thread.
        """
        config = self._config
        if self._closed or not config.compacts or len(self.segments) < 2:
            return None
        sealed = self.segments[:-1]
        stats = [
            SegmentStats(s.base_offset, s.next_offset, s.size, self._segment_time(s))
            for s in sealed
        ]
        count = cleanable_count(stats, now_ms, config.min_compaction_lag_ms)
        if not count:
            return None
        checkpoint = self._cleaner_checkpoint
        first_dirty = max(checkpoint.first_dirty, self.segments[0].base_offset)
        first_dirty_ts: int | None = None
        for segment in sealed[:count]:
            if segment.next_offset > first_dirty:
                header = read_header(segment.log_fd(), 0)
                stamps = [] if header is None else [header.base_timestamp, header.max_timestamp]
                first_dirty_ts = min((t for t in stamps if t >= 0), default=None)
                break
        if not cleaning_due(
            stats[:count],
            first_dirty,
            config,
            now_ms,
            first_dirty_timestamp_ms=first_dirty_ts,
            tombstone_expiry_ms=checkpoint.tombstone_expiry_ms,
        ):
            return None
        sources = [
            SourceSegment(
                s.log_path, s.base_offset, s.next_offset, s.size, stat.newest_timestamp_ms
            )
            for s, stat in zip(sealed[:count], stats[:count], strict=True)
        ]
        return CleaningTask(
            topic=self._topic,
            partition=self._partition,
            directory=self.directory,
            config=config,
            now_ms=now_ms,
            first_dirty=first_dirty,
            sources=sources,
            producer_last_offsets={
                pid: entry.batches[-1].last_offset
                for pid, entry in self.producer_state.producers.items()
                if entry.batches
            },
            checkpoint=CleanerCheckpoint(
                checkpoint.first_dirty, list(checkpoint.cleaned), checkpoint.tombstone_expiry_ms
            ),
            generation=self._generation,
            max_map_keys=max_map_keys,
            on_finish=self._finish_cleaning,
        )

    def clean(self, now_ms: int | None = None) -> CleaningTask | None:
        """Prepare, run and finish a cleaning pass on this thread (tests, simple callers)."""
        task = self.prepare_cleaning(self._clock_ms() if now_ms is None else now_ms)
        if task is not None:
            task.run()
            task.finish()
        return task

    def _finish_cleaning(self, task: CleaningTask) -> bool:
        if task.error is not None:
            log.warning(
                "%s-%d: cleaning failed: %s", self._topic, self._partition, task.error
            )
            return False
        if self._closed or task.generation != self._generation:
            log.info("%s-%d: log changed during cleaning; discarded", self._topic, self._partition)
            task.remove_outputs()
            return False
        try:
            for group in task.outputs:
                self._swap_in(group.base_offset, group.next_offset, group.source_bases)
        except Exception:
            self._reload_after_failed_swap()
            raise
        self._generation += 1
        self._dirty = True
        self._cleaner_checkpoint.record_pass(
            task.cleaned_end, self._clock_ms(), task.tombstone_expiry_ms
        )
        self._cleaner_checkpoint.save(self.directory)
        return True

    def _reload_after_failed_swap(self) -> None:
        """An error in the middle of a swap leaves the files ahead of memory: do what a restart
        would (finish or discard the swap, reopen the segments from disk). If even that fails,
        the partition goes offline until the broker restarts."""
        log.error("%s-%d: cleaning swap failed; reloading from disk", self._topic, self._partition)
        self._generation += 1
        for segment in self.segments:
            segment.forget_files()
        self._unflushed_sealed.clear()
        self._unflushed_records = 0
        try:
            self._open(clean_shutdown=False, verify_all=False)
        except BaseException:
            self._closed = True
            raise

    def _fault(self, step: str) -> None:
        if self.cleaner_fault is not None:
            self.cleaner_fault(step)

    def _swap_in(self, base: int, next_offset: int, source_bases: tuple[int, ...]) -> None:
        """Replace the segments ``source_bases`` by the cleaned ``base`` segment, crash-safely:
        a ``.log.swap`` file is the commit point (see ``_recover_cleaner_files``)."""
        directory = self.directory
        first = self._bases.index(base)
        count = len(source_bases)
        if tuple(self._bases[first : first + count]) != source_bases:
            raise StorageError(f"cleaned segment {base} no longer matches the log")
        suffixes = (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX)  # the log first: commit point
        self._fault("before-swap")
        for suffix in suffixes:
            cleaned = directory / f"{segment_name_of(base)}{suffix}{CLEANED_SUFFIX}"
            os.replace(cleaned, swap_name(directory, base, suffix))
            self._fault(f"swap{suffix}")
        fsync_dir(directory)
        self._fault("swap-durable")
        old = self.segments[first : first + count]
        for segment in old:
            segment.forget_files()
            if segment in self._unflushed_sealed:
                self._unflushed_sealed.remove(segment)
        for segment in old[1:]:
            segment.delete_files()
            self._fault("deleted-source")
        fsync_dir(directory)
        self._fault("sources-deleted")
        for suffix in suffixes:
            final = directory / f"{segment_name_of(base)}{suffix}"
            os.replace(swap_name(directory, base, suffix), final)
            self._fault(f"final{suffix}")
        fsync_dir(directory)
        self._fault("swapped")
        new = Segment(directory, base, self.files)
        if not new.load_sealed(next_offset):
            self._repair_index(new, "cleaned segment index unusable")
        self.segments[first : first + count] = [new]
        self._bases[first : first + count] = [base]

    def _recover_cleaner_files(self) -> None:
        """Finish or discard a cleaning interrupted by a crash. A ``<base>.log.swap`` means the
        cleaned data was durable before anything was deleted: complete the swap (delete the
        segments it covers, move it and its indexes to the final names). Index ``.swap`` files
        without it belong to a log already moved. ``.cleaned`` files without a ``.log.swap``
        were never committed and are deleted."""
        directory = self.directory
        swap_log_suffix = LOG_SUFFIX + SWAP_SUFFIX
        changed = False
        for path in sorted(directory.iterdir()):
            stem = path.name[: -len(swap_log_suffix)]
            if path.name.endswith(swap_log_suffix) and stem.isdigit():
                self._complete_swap(int(stem), path)
                changed = True
        for path in directory.iterdir():
            name = path.name
            if name.endswith(SWAP_SUFFIX):
                os.replace(path, directory / name[: -len(SWAP_SUFFIX)])
                changed = True
            elif name.endswith(CLEANED_SUFFIX):
                path.unlink(missing_ok=True)
                self._report("removed-file", f"uncommitted cleaning output {name}", 0)
                changed = True
        if changed:
            fsync_dir(directory)

    def _complete_swap(self, base: int, swap: Path) -> None:
        directory = self.directory
        fd = os.open(swap, os.O_RDONLY)
        try:
            scanner = FileBatchScanner(
                fd, os.fstat(fd).st_size, verify_crc=False, expected_base=base
            )
            end = base
            for header in scanner:
                end = header.next_offset
        finally:
            os.close(fd)
        replaced = 0
        for path in directory.iterdir():
            stem = path.name[: -len(LOG_SUFFIX)]
            if path.name.endswith(LOG_SUFFIX) and stem.isdigit() and base < int(stem) < end:
                for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX):
                    (directory / f"{stem}{suffix}").unlink(missing_ok=True)
                replaced += 1
        name = segment_name_of(base)
        for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            final = directory / f"{name}{suffix}"
            for candidate in (
                directory / f"{name}{suffix}{SWAP_SUFFIX}",
                directory / f"{name}{suffix}{CLEANED_SUFFIX}",
            ):
                if candidate.exists():
                    os.replace(candidate, final)
                    break
            else:
                final.unlink(missing_ok=True)  # rebuilt from the log when the segment opens
        fsync_dir(directory)  # the replaced segments are gone before the new one takes over
        os.replace(swap, directory / f"{name}{LOG_SUFFIX}")
        self._report(
            "completed-swap",
            f"cleaned segment {name} (offsets {base}..{end}) replaced {replaced + 1} segment(s)",
            0,
        )

    def truncate_to(self, offset: int) -> None:
        """Remove everything at and after ``offset`` (a batch containing it goes entirely)."""
        if offset >= self.log_end_offset:
            return
        if offset < self._log_start:
            self.truncate_fully_and_start_at(offset)
            return
        index = self._segment_index_for(offset)
        if index == 0 and offset <= self.segments[0].base_offset:
            self.truncate_fully_and_start_at(offset)
            return
        self._generation += 1
        self._cleaner_checkpoint.truncate(offset)
        self._cleaner_checkpoint.save(self.directory)
        for segment in self.segments[index + 1 :]:
            segment.delete_files()
        del self.segments[index + 1 :]
        del self._bases[index + 1 :]
        segment = self.segments[index]
        if not segment.is_active:
            outcome = segment.load_active(index_interval=self._config.index_interval_bytes)
            if outcome is None or outcome.problem:
                segment.rebuild(verify_crc=False, index_interval=self._config.index_interval_bytes)
        found = self._find_batch(segment, offset)
        if found is not None:
            header = read_header(segment.log_fd(), found[0])
            segment.truncate_after(header, index_interval=self._config.index_interval_bytes)
        segment.write_indexes(durable=False)
        self._unflushed_sealed = [s for s in self._unflushed_sealed if s in self.segments[:-1]]
        end = self.log_end_offset
        self._recovery_point = min(self._recovery_point, end)
        # A batch straddling the log start (DeleteRecords mid-batch) may take the end below it.
        self._log_start = min(self._log_start, end)
        self._write_state()
        self.epoch_cache.truncate_from_end(end)
        self._load_producer_state()

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop every segment and restart the log empty at ``offset`` (replica rebuild)."""
        self._generation += 1
        self._cleaner_checkpoint = CleanerCheckpoint(first_dirty=offset)
        self._cleaner_checkpoint.save(self.directory)
        for segment in self.segments:
            segment.delete_files()
        self.segments.clear()
        self._bases.clear()
        self._unflushed_sealed.clear()
        fresh = Segment(self.directory, offset, self.files)
        fresh.create_files()
        self.segments.append(fresh)
        self._bases.append(offset)
        fsync_dir(self.directory)
        self._log_start = offset
        self._recovery_point = offset
        self._write_state()
        self.epoch_cache.clear()
        self.producer_state.clear()
        for _, path in list_snapshots(self.directory):
            path.unlink(missing_ok=True)

    # -- durability ------------------------------------------------------------------------------
    def flush(self) -> None:
        """fsync the log data (the unit of durability), then cheap bookkeeping: index entries
        and a producer snapshot are written without fsync (both are verified or rebuilt after a
        crash), and the recovery point is persisted once it moves past a segment boundary —
        the active segment is rescanned after any unclean stop anyway."""
        self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        if self._closed:
            return
        active = self._active
        active.write_indexes(durable=final)
        self._sync_data(self._clock_ms())
        end = self.log_end_offset
        if self.producer_state.changed_since_snapshot:
            self.producer_state.write_snapshot(
                self.directory, end, durable=final, now_ms=self._clock_ms()
            )
        if final or (end != self._recovery_point and self._recovery_point < active.base_offset):
            self._recovery_point = end
            self._write_state()

    def close(self) -> None:
        """Flush everything durably (indexes and snapshot included) and release descriptors;
        a log untouched since a clean open is already durable and only releases them."""
        if self._closed:
            return
        if self._dirty:
            self._flush(final=True)
        self._closed = True
        self._generation += 1
        for segment in self.segments:
            segment.forget_files()

    def _write_state(self, *, durable: bool = True) -> None:
        self._dirty = True
        state = {"log_start_offset": self._log_start, "recovery_point": self._recovery_point}
        write_atomic(self.directory / STATE_NAME, json.dumps(state).encode(), durable=durable)

    def _read_state(self) -> dict[str, int] | None:
        try:
            data = json.loads((self.directory / STATE_NAME).read_bytes())
            return {
                "log_start_offset": int(data["log_start_offset"]),
                "recovery_point": int(data["recovery_point"]),
            }
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # -- opening and recovery --------------------------------------------------------------------
    def _report(self, action: str, detail: str, dropped: int) -> None:
        self._dirty = True
        event = RecoveryEvent(self._topic, self._partition, action, detail, dropped)
        log.warning("%s-%d: %s: %s", self._topic, self._partition, action, detail)
        if self._on_recovery is not None:
            self._on_recovery(event)

    def _open(self, *, clean_shutdown: bool, verify_all: bool) -> None:
        directory = self.directory
        directory.mkdir(parents=True, exist_ok=True)
        self._recover_cleaner_files()
        bases: list[int] = []
        for path in directory.iterdir():
            name = path.name
            if name.endswith((TMP_SUFFIX, ".deleted")):
                path.unlink(missing_ok=True)
                self._report("removed-file", f"leftover {name}", 0)
            elif name.endswith(LOG_SUFFIX) and name[: -len(LOG_SUFFIX)].isdigit():
                bases.append(int(name[: -len(LOG_SUFFIX)]))
        bases.sort()
        for path in directory.iterdir():  # index files whose log is gone
            for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
                stem = path.name[: -len(suffix)]
                if path.name.endswith(suffix) and stem.isdigit() and int(stem) not in bases:
                    path.unlink(missing_ok=True)
        state = self._read_state()
        if state is None and bases:
            self._report(
                "rebuilt-index",
                f"{STATE_NAME} unreadable; log start reset to the first segment",
                0,
            )
        if not bases:
            start = state["log_start_offset"] if state else 0
            fresh = Segment(directory, start, self.files)
            fresh.create_files()
            self._dir_dirty = True  # made durable by the first fsync or by close()
            self.segments = [fresh]
        else:
            self.segments = [Segment(directory, b, self.files) for b in bases]
        self._bases = [s.base_offset for s in self.segments]
        if clean_shutdown and not verify_all:
            recovery_point = _TRUSTED
        elif state is not None and not verify_all:
            recovery_point = state["recovery_point"]
        else:
            recovery_point = -1
        self._recover_segments(recovery_point)
        self._init_rolling_reference()
        end = self.log_end_offset
        log_start = self.segments[0].base_offset
        if state is not None:
            log_start = max(log_start, state["log_start_offset"])
        self._log_start = min(log_start, end)
        self._recovery_point = min(state["recovery_point"] if state else 0, end)
        if state is None or state["log_start_offset"] != self._log_start:
            self._write_state(durable=bool(bases))  # a brand-new partition: close() syncs it
        if not clean_shutdown or verify_all:
            self._dirty = True  # recovery may have rewritten indexes without fsync
        if not self.epoch_cache.load() and (directory / CHECKPOINT_NAME).exists():
            self._report("rebuilt-index", "leader-epoch-checkpoint unreadable; cleared", 0)
        self.epoch_cache.truncate_from_end(end)
        self.epoch_cache.truncate_from_start(self._log_start)
        self._load_producer_state()
        self._cleaner_checkpoint = CleanerCheckpoint.load(directory)
        if self._cleaner_checkpoint.first_dirty > end:  # the tail was lost in recovery
            self._cleaner_checkpoint.truncate(end)
            self._cleaner_checkpoint.save(directory)

    def _recover_segments(self, recovery_point: int) -> None:
        interval = self._config.index_interval_bytes
        index = 0
        while index < len(self.segments):
            segment = self.segments[index]
            is_last = index == len(self.segments) - 1
            next_base = None if is_last else self.segments[index + 1].base_offset
            # The last segment's end is unknown until scanned: after an unclean stop, scan it.
            if next_base is None:
                must_scan = recovery_point != _TRUSTED
            else:
                must_scan = next_base > recovery_point
            outcome: ScanOutcome | None = None
            if is_last and not must_scan:
                outcome = segment.load_active(index_interval=interval)
                if outcome is None:
                    self._report("rebuilt-index", f"{segment.index_path.name} unusable", 0)
            elif not is_last and not must_scan:
                assert next_base is not None
                if segment.load_sealed(next_base):
                    index += 1
                    continue
                self._report("rebuilt-index", f"{segment.index_path.name} unusable", 0)
            if outcome is None:
                outcome = segment.rebuild(verify_crc=True, index_interval=interval)
                self.segments_scanned += 1
            damaged = outcome.problem is not None
            if not damaged and next_base is not None and segment.next_offset != next_base:
                outcome.problem = (
                    f"ends at offset {segment.next_offset}, next segment at {next_base}"
                )
                damaged = True
            if damaged:
                self._truncate_damage(index, segment, outcome)
                return
            if is_last:
                segment.write_indexes(durable=False)
            else:
                segment.seal(durable=False)
            index += 1

    def _init_rolling_reference(self) -> None:
        """After a restart the segment's age is judged by its first batch's timestamp (as Kafka
        does), capped at now so a future timestamp cannot postpone the roll."""
        active = self._active
        if active.size == 0:
            active.rolling_timestamp_ms = None
            return
        now = self._clock_ms()
        first = read_header(active.log_fd(), 0)
        stamp = first.max_timestamp if first is not None else -1
        active.rolling_timestamp_ms = min(stamp, now) if stamp >= 0 else now

    def _truncate_damage(self, index: int, segment: Segment, outcome: ScanOutcome) -> None:
        """Cut ``segment`` at its last valid batch and drop every later segment."""
        file_size = os.fstat(segment.log_fd()).st_size
        dropped = file_size - outcome.valid_end
        os.ftruncate(segment.log_fd(), outcome.valid_end)
        os.fsync(segment.log_fd())
        later = self.segments[index + 1 :]
        for other in later:
            dropped += other.log_path.stat().st_size
            other.delete_files()
        del self.segments[index + 1 :]
        del self._bases[index + 1 :]
        fsync_dir(self.directory)
        segment.write_indexes(durable=True)
        detail = (
            f"{segment.log_path.name}: {outcome.problem}; kept {outcome.valid_end} bytes, "
            f"log now ends at offset {segment.next_offset}"
        )
        if later:
            detail += f"; deleted {len(later)} later segment(s)"
        self._report("truncated", detail, dropped)

    def _load_producer_state(self) -> None:
        """Newest usable snapshot at or below the log end, then replay batch headers after it."""
        end = self.log_end_offset
        now = self._clock_ms()
        state = self.producer_state
        start = -1
        written_ms = -1  # when the snapshot the replay starts from was written
        state.clear()
        for offset, path in reversed(list_snapshots(self.directory)):
            if offset > end:
                path.unlink(missing_ok=True)
                continue
            try:
                start, written_ms = state.load_snapshot(path.read_bytes(), now)
                break
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)
                self._report("rebuilt-index", f"producer snapshot {path.name} unreadable", 0)
        for segment in self.segments:
            if segment.next_offset <= start or segment.size == 0:
                continue
            position = 0
            if start > segment.base_offset:
                found = self._find_batch(segment, start)
                if found is None:
                    continue
                position = found[0]
            scanner = FileBatchScanner(
                segment.log_fd(), segment.size, start=position, verify_crc=False
            )
            for header in scanner:
                if header.base_offset >= start:
                    state.observe(header, replayed_write_time(header, now, written_ms))
        # Entries expired while the broker was down (or before a truncation) are not restored.
        expired = state.remove_expired(now)
        if expired:
            self._dirty = True  # so even an otherwise idle close() writes the smaller snapshot
        state.changed_since_snapshot = (start != end and bool(state.producers)) or expired > 0
