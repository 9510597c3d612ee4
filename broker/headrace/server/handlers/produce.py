"""Produce v3-12: append each partition's RecordBatch bytes through the broker services.

Batches are validated by storage (headers, CRC, every record: see storage/validation.py); a
refusal comes back as a KafkaError whose record_errors Produce v8+ carries.
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
from headrace.core.requests import KafkaApi, RequestContext
from headrace.core.responses import partition_results
from headrace.protocol.codec import PreEncodedResponse
from headrace.protocol.produce import (
    FLEXIBLE_FROM,
    MAX_VERSION,
    MIN_VERSION,
    PartitionResult,
    ProducePartitionData,
    ProduceRequestView,
    encode_produce_body,
)
from headrace.server.handlers.binding import BrokerApi

#: Hand-framed both ways (:mod:`headrace.protocol.produce`), so no kio classes.
PRODUCE: KafkaApi[ProduceRequestView, PreEncodedResponse] = KafkaApi(0)


async def handle_produce(
    broker: Broker, request: ProduceRequestView, ctx: RequestContext
) -> PreEncodedResponse | None:
    acks = int(request.acks)
    first_error = 0

    async def check(name: str) -> None:
        """Refuse every partition of topic ``name`` (creating it if allowed)."""
        if acks not in (0, 1, -1):
            raise KafkaError(ErrorCode.invalid_required_acks, f"acks={acks}")
        if broker.topics.get(name) is None and await broker.ensure_topic(name) is None:
            raise KafkaError(ErrorCode.unknown_topic_or_partition, name)

    async def append(name: str, partition: ProducePartitionData) -> PartitionResult:
        records = partition.records
        if not records:
            raise KafkaError(ErrorCode.invalid_record, "no records")
        if request.transactional_id is not None:
            refusal = await _verify_transactional(
                broker, request.transactional_id, name, partition.index, records,
                add=ctx.api_version >= TV2_PRODUCE,
            )
            if refusal is not None:
                raise refusal
        result = await broker.produce(name, partition.index, records, acks=acks)
        return PartitionResult(partition.index, 0, result.base_offset,
                               result.log_append_time_ms, result.log_start_offset)

    def failed(name: str, partition: ProducePartitionData, error: KafkaError) -> PartitionResult:
        nonlocal first_error
        first_error = first_error or int(error.code)
        return PartitionResult(partition.index, int(error.code), -1, -1, -1, error.message,
                               error.record_errors)

    topic_results = await partition_results(
        ctx, ((t.name, t.partition_data) for t in request.topic_data),
        answer=append, failed=failed, check=check, topic=lambda name, results: (name, results),
    )
    if acks == 0:
        return None
    version = ctx.api_version
    body = encode_produce_body(version, topic_results)
    flexible = version >= FLEXIBLE_FROM
    # v1+ ends with throttle_time_ms (then, when flexible, an empty tagged-field count).
    throttle_at = len(body) - (5 if flexible else 4) if version >= 1 else None
    return PreEncodedResponse(PRODUCE.key, flexible, [body], first_error, throttle_at=throttle_at)


async def _verify_transactional(
    broker: Broker, transactional_id: str, topic: str, partition: int, records: Any, *,
    add: bool,
) -> KafkaError | None:
    """KIP-890 part 1: a transaction's first batch to a partition is accepted only once its
    coordinator confirms the partition was added (AddPartitionsToTxn), so no write can land
    outside a transaction the coordinator will end (a "hanging" transaction). Part 2 (``add``,
    Produce v12 of a transaction version 2 producer): the coordinator adds it instead."""
    if len(records) < _BATCH_HEADER_SIZE:
        return None  # storage refuses the malformed batch with its own error
    header = record.parse_header(bytes(records[:_BATCH_HEADER_SIZE]))
    if not header.attributes & _ATTR_TRANSACTIONAL or header.producer_id < 0:
        return None
    try:
        log = broker.replicas.log(topic, partition)
        if log.ongoing_transaction(header.producer_id, header.producer_epoch):
            return None  # verified when the transaction first wrote here (at this epoch)
    except KafkaError as error:
        return error
    verifier = broker.transaction_verifier
    if verifier is None:
        return KafkaError(ErrorCode.transactional_id_authorization_failed,
                          "transactions are not served")
    code = await verifier.verify(
        transactional_id, header.producer_id, header.producer_epoch, topic, partition, add=add
    )
    if code is ErrorCode.none:
        return None
    return KafkaError(code, f"{topic}-{partition} is not part of transaction {transactional_id}")


#: The first Produce version of transaction version 2 producers (KIP-890 part 2).
TV2_PRODUCE = 12
_BATCH_HEADER_SIZE = 61
_ATTR_TRANSACTIONAL = 0x10

HANDLERS = (BrokerApi(PRODUCE, MIN_VERSION, MAX_VERSION, handle_produce),)
