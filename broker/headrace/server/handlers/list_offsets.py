"""ListOffsets v1-7: earliest (-2), latest (-1), max timestamp (-3) or the first offset at or
after a timestamp, per partition."""

from __future__ import annotations

from typing import Any

from headrace.core.errors import KafkaError
from headrace.core.metadata import UNKNOWN_LEADER_EPOCH
from headrace.core.requests import ApiHandler, RequestContext
from headrace.core.responses import NO_THROTTLE, OK, build, response_classes

API_KEY = 2


async def handle_list_offsets(request: Any, ctx: RequestContext) -> Any:
    broker = ctx.broker
    module = response_classes(API_KEY, ctx.api_version)
    partition_cls = module.ListOffsetsPartitionResponse
    topics = []
    for topic in request.topics:
        partitions = []
        for partition in topic.partitions:
            index = int(partition.partition_index)
            try:
                offset, timestamp = broker.list_offsets(topic.name, index, int(partition.timestamp))
                code = OK
            except KafkaError as error:
                offset, timestamp, code = -1, -1, error.code
            partitions.append(
                build(
                    partition_cls,
                    partition_index=index,
                    error_code=code,
                    timestamp=timestamp,
                    offset=offset,
                    leader_epoch=UNKNOWN_LEADER_EPOCH,
                )
            )
        topics.append(
            module.ListOffsetsTopicResponse(name=topic.name, partitions=tuple(partitions))
        )
    return build(module.ListOffsetsResponse, throttle_time=NO_THROTTLE, topics=tuple(topics))


HANDLERS = [ApiHandler(API_KEY, 1, 7, handle_list_offsets)]
