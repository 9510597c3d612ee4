"""This broker's share of ``__transaction_state``: the partitions it leads, and their records.

Like the group coordinator's :mod:`headrace.groups.persistence`: a partition is served once it
has been replayed (the latest value per transactional id wins, a tombstone forgets it), and
every state change is appended through the broker's append hook (which replicates on a
cluster) before it becomes current.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from kio.schema.errors import ErrorCode

from headrace.groups.partitioning import offsets_partition_for
from headrace.groups.persistence import append_error_to_group_error
from headrace.storage import LogManagerAPI
from headrace.transactions import records
from headrace.transactions.model import TxnMetadata
from headrace.transactions.records import TRANSACTION_TOPIC

log = logging.getLogger(__name__)

AppendHook = Callable[[int, bytes], Awaitable[None]]


class TxnLog:
    """Loads, writes and tracks ownership of the ``__transaction_state`` partitions."""

    def __init__(
        self, logs: LogManagerAPI, partitions: int, *, append: AppendHook,
        wall_clock_ms: Callable[[], int],
    ) -> None:
        self._logs = logs
        self.partitions = partitions
        self._append = append
        self._wall_clock_ms = wall_clock_ms
        self._owned: dict[int, int] = {}  # partition -> leader epoch (the coordinator epoch)
        self._loading: set[int] = set()

    def partition_for(self, transactional_id: str) -> int:
        """Kafka's ``abs(transactionalId.hashCode) % partitions``."""
        return offsets_partition_for(transactional_id, self.partitions)

    def owned_partitions(self) -> list[int]:
        return list(self._owned)

    def coordinator_epoch(self, partition: int) -> int:
        return self._owned.get(partition, -1)

    def ownership_error(self, transactional_id: str) -> ErrorCode:
        partition = self.partition_for(transactional_id)
        if partition in self._loading:
            return ErrorCode.coordinator_load_in_progress
        if partition not in self._owned:
            return ErrorCode.not_coordinator
        return ErrorCode.none

    async def load(self, partition: int, leader_epoch: int) -> dict[str, TxnMetadata] | None:
        """Replay a partition; returns its transactional ids (None if it was already led)."""
        if partition in self._owned:
            self._owned[partition] = leader_epoch
            return None
        self._loading.add(partition)
        try:
            found: dict[str, TxnMetadata] = {}
            log_ = self._logs.get_partition(TRANSACTION_TOPIC, partition)
            offset = log_.log_start_offset
            while offset < log_.log_end_offset:
                with log_.read(offset, 1 << 20) as read:
                    data = read.to_bytes()
                    next_offset = read.high_offset
                for entry in records.parse_batches(data):
                    if isinstance(entry, records.TxnRecordError):
                        log.warning("%s-%d: skipping unreadable record: %s",
                                    TRANSACTION_TOPIC, partition, entry)
                    elif entry.offset < offset:
                        continue
                    elif entry.metadata is None:
                        found.pop(entry.transactional_id, None)
                    else:
                        found[entry.transactional_id] = entry.metadata
                if next_offset <= offset:
                    break
                offset = next_offset
                await asyncio.sleep(0)  # a long replay lets other requests through
            self._owned[partition] = leader_epoch
            return found
        finally:
            self._loading.discard(partition)

    def unload(self, partition: int) -> None:
        self._owned.pop(partition, None)

    async def write(self, transactional_id: str, metadata: TxnMetadata | None) -> ErrorCode:
        """Persist one id's new state (None: a tombstone); the error its client should see."""
        partition = self.partition_for(transactional_id)
        if partition not in self._owned:
            return ErrorCode.not_coordinator
        batch = records.build_batch([(transactional_id, metadata)], self._wall_clock_ms())
        try:
            await self._append(partition, batch)
        except Exception as error:
            log.warning("cannot write transaction %s to %s-%d: %s",
                        transactional_id, TRANSACTION_TOPIC, partition, error)
            return append_error_to_group_error(error)
        return ErrorCode.none
