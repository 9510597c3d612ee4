"""ListOffsets v1-7: earliest (-2), latest (-1), max timestamp (-3) or the first offset at or
after a timestamp, per partition."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from headrace.core.broker import Broker
from headrace.core.metadata import UNKNOWN_LEADER_EPOCH
from headrace.core.requests import RequestContext
from headrace.core.responses import OK, build, partition_results, response_classes
from headrace.core.security import Operation
from headrace.server.handlers.binding import BrokerApi, on_topics

API_KEY = 2


async def handle_list_offsets(broker: Broker, request: Any, ctx: RequestContext) -> Any:
    module = response_classes(API_KEY, ctx.api_version)
    partition_cls = module.ListOffsetsPartitionResponse
    isolation_level = int(getattr(request, "isolation_level", 0))

    def answer(name: str, partition: Any) -> Any:
        index = int(partition.partition_index)
        offset, timestamp = broker.list_offsets(
            name, index, int(partition.timestamp), isolation_level
        )
        return build(partition_cls, partition_index=index, error_code=OK, timestamp=timestamp,
                     offset=offset, leader_epoch=UNKNOWN_LEADER_EPOCH)

    def failed(name: str, partition: Any, code: ErrorCode) -> Any:
        return build(partition_cls, partition_index=int(partition.partition_index),
                     error_code=code, timestamp=-1, offset=-1, leader_epoch=UNKNOWN_LEADER_EPOCH)

    topics = partition_results(
        ctx, request.topics, answer=answer, failed=failed,
        topic=lambda name, partitions: module.ListOffsetsTopicResponse(
            name=name, partitions=partitions),
    )
    return build(module.ListOffsetsResponse, topics=topics)


HANDLERS = [BrokerApi(API_KEY, 1, 7, handle_list_offsets, on_topics(Operation.DESCRIBE))]
