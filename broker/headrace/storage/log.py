"""PartitionLog: one topic-partition as a directory of segments (Kafka's ``Log``/``UnifiedLog``).

Appends check every batch (header, CRC and each record's framing, keys and timestamps, as
Kafka's LogValidator does: see validation), assign offsets by rewriting the 17 bytes in front
of the CRC-covered range, and write the batches with one ``pwritev`` (no record is copied).
Reads return file regions for ``sendfile``. Recovery on open verifies by CRC every segment
after the last durable recovery point (or nothing after a clean shutdown), truncates a torn or
corrupt tail and rebuilds damaged indexes.

The appends are here; the rest of :class:`PartitionLog` is built up in steps, each a class
over the one before: its shared state, flushing and rolling (log_state), reads (log_reads),
opening and recovery (log_recovery), deletion, retention and truncation (log_retention), and
compaction passes (log_cleaning).

Not thread-safe: one caller thread (the broker's event loop) at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from headrace.record.layout import (
    ATTR_CONTROL,
    ATTR_TIMESTAMP_TYPE,
    HEADER_SIZE,
    LOG_OVERHEAD,
    PREFIX_SIZE,
    restamped_header,
    rewritten_prefix,
)
from headrace.storage.config import LogConfig
from headrace.storage.errors import (
    BatchTooLargeError,
    DuplicateSequenceError,
    InvalidBatchError,
    StorageError,
)
from headrace.storage.files import FileHandleCache
from headrace.storage.log_cleaning import LogCleaning
from headrace.storage.log_state import wall_clock_ms
from headrace.storage.producer_state import DEFAULT_PRODUCER_ID_EXPIRATION_MS, ProducerEntry
from headrace.storage.results import AppendResult, RecoveryEvent
from headrace.storage.segment import Segment
from headrace.storage.validation import (
    CheckedBatches,
    check_producer_batches,
    validate_batches,
)

_IOV_MAX = 1024


class PartitionLog(LogCleaning):
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
        created: bool = False,
        clock_ms: Callable[[], int] = wall_clock_ms,
        on_recovery: Callable[[RecoveryEvent], None] | None = None,
        producer_id_expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS,
    ) -> None:
        super().__init__(
            directory,
            topic,
            partition,
            config,
            files=files,
            clock_ms=clock_ms,
            on_recovery=on_recovery,
            producer_id_expiration_ms=producer_id_expiration_ms,
        )
        # created: the directory was just filled by make_partition_files (no I/O here).
        if created:
            self._open_created()
        else:
            self._open(clean_shutdown=clean_shutdown, verify_all=verify_all)

    # -- appends --------------------------------------------------------------------------------
    def check_batches(
        self, batches: bytes | memoryview, *, coordinator: bool = False,
        now_ms: int | None = None,
    ) -> CheckedBatches:
        """Check a producer's batches, header and records, against this log's config (and
        the clock, or ``now_ms``). Touches no log state, so it may run in a worker thread;
        :meth:`append` then takes the result.
        """
        return check_producer_batches(
            batches, self._config, self._clock_ms() if now_ms is None else now_ms, self._name,
            coordinator=coordinator,
        )

    def append(
        self,
        batches: bytes | memoryview,
        *,
        leader_epoch: int,
        checked: CheckedBatches | None = None,
        coordinator: bool = False,
    ) -> AppendResult:
        """Leader append: validate (unless ``checked`` holds :meth:`check_batches`' verdict on
        these very bytes under the current config), assign offsets, write; all batches or none.

        ``coordinator``: the batches come from a coordinator of this broker (Kafka's
        ``AppendOrigin.COORDINATOR``), the only writer of control batches (transaction
        markers) and of transactional batches without sequence numbers (TxnOffsetCommit)."""
        self._check_open()
        view = memoryview(batches).cast("B")
        config = self._config
        now = self._clock_ms()
        if checked is None or checked.batches is not batches or checked.config is not config:
            checked = self.check_batches(batches, coordinator=coordinator, now_ms=now)
        headers, max_timestamps = checked.headers, checked.max_timestamps
        pending: dict[int, ProducerEntry] = {}
        offsets: list[int] = []
        next_offset = self.log_end_offset
        state = self.producer_state
        records = 0
        log_append_time = config.message_timestamp_type == "LogAppendTime"
        for header in headers:
            if header.batch_length + LOG_OVERHEAD > config.segment_bytes:
                raise BatchTooLargeError(
                    f"batch of {header.size} bytes exceeds segment.bytes {config.segment_bytes}"
                )
            records += header.record_count
            control = header.attributes & ATTR_CONTROL  # not the property: a call per batch
            if control:
                if not coordinator:
                    raise InvalidBatchError(
                        "control batches come only from a transaction coordinator"
                    )
                self._check_marker(header, view[header.position : header.position + header.size])
            unsequenced = coordinator and header.base_sequence < 0
            if header.producer_id >= 0 and not control and not unsequenced:
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
            if header.producer_id >= 0 and not control:
                current = state.producers.get(header.producer_id)
                state.apply(pending, current, header, next_offset, now)
            offsets.append(next_offset)
            next_offset += header.last_offset_delta + 1
        self._maybe_roll(len(view), next_offset, now)
        iov: list[bytes | memoryview] = []
        for header, offset, max_timestamp in zip(headers, offsets, max_timestamps, strict=True):
            end = header.position + header.batch_length + LOG_OVERHEAD
            if log_append_time or max_timestamp != header.max_timestamp:
                # The broker's clock, or the records' true largest timestamp (Kafka's
                # LogValidator rewrites a producer's wrong max timestamp the same way).
                iov.append(restamped_header(
                    view, header, offset, leader_epoch,
                    attributes=header.attributes | (ATTR_TIMESTAMP_TYPE * log_append_time),
                    max_timestamp=now if log_append_time else max_timestamp,
                ))
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
        for header, offset, max_timestamp in zip(headers, offsets, max_timestamps, strict=True):
            size = header.batch_length + LOG_OVERHEAD
            active.track(
                offset,
                position,
                size,
                offset + header.last_offset_delta + 1,
                now if log_append_time else max_timestamp,
                config.index_interval_bytes,
            )
            if header.is_control:
                batch = view[header.position : header.position + size]
                self._apply_marker(header, batch, offset, active.base_offset, now)
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
            if header.is_control:
                batch = view[header.position : header.position + header.size]
                self._apply_marker(header, batch, header.base_offset, active.base_offset, now)
            else:
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
