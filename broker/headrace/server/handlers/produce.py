"""Produce v3-9: append each partition's RecordBatch bytes through the broker services.

Batches are validated by storage (headers, CRC, every record: see storage/validation.py); a
refusal comes back as a KafkaError whose record_errors Produce v8+ carries.
acks=0 requests get no response at all; errors are answered per partition with Kafka codes,
and an idempotent retry is answered with the offsets of the original append. The response is
packed by :mod:`headrace.protocol.produce` (the hot path), not by kio's generic writer.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from headrace.core.broker import Broker
from headrace.core.errors import KafkaError
from headrace.core.requests import RequestContext
from headrace.protocol.codec import PreEncodedResponse
from headrace.protocol.produce import (
    FLEXIBLE_FROM,
    MAX_VERSION,
    MIN_VERSION,
    PartitionResult,
    encode_produce_body,
)
from headrace.server.handlers.binding import BrokerApi

API_KEY = 0


async def handle_produce(broker: Broker, request: Any, ctx: RequestContext) -> Any:
    acks = int(request.acks)
    topic_results: list[tuple[str, list[PartitionResult]]] = []
    first_error = 0
    for topic_data in request.topic_data:
        name = topic_data.name
        partitions: list[PartitionResult] = []
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
            index = int(partition_data.index)
            problem = topic_error
            if problem is None:
                records = partition_data.records
                if not records:
                    problem = KafkaError(ErrorCode.invalid_record, "no records")
                else:
                    try:
                        result = await broker.produce(name, index, records, acks=acks)
                    except KafkaError as failure:
                        problem = failure
                    else:
                        partitions.append(
                            PartitionResult(
                                index,
                                0,
                                result.base_offset,
                                result.log_append_time_ms,
                                result.log_start_offset,
                            )
                        )
                        continue
            first_error = first_error or int(problem.code)
            partitions.append(
                PartitionResult(index, int(problem.code), -1, -1, -1, problem.message,
                                problem.record_errors)
            )
        topic_results.append((name, partitions))
    if acks == 0:
        return None
    version = ctx.api_version
    body = encode_produce_body(version, topic_results)
    flexible = version >= FLEXIBLE_FROM
    # v1+ ends with throttle_time_ms (then, when flexible, an empty tagged-field count).
    throttle_at = len(body) - (5 if flexible else 4) if version >= 1 else None
    return PreEncodedResponse(API_KEY, flexible, [body], first_error, throttle_at=throttle_at)


HANDLERS = [BrokerApi(API_KEY, MIN_VERSION, MAX_VERSION, handle_produce)]
