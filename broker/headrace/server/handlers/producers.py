"""DescribeProducers v0 (KIP-664): the producers a partition leader remembers, with the start
offset of each one's open transaction, to find hanging transactions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kio.schema.errors import ErrorCode

from headrace.core.broker import Broker
from headrace.core.errors import KafkaError
from headrace.core.requests import KafkaApi, RequestContext
from headrace.core.responses import build, partition_results
from headrace.core.security import Operation
from headrace.server.handlers.binding import BrokerApi, on_topics

if TYPE_CHECKING:
    from headrace.core.api_types import DescribeProducersRequests, DescribeProducersResponses

DESCRIBE_PRODUCERS: KafkaApi[DescribeProducersRequests, DescribeProducersResponses] = KafkaApi(
    61
)


async def handle_describe_producers(
    broker: Broker, request: DescribeProducersRequests, ctx: RequestContext
) -> DescribeProducersResponses:
    module = DESCRIBE_PRODUCERS.classes(ctx.api_version)

    async def answer(name: str, index: int) -> object:
        partition = int(index)
        broker.replicas.high_watermark(name, partition)  # only the leader answers
        producers = tuple(
            build(module.ProducerState, producer_id=pid, producer_epoch=epoch,
                  last_sequence=sequence, last_timestamp=last_ms, coordinator_epoch=-1,
                  current_txn_start_offset=txn_start)
            for pid, epoch, sequence, last_ms, txn_start
            in broker.replicas.log(name, partition).active_producers()
        )
        return build(module.PartitionResponse, partition_index=partition,
                     error_code=ErrorCode.none, active_producers=producers)

    def failed(name: str, index: int, error: KafkaError) -> object:
        return build(module.PartitionResponse, partition_index=int(index),
                     error_code=error.code, error_message=error.message, active_producers=())

    topics = await partition_results(
        ctx, ((topic.name, topic.partition_indexes) for topic in request.topics),
        answer=answer, failed=failed,
        topic=lambda name, partitions: module.TopicResponse(name=name, partitions=partitions),
    )
    return build(DESCRIBE_PRODUCERS.response(ctx.api_version), topics=topics)


HANDLERS = [
    BrokerApi(DESCRIBE_PRODUCERS, 0, 0, handle_describe_producers, on_topics(Operation.READ))
]
