"""The narrow interface other broker parts code against (server, groups, replication, web).

``PartitionLog`` and ``LogManager`` in this package implement these protocols. Threading: the
engine is NOT thread-safe; the broker calls it from its one event-loop thread. Appends fsync
only as the topic's flush policy demands; ``flush()`` may be run in an executor, but then no
other call on the same partition may run concurrently. A compaction task's ``run()`` is the
exception: it touches no shared object and may run on any thread (``finish()`` may not); so
are a topic creation's ``make_directories()`` and ``commit()`` (see ``TopicCreation``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from headrace.storage.cleaner import CleaningTask
from headrace.storage.config import LogConfig
from headrace.storage.results import (
    AppendResult,
    LogRead,
    RecoveryReport,
    RetentionReport,
    TopicMetadata,
)
from headrace.storage.topic_creation import NewPartitions, TopicCreation
from headrace.storage.validation import CheckedBatches


class PartitionLogAPI(Protocol):
    """One topic-partition: an append-only log of Kafka RecordBatch v2 batches."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def config(self) -> LogConfig: ...
    @property
    def log_start_offset(self) -> int: ...
    @property
    def log_end_offset(self) -> int: ...  # the next offset to be assigned
    @property
    def size_bytes(self) -> int: ...
    @property
    def segment_count(self) -> int: ...
    @property
    def latest_leader_epoch(self) -> int: ...  # -1 when no epoch was ever recorded

    def update_config(self, config: LogConfig) -> None: ...

    def check_batches(
        self, batches: bytes | memoryview, *, coordinator: bool = False
    ) -> CheckedBatches:
        """Check a producer's batches (headers and records) against this log's config without
        touching the log: safe in a worker thread. :meth:`append` takes the result."""
        ...

    def append(
        self,
        batches: bytes | memoryview,
        *,
        leader_epoch: int,
        checked: CheckedBatches | None = None,
        coordinator: bool = False,
    ) -> AppendResult:
        """Leader path: validate (or take ``checked``), assign offsets (rewrites baseOffset and
        partitionLeaderEpoch in place), check idempotent-producer sequences, write.
        All-or-nothing. ``coordinator``: a coordinator's write, the only one that may hold
        control batches (transaction markers) or unsequenced transactional batches."""
        ...

    def last_stable_offset(self, high_watermark: int) -> int:
        """The LSO: the first offset of an undecided transaction, capped at the HW."""
        ...

    def aborted_transactions(self, start: int, upper: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of aborted transactions overlapping [start, upper)."""
        ...

    def active_producers(self) -> list[tuple[int, int, int, int, int]]:
        """(producer id, epoch, last sequence, last write ms, open transaction's first offset
        or -1) of every producer the partition remembers (DescribeProducers)."""
        ...

    def ongoing_transaction(self, producer_id: int, producer_epoch: int | None = None) -> bool:
        """Whether ``producer_id`` has an open transaction in this partition (begun at
        ``producer_epoch``, when given: a transaction version 2 producer bumps the epoch for
        its next transaction while the last one's marker may still be on its way)."""
        ...

    def append_replica(self, batches: bytes | memoryview) -> AppendResult:
        """Follower path: batches carry leader-assigned offsets and epochs; the first batch
        must start at ``log_end_offset`` and the rest be contiguous."""
        ...

    def read(self, offset: int, max_bytes: int, *, max_offset: int | None = None) -> LogRead:
        """Whole batches from the one containing ``offset``; at least one batch even if it is
        larger than ``max_bytes``; only batches with ``base_offset < max_offset``.
        Raises OffsetOutOfRangeError outside ``[log_start_offset, log_end_offset]``."""
        ...

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """(base offset, max timestamp) of the first batch whose max timestamp >= the target;
        None when there is none (Kafka ListOffsets)."""
        ...

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (largest known epoch <= epoch, its end offset);
        (-1, -1) when undefined."""
        ...

    def delete_records_before(self, offset: int) -> int: ...  # returns the new log start
    def truncate_to(self, offset: int) -> None: ...
    def truncate_fully_and_start_at(self, offset: int) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class LogManagerAPI(Protocol):
    """Owns one data directory: topics, their partitions, retention and recovery.

    Constructed as ``LogManager(data_dir, *, default_config=LogConfig(),
    max_open_files=None, clock_ms=...)``; recovery runs in the constructor and its result is
    ``recovery_report``. ``close()`` flushes and writes the clean-shutdown marker.
    """

    @property
    def default_config(self) -> LogConfig: ...
    @property
    def recovery_report(self) -> RecoveryReport: ...

    def create_topic(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str] | None = None,
        topic_id: uuid.UUID | None = None,
    ) -> TopicMetadata: ...
    def begin_creation(self, entries: Sequence[NewPartitions]) -> TopicCreation:
        """Reserve a batch of new topics or partitions; the returned steps make them, some of
        them on a worker thread (see ``TopicCreation``)."""
        ...
    def delete_topic(self, name: str) -> None: ...
    def retry_deletions(self) -> int:
        """Finish deletions an error interrupted; returns how many are still unfinished."""
        ...
    def add_partitions(self, name: str, total_partitions: int) -> TopicMetadata: ...
    def partition_count(self) -> int:
        """Partitions held, counting those of creations under way."""
        ...
    def creating(self, name: str) -> bool:
        """Whether a creation (or growth) of topic ``name`` is under way."""
        ...
    def topics(self) -> Mapping[str, TopicMetadata]:
        """A snapshot of every topic (a copy: safe to iterate while topics change)."""
        ...
    def topic(self, name: str) -> TopicMetadata | None:
        """One topic, or None: a lookup, where ``topics()`` copies them all."""
        ...
    def get_partition(self, topic: str, partition: int) -> PartitionLogAPI: ...
    def topic_config(self, name: str) -> LogConfig: ...
    def alter_topic_configs(self, name: str, configs: Mapping[str, str]) -> TopicMetadata: ...
    def enforce_retention(self, now_ms: int | None = None) -> RetentionReport: ...
    def cleaning_tasks(self, now_ms: int | None = None) -> Iterator[CleaningTask]:
        """Due compaction passes: ``task.run()`` on any thread, then ``task.finish()``."""
        ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
