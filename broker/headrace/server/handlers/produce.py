"""Produce v3-9: append each partition's RecordBatch bytes through the broker services.

Batches are validated by storage from their headers and CRC only (no per-record work here).
acks=0 requests get no response at all; errors are answered per partition with Kafka codes,
and an idempotent retry is answered with the offsets of the original append.
"""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from headrace.server.dispatch import ApiHandler, RequestContext
from headrace.server.errors import KafkaError
from headrace.server.handlers.common import NO_THROTTLE, OK, build, response_classes

API_KEY = 0


def _append_time(ms: int) -> datetime.datetime | None:
    if ms < 0:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)


async def handle_produce(request: Any, ctx: RequestContext) -> Any:
    broker = ctx.broker
    acks = int(request.acks)
    module = response_classes(API_KEY, ctx.api_version)
    partition_cls = module.PartitionProduceResponse
    topic_results = []
    for topic_data in request.topic_data:
        name = topic_data.name
        partitions = []
        topic_error: KafkaError | None = None
        if acks not in (0, 1, -1):
            topic_error = KafkaError(ErrorCode.invalid_required_acks, f"acks={acks}")
        elif request.transactional_id is not None:
            topic_error = KafkaError(
                ErrorCode.transactional_id_authorization_failed, "transactions are not supported"
            )
        elif broker.topics.get(name) is None:
            try:
                if broker.ensure_topic(name) is None:
                    topic_error = KafkaError(ErrorCode.unknown_topic_or_partition, name)
            except KafkaError as error:
                topic_error = error
        for partition_data in topic_data.partition_data:
            index = partition_data.index
            problem = topic_error
            result = None
            if problem is None:
                records = partition_data.records
                if not records:
                    problem = KafkaError(ErrorCode.invalid_record, "no records")
                else:
                    try:
                        result = await broker.produce(name, index, records, acks=acks)
                    except KafkaError as failure:
                        problem = failure
            if result is not None:
                partitions.append(
                    build(
                        partition_cls,
                        index=index,
                        error_code=OK,
                        base_offset=result.base_offset,
                        log_append_time=_append_time(result.log_append_time_ms),
                        log_start_offset=result.log_start_offset,
                        record_errors=(),
                        error_message=None,
                    )
                )
            else:
                assert problem is not None
                partitions.append(
                    build(
                        partition_cls,
                        index=index,
                        error_code=problem.code,
                        base_offset=-1,
                        log_append_time=None,
                        log_start_offset=-1,
                        record_errors=(),
                        error_message=problem.message,
                    )
                )
        topic_results.append(
            module.TopicProduceResponse(name=name, partition_responses=tuple(partitions))
        )
    if acks == 0:
        return None
    return build(module.ProduceResponse, responses=tuple(topic_results), throttle_time=NO_THROTTLE)


HANDLERS = [ApiHandler(API_KEY, 3, 9, handle_produce)]
