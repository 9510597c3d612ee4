"""Cluster-wide producer ids: the broker's producer-id source, answered from blocks in etcd.

Each broker allocating ids on its own would hand the same id to two producers, and the
partition leaders' idempotence checks would then reject one of them. Brokers instead reserve
blocks of ids with a compare-and-swap on one etcd counter and answer from their block. The
server's InitProducerId handler asks this allocator through the broker's producer-id seam.
"""

from __future__ import annotations

import asyncio

from kio.schema.errors import ErrorCode

from headrace.cluster.store import EtcdMetadataStore
from headrace.core.errors import KafkaError

BLOCK_SIZE = 1000


class ClusterProducerIds:
    """Hands out producer ids from blocks reserved in etcd, one block at a time."""

    def __init__(self, store: EtcdMetadataStore, block_size: int = BLOCK_SIZE) -> None:
        self._store = store
        self._block_size = block_size
        self._block: range = range(0)
        self._next = 0
        self._lock = asyncio.Lock()

    async def allocate(self) -> int:
        """The next id of our block; COORDINATOR_NOT_AVAILABLE while etcd cannot give one."""
        async with self._lock:
            if self._next >= self._block.stop:
                try:
                    self._block = await self._store.reserve_producer_ids(self._block_size)
                except Exception as error:
                    raise KafkaError(
                        ErrorCode.coordinator_not_available, f"cannot reserve producer ids: {error}"
                    ) from error
                self._next = self._block.start
            producer_id = self._next
            self._next += 1
            return producer_id
