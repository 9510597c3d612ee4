"""Produce v3-12: append each partition's RecordBatch bytes through the broker services.

Batches are validated by storage (headers, CRC, every record: see storage/validation.py); a
refusal comes back as a KafkaError whose record_errors Produce v8+ carries.
acks=0 requests get no response at all; errors are answered per partition with Kafka codes,
and an idempotent retry is answered with the offsets of the original append. The response is
packed by :mod:`headrace.protocol.produce` (the hot path), not by kio's generic writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kio.schema.errors import ErrorCode

from headrace import record
from headrace.core.broker import Broker
from headrace.core.errors import KafkaError
from headrace.core.requests import KafkaApi, RequestContext
from headrace.core.responses import authorization_error, partition_results
from headrace.core.security import Action, Operation, ResourceType
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
from headrace.storage import AppendResult

#: Hand-framed both ways (:mod:`headrace.protocol.produce`), so no kio classes.
PRODUCE: KafkaApi[ProduceRequestView, PreEncodedResponse] = KafkaApi(0)


async def handle_produce(
    broker: Broker, request: ProduceRequestView, ctx: RequestContext
) -> PreEncodedResponse | None:
    acks = int(request.acks)
    first_error = 0

    transactional_id = request.transactional_id
    refused_transaction = transactional_id is not None and ctx.refused(
        ResourceType.TRANSACTIONAL_ID, transactional_id)

    async def check(name: str) -> None:
        """Refuse every partition of topic ``name`` (creating it if allowed)."""
        if refused_transaction:
            raise authorization_error(ResourceType.TRANSACTIONAL_ID, str(transactional_id))
        if acks not in (0, 1, -1):
            raise KafkaError(ErrorCode.invalid_required_acks, f"acks={acks}")
        if broker.topics.get(name) is None and (
                not ctx.allows(Operation.CREATE, ResourceType.TOPIC, name)
                or await broker.ensure_topic(name) is None):
            raise KafkaError(ErrorCode.unknown_topic_or_partition, name)

    async def append(name: str, partition: ProducePartitionData) -> PartitionResult:
        records = partition.records
        if not records:
            raise KafkaError(ErrorCode.invalid_record, "no records")
        producer = _opening_producer(broker, request.transactional_id, name, partition.index,
                                     records)
        if producer is None:
            result = await broker.produce(name, partition.index, records, acks=acks)
        else:
            assert request.transactional_id is not None
            result = await _open_and_append(broker, request.transactional_id, name,
                                            partition.index, records, producer, acks=acks,
                                            add=ctx.api_version >= TV2_PRODUCE)
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


def _opening_producer(
    broker: Broker, transactional_id: str | None, topic: str, partition: int, records: Any
) -> tuple[int, int] | None:
    """(producer id, epoch) when ``records`` is a transactional batch that may open its
    transaction in this partition (so its coordinator must be asked first); None otherwise."""
    if transactional_id is None or len(records) < _BATCH_HEADER_SIZE:
        return None  # storage refuses a malformed batch with its own error
    header = record.parse_header(bytes(records[:_BATCH_HEADER_SIZE]))
    if not header.attributes & _ATTR_TRANSACTIONAL or header.producer_id < 0:
        return None
    return header.producer_id, header.producer_epoch


async def _open_and_append(
    broker: Broker, transactional_id: str, topic: str, partition: int, records: Any,
    producer: tuple[int, int], *, acks: int, add: bool,
) -> AppendResult:
    """Check with the coordinator (unless the transaction is open here already) and append,
    in the order the producer's writes to this partition arrived: a pipelined write that
    overtook the first one while it waits on its coordinator would fail its sequence check."""
    key = (topic, partition, producer[0])
    turns = broker.transactional_first_writes
    if not turns.busy(key) and _open_here(broker, topic, partition, producer):
        return await broker.produce(topic, partition, records, acks=acks)  # the usual case
    async with turns.turn(key):
        refusal = await _verify_transactional(broker, transactional_id, topic, partition,
                                              producer, add=add)
        if refusal is not None:
            raise refusal
        return await broker.produce(topic, partition, records, acks=acks)


def _open_here(broker: Broker, topic: str, partition: int, producer: tuple[int, int]) -> bool:
    """Whether the producer's transaction (at this epoch) is open in this partition already:
    verified when it first wrote here."""
    try:
        return broker.replicas.log(topic, partition).ongoing_transaction(*producer)
    except KafkaError:
        return False  # not led here: the check under the queue answers with the error


async def _verify_transactional(
    broker: Broker, transactional_id: str, topic: str, partition: int,
    producer: tuple[int, int], *, add: bool,
) -> KafkaError | None:
    """KIP-890 part 1: a transaction's first batch to a partition is accepted only once its
    coordinator confirms the partition was added (AddPartitionsToTxn), so no write can land
    outside a transaction the coordinator will end (a "hanging" transaction). Part 2 (``add``,
    Produce v12 of a transaction version 2 producer): the coordinator adds it instead."""
    producer_id, producer_epoch = producer
    try:
        if broker.replicas.log(topic, partition).ongoing_transaction(*producer):
            return None  # the write before this one opened it
    except KafkaError as error:
        return error
    verifier = broker.transaction_verifier
    if verifier is None:
        return KafkaError(ErrorCode.transactional_id_authorization_failed,
                          "transactions are not served")
    code = await verifier.verify(
        transactional_id, producer_id, producer_epoch, topic, partition, add=add
    )
    if code is ErrorCode.none:
        return None
    return KafkaError(code, f"{topic}-{partition} is not part of transaction {transactional_id}")


#: The first Produce version of transaction version 2 producers (KIP-890 part 2).
TV2_PRODUCE = 12
_BATCH_HEADER_SIZE = 61
_ATTR_TRANSACTIONAL = 0x10

def produce_actions(request: ProduceRequestView) -> Sequence[Action]:
    """Kafka's: WRITE on every topic, and on the transactional id of a transaction's batches."""
    actions = [Action(Operation.WRITE, ResourceType.TOPIC, t.name) for t in request.topic_data]
    if request.transactional_id is not None:
        actions.append(Action(Operation.WRITE, ResourceType.TRANSACTIONAL_ID,
                              request.transactional_id))
    return actions


HANDLERS = (BrokerApi(PRODUCE, MIN_VERSION, MAX_VERSION, handle_produce, produce_actions),)
