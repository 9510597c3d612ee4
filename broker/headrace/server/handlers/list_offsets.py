"""ListOffsets v1-7: earliest (-2), latest (-1), max timestamp (-3) or the first offset at or
after a timestamp, per partition."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from headrace.core.broker import Broker
from headrace.core.errors import KafkaError
from headrace.core.metadata import UNKNOWN_LEADER_EPOCH
from headrace.core.requests import KafkaApi, RequestContext
from headrace.core.responses import OK, RequestTopic, build, partition_results
from headrace.core.security import Operation
from headrace.server.handlers.binding import BrokerApi, on_topics

if TYPE_CHECKING:
    from headrace.core.api_types import ListOffsetsRequests, ListOffsetsResponses

LIST_OFFSETS: KafkaApi[ListOffsetsRequests, ListOffsetsResponses] = KafkaApi(2)


class _OffsetQuery(Protocol):
    @property
    def partition_index(self) -> int: ...

    @property
    def timestamp(self) -> int: ...


class ListOffsetsQuery(Protocol):
    """What the handler reads of every ListOffsets version."""

    @property
    def topics(self) -> Sequence[RequestTopic[_OffsetQuery]]: ...


async def handle_list_offsets(
    broker: Broker, request: ListOffsetsQuery, ctx: RequestContext
) -> ListOffsetsResponses:
    module = LIST_OFFSETS.classes(ctx.api_version)
    partition_cls = module.ListOffsetsPartitionResponse
    isolation_level = int(getattr(request, "isolation_level", 0))

    async def answer(name: str, partition: _OffsetQuery) -> object:
        index = int(partition.partition_index)
        offset, timestamp = broker.list_offsets(
            name, index, int(partition.timestamp), isolation_level
        )
        return build(partition_cls, partition_index=index, error_code=OK, timestamp=timestamp,
                     offset=offset, leader_epoch=UNKNOWN_LEADER_EPOCH)

    def failed(name: str, partition: _OffsetQuery, error: KafkaError) -> object:
        return build(partition_cls, partition_index=int(partition.partition_index),
                     error_code=error.code, timestamp=-1, offset=-1,
                     leader_epoch=UNKNOWN_LEADER_EPOCH)

    topics = await partition_results(
        ctx, ((t.name, t.partitions) for t in request.topics), answer=answer, failed=failed,
        topic=lambda name, partitions: module.ListOffsetsTopicResponse(
            name=name, partitions=partitions),
    )
    return build(LIST_OFFSETS.response(ctx.api_version), topics=topics)


HANDLERS = (BrokerApi(LIST_OFFSETS, 1, 7, handle_list_offsets, on_topics(Operation.DESCRIBE)),)
