"""The state every part of a partition log shares, and its upkeep: flushing and rolling.

:class:`LogState` holds the segments, the log start and recovery point, the producer state and
the leader-epoch cache; it applies the flush policy (``flush.messages``, ``flush.ms``), rolls
segments (``segment.bytes``, ``segment.ms``) and persists ``partition-state.json``. The parts
built on it, each a subclass of the one before: reads (log_reads), opening and recovery
(log_recovery), retention and truncation (log_retention), compaction swaps (log_cleaning),
appends (log: :class:`~headrace.storage.log.PartitionLog`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from headrace.record.layout import INT32_MAX, BatchHeader
from headrace.storage.cleaner import CleanerCheckpoint
from headrace.storage.config import LogConfig
from headrace.storage.epoch_cache import CHECKPOINT_NAME, LeaderEpochCache
from headrace.storage.errors import TransactionCoordinatorFencedError, UnknownPartitionError
from headrace.storage.files import FileHandleCache, fsync_dir, write_atomic
from headrace.storage.producer_state import DEFAULT_PRODUCER_ID_EXPIRATION_MS, ProducerStateManager
from headrace.storage.results import RecoveryEvent
from headrace.storage.segment import Segment
from headrace.storage.txn_index import AbortedTxn, TxnIndex, parse_marker

log = logging.getLogger("headrace.storage.log")

STATE_NAME = "partition-state.json"


def encode_state(log_start: int, recovery_point: int) -> bytes:
    """The content of ``partition-state.json``."""
    return json.dumps({"log_start_offset": log_start, "recovery_point": recovery_point}).encode()


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class LogState:
    """One partition log's fields and their upkeep (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        topic: str,
        partition: int,
        config: LogConfig,
        *,
        files: FileHandleCache | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        on_recovery: Callable[[RecoveryEvent], None] | None = None,
        producer_id_expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS,
    ) -> None:
        self.directory = directory
        self._topic = topic
        self._partition = partition
        #: ``topic-partition``, as errors name this log (built once: appends pass it on).
        self._name = f"{topic}-{partition}"
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
        self.txn_index = TxnIndex(directory)
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

    # -- properties -----------------------------------------------------------------------------
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

    # -- transactions ---------------------------------------------------------------------------
    def last_stable_offset(self, high_watermark: int) -> int:
        """Where ``read_committed`` reads end: the first undecided transaction's first offset,
        or ``high_watermark`` when every transaction below it is decided."""
        unstable = self.producer_state.first_unstable_offset(high_watermark)
        return high_watermark if unstable is None else min(unstable, high_watermark)

    def active_producers(self) -> list[tuple[int, int, int, int, int]]:
        """DescribeProducers: (producer id, epoch, last sequence, last write ms, first offset
        of its open transaction or -1) per producer this partition remembers."""
        return [
            (pid, entry.epoch, entry.batches[-1].last_sequence if entry.batches else -1,
             entry.last_write_ms, entry.txn_first_offset)
            for pid, entry in self.producer_state.producers.items()
        ]

    def ongoing_transaction(self, producer_id: int, producer_epoch: int | None = None) -> bool:
        if producer_id not in self.producer_state.ongoing:
            return False
        entry = self.producer_state.producers.get(producer_id)
        return producer_epoch is None or (entry is not None and entry.epoch == producer_epoch)

    def aborted_transactions(self, start: int, upper: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of aborted transactions overlapping [start, upper)."""
        return self.txn_index.collect(start, upper)

    def _check_marker(self, header: BatchHeader, batch: bytes | memoryview) -> None:
        """Refuse a marker from a coordinator older than the last one that wrote for this
        producer here (a zombie coordinator after a failover): Kafka's check."""
        marker = parse_marker(batch, header)
        entry = self.producer_state.producers.get(header.producer_id)
        if marker is not None and entry is not None and marker[1] < entry.coordinator_epoch:
            raise TransactionCoordinatorFencedError(
                f"marker for producer {header.producer_id} from coordinator epoch {marker[1]}, "
                f"older than {entry.coordinator_epoch}"
            )

    def _apply_marker(
        self, header: BatchHeader, batch: bytes | memoryview, offset: int, segment_base: int,
        now: int,
    ) -> None:
        """A COMMIT/ABORT marker landed at ``offset``: end the producer's transaction and
        index the range if it was aborted."""
        marker = parse_marker(batch, header)
        if marker is None:
            return
        commit, coordinator_epoch = marker
        first = self.producer_state.end_transaction(
            header.producer_id, header.producer_epoch, offset, now, coordinator_epoch
        )
        if first is not None and not commit:
            unstable = self.producer_state.first_unstable_offset(offset)
            lso = offset if unstable is None else min(unstable, offset)
            self.txn_index.add(AbortedTxn(header.producer_id, first, offset, lso), segment_base)

    # -- flush policy ---------------------------------------------------------------------------
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
        self.txn_index.sync()
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

    # -- rolling --------------------------------------------------------------------------------
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

    # -- durability -----------------------------------------------------------------------------
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
        write_atomic(self.directory / STATE_NAME,
                     encode_state(self._log_start, self._recovery_point), durable=durable)

    def _read_state(self) -> dict[str, int] | None:
        try:
            data = json.loads((self.directory / STATE_NAME).read_bytes())
            return {
                "log_start_offset": int(data["log_start_offset"]),
                "recovery_point": int(data["recovery_point"]),
            }
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _report(self, action: str, detail: str, dropped: int) -> None:
        self._dirty = True
        event = RecoveryEvent(self._topic, self._partition, action, detail, dropped)
        log.warning("%s-%d: %s: %s", self._topic, self._partition, action, detail)
        if self._on_recovery is not None:
            self._on_recovery(event)
