"""Writing transaction markers to partitions this broker leads.

The one local path for a COMMIT/ABORT marker, used by this broker's own coordinator and by the
WriteTxnMarkers API (a coordinator on another broker): the control batch is appended through
the broker's services as a coordinator write (replicated with acks=all on a cluster), and a
marker reaching ``__consumer_offsets`` also tells the group coordinator, which then applies or
drops the transaction's pending offsets.
"""

from __future__ import annotations

import time

from kio.schema.errors import ErrorCode

from headrace.core.broker import Broker
from headrace.core.errors import KafkaError
from headrace.groups.coordinator import GroupCoordinator
from headrace.groups.partitioning import OFFSETS_TOPIC
from headrace.storage import control_batch


class LocalMarkerWriter:
    """Writes markers to partitions led here (a :class:`~.coordinator.MarkerWriter`)."""

    def __init__(self, broker: Broker, groups: GroupCoordinator) -> None:
        self._broker = broker
        self._groups = groups

    async def write_marker(
        self, topic: str, partition: int, producer_id: int, producer_epoch: int,
        commit: bool, coordinator_epoch: int,
    ) -> ErrorCode:
        batch = control_batch(
            producer_id, producer_epoch, commit=commit, coordinator_epoch=coordinator_epoch,
            timestamp_ms=time.time_ns() // 1_000_000,
        )
        try:
            await self._broker.produce(topic, partition, batch, internal=True)
        except KafkaError as error:
            return error.code
        if topic == OFFSETS_TOPIC:
            self._groups.complete_transaction(partition, producer_id, commit)
        return ErrorCode.none
