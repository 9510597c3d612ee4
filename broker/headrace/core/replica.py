"""The partition/replica manager: the one path handlers take to partition logs.

It hides where leadership lives (single broker: this broker leads everything, ISR = {self},
high watermark = log end offset), maps storage errors to Kafka error codes, and keeps the fetch
purgatory: long-polling fetches park a future per partition and every append wakes the waiters
of its partition at once, so consumers see new records without any timer-driven polling.
Replication extends this class (leader checks, ISR, high watermark from follower fetches).

It is also the Fetch handler's seam (:meth:`ReplicaManager.fetch_bounds`,
:meth:`ReplicaManager.read_for_fetch`, :meth:`ReplicaManager.is_replica_fetch`): the one Fetch
loop asks it who may read where, and the clustered subclass answers with leader checks, epoch
fencing and follower progress while this class answers for a lone broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from headrace import record
from headrace.core.errors import KafkaError
from headrace.core.topics import kafka_error_from_storage
from headrace.storage import (
    AppendResult,
    CheckedBatches,
    LogManagerAPI,
    LogRead,
    PartitionLogAPI,
    StorageError,
    UnknownPartitionError,
)

log_ = logging.getLogger(__name__)

PartitionKey = tuple[str, int]
#: How many large produce checks (which may inflate up to 64 MiB each) run in worker threads
#: at once; the rest wait their turn, so memory stays bounded however many clients send them.
CHECK_THREADS = 2

#: ListOffsets special timestamps.
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3


@dataclass(frozen=True, slots=True)
class FetchBounds:
    """Where one partition's Fetch may read, as the replica manager decides for that fetcher.

    Offsets outside ``[log_start_offset, log_end_offset]`` are out of range; records are read up
    to ``readable_end`` (the high watermark for consumers, the log end for followers), so a
    consumer between the high watermark and the log end simply gets nothing yet.
    """

    log_start_offset: int
    high_watermark: int
    log_end_offset: int
    readable_end: int


class ReplicaManager:
    """Appends, reads and offsets of local partitions, plus wake-on-append for fetches."""

    def __init__(self, logs: LogManagerAPI, node_id: int, leader_epoch: int = 0) -> None:
        self._logs = logs
        self.node_id = node_id
        self._leader_epoch = leader_epoch
        self._waiters: dict[PartitionKey, set[asyncio.Future[bool]]] = {}
        self._check_slots = asyncio.Semaphore(CHECK_THREADS)

    def log(self, topic: str, partition: int) -> PartitionLogAPI:
        """The local log of a partition this broker leads, else UNKNOWN_TOPIC_OR_PARTITION."""
        try:
            return self._logs.get_partition(topic, partition)
        except UnknownPartitionError as error:
            raise KafkaError(
                ErrorCode.unknown_topic_or_partition, f"unknown partition {topic}-{partition}"
            ) from error

    async def append(
        self, topic: str, partition: int, records: bytes | memoryview, *, acks: int = -1,
        coordinator: bool = False,
    ) -> AppendResult:
        """Append producer batches as leader; returns where they landed (or the duplicate's).

        Single broker: acks=all is satisfied as soon as the local write returns.
        """
        log = self.log(topic, partition)
        try:
            checked = None
            if not coordinator and record.costly_to_open(records):
                checked = await self.check_off_loop(log, records)
            result = log.append(records, leader_epoch=self._leader_epoch, checked=checked,
                                coordinator=coordinator)
        except StorageError as error:
            raise kafka_error_from_storage(error) from error
        except Exception as error:  # a bug must not take the connection down with it
            log_.exception("append to %s-%d failed", topic, partition)
            raise KafkaError(ErrorCode.unknown_server_error, str(error)) from error
        if not result.duplicate:
            self.notify_append(topic, partition)
        return result

    async def check_off_loop(
        self, log: PartitionLogAPI, records: bytes | memoryview
    ) -> CheckedBatches:
        """Check producer batches that are :func:`~headrace.record.costly_to_open` (large or
        compressed: inflating them can take a while) in a worker thread, so the event loop
        serves other clients meanwhile; callers check the rest on the loop (append does, when
        given no verdict: no coroutine for the small requests). Raises the check's
        StorageError."""
        async with self._check_slots:
            return await asyncio.to_thread(log.check_batches, records)

    def high_watermark(self, topic: str, partition: int) -> int:
        return self.log(topic, partition).log_end_offset

    def hosted_high_watermark(self, topic: str, partition: int) -> int | None:
        """The high watermark this broker knows for a replica it hosts (leader or follower);
        None for a partition it holds no replica of (for /metrics)."""
        return self.high_watermark(topic, partition)

    def read(self, topic: str, partition: int, offset: int, max_bytes: int) -> LogRead:
        """Whole committed batches from ``offset`` (at least one if any is available)."""
        log = self.log(topic, partition)
        return _read_log(log, offset, max_bytes, log.log_end_offset)

    # -- the Fetch handler's seam ----------------------------------------------------------------

    def is_replica_fetch(self, replica_id: int) -> bool:
        """Whether a Fetch carrying ``replica_id`` comes from a follower broker, not a consumer
        (followers' reads are replication traffic, not consumption). A lone broker has none."""
        return False

    def fetch_bounds(
        self, topic: str, partition: int, fetch_offset: int, current_leader_epoch: int,
        replica_id: int,
    ) -> FetchBounds:
        """Check that this broker serves the fetch of one partition and say where it may read.

        ``current_leader_epoch`` is -1 when the request carries none; a lone broker leads
        every partition at every epoch, and its high watermark is the log end.
        """
        log = self.log(topic, partition)
        end = log.log_end_offset
        return FetchBounds(log.log_start_offset, end, end, end)

    def read_for_fetch(
        self, topic: str, partition: int, offset: int, max_bytes: int, bounds: FetchBounds
    ) -> LogRead:
        """Whole batches from ``offset`` below ``bounds.readable_end`` (at least one)."""
        return _read_log(self.log(topic, partition), offset, max_bytes, bounds.readable_end)

    def list_offset(self, topic: str, partition: int, timestamp: int) -> tuple[int, int]:
        """ListOffsets: (offset, timestamp) for -1 latest, -2 earliest, -3 max timestamp or a
        time in ms; (-1, -1) when no record is that new."""
        log = self.log(topic, partition)
        if timestamp == LATEST_TIMESTAMP:
            return log.log_end_offset, -1
        if timestamp == EARLIEST_TIMESTAMP:
            return log.log_start_offset, -1
        if timestamp == MAX_TIMESTAMP:
            return self._max_timestamp_offset(log)
        found = log.offset_for_timestamp(timestamp)
        if found is None:
            return -1, -1
        return _first_record_at_or_after(log, found, timestamp)

    def _max_timestamp_offset(self, log: PartitionLogAPI) -> tuple[int, int]:
        # The batch with the largest max timestamp; located by scanning batch headers only.
        if log.log_end_offset == log.log_start_offset:
            return -1, -1
        best_offset, best_timestamp = -1, -1
        offset = log.log_start_offset
        while offset < log.log_end_offset:
            with log.read(offset, 1 << 20) as batches:
                data = batches.to_bytes()
                next_offset = batches.high_offset
            position = 0
            while position + 61 <= len(data):
                base = int.from_bytes(data[position : position + 8], "big")
                length = int.from_bytes(data[position + 8 : position + 12], "big")
                max_ts = int.from_bytes(data[position + 35 : position + 43], "big", signed=True)
                if max_ts > best_timestamp:
                    best_offset, best_timestamp = base, max_ts
                position += 12 + length
            if next_offset <= offset:
                break
            offset = next_offset
        if best_offset < 0:
            return -1, -1
        return _first_record_at_or_after(log, (best_offset, best_timestamp), best_timestamp)

    def delete_records(self, topic: str, partition: int, offset: int) -> int:
        """DeleteRecords: move the log start up to ``offset`` (-1 = high watermark)."""
        log = self.log(topic, partition)
        target = log.log_end_offset if offset == -1 else offset
        if target < 0 or target > log.log_end_offset:
            raise KafkaError(
                ErrorCode.offset_out_of_range,
                f"offset {offset} is outside [0, {log.log_end_offset}]",
            )
        try:
            return log.delete_records_before(target)
        except StorageError as error:
            raise kafka_error_from_storage(error) from error

    # -- fetch purgatory -------------------------------------------------------------------

    def notify_append(self, topic: str, partition: int) -> None:
        """Wake every fetch waiting on this partition."""
        waiters = self._waiters.pop((topic, partition), None)
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(True)

    async def wait_for_append(self, partitions: Iterable[PartitionKey], seconds: float) -> bool:
        """Wait until any of ``partitions`` gets an append or ``seconds`` pass.

        Returns True when woken by an append. Callers re-check their condition afterwards.
        """
        if seconds <= 0:
            return False
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        keys = list(partitions)
        for key in keys:
            self._waiters.setdefault(key, set()).add(waiter)
        timer = loop.call_later(seconds, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            for key in keys:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[key]


def _read_log(log: PartitionLogAPI, offset: int, max_bytes: int, max_offset: int) -> LogRead:
    try:
        return log.read(offset, max_bytes, max_offset=max_offset)
    except StorageError as error:
        raise kafka_error_from_storage(error) from error


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


def _first_record_at_or_after(
    log: PartitionLogAPI, batch: tuple[int, int], timestamp: int
) -> tuple[int, int]:
    """Narrow storage's batch-level answer to the exact record, as Kafka does.

    Only ListOffsets by time pays for decoding (one batch, compressed or not); produce and fetch
    never look inside batches.
    """
    base_offset, _max_timestamp = batch
    with log.read(base_offset, 1) as read:
        data = read.to_bytes()
    try:
        for header, whole in record.whole_batches(data):
            for entry in record.batch_records(whole, header):
                if entry.timestamp_ms >= timestamp:
                    return entry.offset, entry.timestamp_ms
            break  # the first batch is the one storage found
    except record.RecordError:  # an undecodable batch still has a valid batch-level answer
        log_.exception("cannot decode batch at offset %d", base_offset)
    return batch
