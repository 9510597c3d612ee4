"""Produce v3-9: append each partition's RecordBatch bytes through the broker services.

Batches are validated by storage from their headers and CRC only (no per-record work here).
acks=0 requests get no response at all; errors are answered per partition with Kafka codes,
and an idempotent retry is answered with the offsets of the original append. The response is
packed by :mod:`headrace.protocol.produce` (the hot path), not by kio's generic writer.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from headrace import record
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
                elif request.transactional_id is not None and (
                    refusal := await _verify_transactional(
                        broker, request.transactional_id, name, index, records
                    )
                ) is not None:
                    problem = refusal
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
                PartitionResult(index, int(problem.code), -1, -1, -1, problem.message)
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


async def _verify_transactional(
    broker: Broker, transactional_id: str, topic: str, partition: int, records: Any
) -> KafkaError | None:
    """KIP-890 part 1: a transaction's first batch to a partition is accepted only once its
    coordinator confirms the partition was added (AddPartitionsToTxn), so no write can land
    outside a transaction the coordinator will end (a "hanging" transaction)."""
    if len(records) < _BATCH_HEADER_SIZE:
        return None  # storage refuses the malformed batch with its own error
    header = record.parse_header(bytes(records[:_BATCH_HEADER_SIZE]))
    if not header.attributes & _ATTR_TRANSACTIONAL or header.producer_id < 0:
        return None
    try:
        if broker.replicas.log(topic, partition).ongoing_transaction(header.producer_id):
            return None  # verified when the transaction first wrote here
    except KafkaError as error:
        return error
    verifier = broker.transaction_verifier
    if verifier is None:
        return KafkaError(ErrorCode.transactional_id_authorization_failed,
                          "transactions are not served")
    code = await verifier.verify(
        transactional_id, header.producer_id, header.producer_epoch, topic, partition
    )
    if code is ErrorCode.none:
        return None
    return KafkaError(code, f"{topic}-{partition} is not part of transaction {transactional_id}")


_BATCH_HEADER_SIZE = 61
_ATTR_TRANSACTIONAL = 0x10

HANDLERS = [BrokerApi(API_KEY, MIN_VERSION, MAX_VERSION, handle_produce)]
