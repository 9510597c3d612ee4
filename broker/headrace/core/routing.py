"""Where a partition's reads and writes go: the seam that lets any broker's HTTP API serve the
whole cluster.

The HTTP API asks a :class:`PartitionRouter` for offsets, appends and record reads instead of the
broker's services directly. A lone broker leads every partition, so :class:`LocalRouter` answers
from the services in-process; a cluster member's router (``headrace.cluster.forwarding``) answers
the partitions it leads the same way and forwards the others to their leader over the Kafka
protocol. Both raise :class:`~headrace.core.errors.KafkaError` with Kafka's codes, so the HTTP
error shapes stay the same whichever broker served the request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from headrace.core.errors import KafkaError
from headrace.storage import AppendResult

if TYPE_CHECKING:
    from headrace.core.broker import Broker

PartitionKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Offsets:
    """A partition's readable range: its log start offset and high watermark."""

    log_start_offset: int
    high_watermark: int


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one read of a partition returned: committed RecordBatch bytes from the position
    asked for (possibly empty), the partition's range, or the error that stopped it."""

    partition: int
    data: bytes = b""
    log_start_offset: int = -1
    high_watermark: int = -1
    error: KafkaError | None = None


class RecordSource(Protocol):
    """Long-polling reads of one topic's partitions for a record stream."""

    async def poll(self, positions: dict[int, int], max_wait: float) -> list[Fetched]:
        """Reads from ``positions`` (partition -> next offset); returns once some partition has
        records, or after ``max_wait`` seconds (possibly with nothing)."""
        ...

    async def close(self) -> None: ...


class PartitionRouter(Protocol):
    """Offsets, appends and reads of any partition of the cluster."""

    async def offsets(self, partitions: Iterable[PartitionKey]
                      ) -> dict[PartitionKey, Offsets | KafkaError]:
        """Each partition's readable range, or why it is unknown."""
        ...

    async def offset_for_time(self, topic: str, partition: int, timestamp: int) -> int:
        """ListOffsets: the first offset at or after ``timestamp`` (-1: none)."""
        ...

    async def produce(self, topic: str, partition: int, records: bytes, *, acks: int = -1
                      ) -> AppendResult:
        """Append RecordBatch bytes (one or more batches) on the partition's leader."""
        ...

    def reader(self, topic: str) -> RecordSource: ...


class LocalRouter:
    """Every partition is this broker's own: the in-process services answer."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def offsets(self, partitions: Iterable[PartitionKey]
                      ) -> dict[PartitionKey, Offsets | KafkaError]:
        return {key: self.local_offsets(*key) for key in partitions}

    def local_offsets(self, topic: str, partition: int) -> Offsets | KafkaError:
        try:
            start, end = self.broker.offsets(topic, partition)
        except KafkaError as error:
            return error
        return Offsets(start, end)

    async def offset_for_time(self, topic: str, partition: int, timestamp: int) -> int:
        return self.broker.list_offsets(topic, partition, timestamp)[0]

    async def produce(self, topic: str, partition: int, records: bytes, *, acks: int = -1
                      ) -> AppendResult:
        return await self.broker.produce(topic, partition, records, acks=acks)

    def reader(self, topic: str) -> RecordSource:
        return LocalRecordSource(self.broker, topic)


#: Bytes one poll reads from a partition.
READ_BYTES = 1 << 20


class LocalRecordSource:
    """Reads the partition logs in-process; when caught up it parks on the broker's
    wake-on-append purgatory (``Broker.wait_for_append``)."""

    def __init__(self, broker: Broker, topic: str) -> None:
        self.broker = broker
        self.topic = topic

    def read_now(self, positions: dict[int, int]) -> list[Fetched]:
        fetched = []
        for partition, position in positions.items():
            try:
                start, end = self.broker.offsets(self.topic, partition)
                if position < start or position >= end:
                    fetched.append(Fetched(partition, b"", start, end))
                    continue
                with self.broker.read(self.topic, partition, position, READ_BYTES) as read:
                    fetched.append(Fetched(partition, read.to_bytes(), start, end))
            except KafkaError as error:
                fetched.append(Fetched(partition, error=error))
        return fetched

    async def poll(self, positions: dict[int, int], max_wait: float) -> list[Fetched]:
        fetched = self.read_now(positions)
        if any(f.data for f in fetched) or any(
                f.error is None and positions[f.partition] < f.log_start_offset for f in fetched):
            return fetched
        keys = [(self.topic, p) for p in positions]
        if keys and await self.broker.wait_for_append(keys, max_wait):
            return self.read_now(positions)
        return fetched

    async def close(self) -> None:
        return None


__all__ = [
    "READ_BYTES",
    "Fetched",
    "LocalRecordSource",
    "LocalRouter",
    "Offsets",
    "PartitionKey",
    "PartitionRouter",
    "RecordSource",
]
