"""Cluster-wide producer ids: InitProducerId answered from blocks reserved in etcd.

Each broker allocating ids on its own would hand the same id to two producers, and the
partition leaders' idempotence checks would then reject one of them. Brokers instead reserve
blocks of ids with a compare-and-swap on one etcd counter and answer from their block.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kio.schema.errors import ErrorCode

from headrace.cluster.store import EtcdMetadataStore
from headrace.server.dispatch import ApiHandler, RequestContext
from headrace.server.handlers.common import NO_THROTTLE, build, response_classes

INIT_PRODUCER_ID_KEY = 22
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
        async with self._lock:
            if self._next >= self._block.stop:
                self._block = await self._store.reserve_producer_ids(self._block_size)
                self._next = self._block.start
            producer_id = self._next
            self._next += 1
            return producer_id


def init_producer_id_handler(ids: ClusterProducerIds) -> ApiHandler:
    async def handle(request: Any, ctx: RequestContext) -> Any:
        module = response_classes(INIT_PRODUCER_ID_KEY, ctx.api_version)
        if request.transactional_id is not None:
            return build(
                module.InitProducerIdResponse,
                throttle_time=NO_THROTTLE,
                error_code=ErrorCode.transactional_id_authorization_failed,
                producer_id=-1,
                producer_epoch=-1,
            )
        try:
            producer_id = await ids.allocate()
        except Exception:
            return build(
                module.InitProducerIdResponse,
                throttle_time=NO_THROTTLE,
                error_code=ErrorCode.coordinator_not_available,
                producer_id=-1,
                producer_epoch=-1,
            )
        return build(
            module.InitProducerIdResponse,
            throttle_time=NO_THROTTLE,
            error_code=ErrorCode.none,
            producer_id=producer_id,
            producer_epoch=0,
        )

    return ApiHandler(INIT_PRODUCER_ID_KEY, 0, 4, handle)
