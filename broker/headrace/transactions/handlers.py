"""Kafka API handlers for transactions: kio requests in, coordinator calls, kio responses out.

InitProducerId (idempotent and transactional), AddPartitionsToTxn (v0-3 from producers, v4-5
batched and ``verify_only`` between brokers, KIP-890 part 1), AddOffsetsToTxn, EndTxn,
TxnOffsetCommit (to the group coordinator, KIP-447 fencing) and WriteTxnMarkers (from a
coordinator on another broker). Transaction version 2 (KIP-890 part 2) is the client's choice
by version: EndTxn v5 bumps the epoch and answers with the producer id and epoch to go on
with, and TxnOffsetCommit v5 adds the group's offsets partition to the transaction itself
(such a client sends no AddOffsetsToTxn, as its Produce v12 sends no AddPartitionsToTxn).
Kafka answers a fenced producer with PRODUCER_FENCED from the versions KIP-588 added it in and
with INVALID_PRODUCER_EPOCH before; so do these.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from kio.schema.add_partitions_to_txn import v4 as add_partitions_to_txn_v4
from kio.schema.add_partitions_to_txn import v5 as add_partitions_to_txn_v5
from kio.schema.errors import ErrorCode

from headrace.core.broker import Broker
from headrace.core.errors import KafkaError
from headrace.core.requests import ApiHandler, KafkaApi, RequestContext
from headrace.core.responses import RequestTopic, build
from headrace.core.security import CLUSTER_NAME, Action, Operation, ResourceType
from headrace.groups.coordinator import GroupCoordinator
from headrace.groups.offsets import OffsetCommit
from headrace.transactions.coordinator import TransactionCoordinator
from headrace.transactions.markers import LocalMarkerWriter
from headrace.transactions.model import TxnState

if TYPE_CHECKING:
    from headrace.core.api_types import (
        AddOffsetsToTxnRequests,
        AddOffsetsToTxnResponses,
        AddPartitionsToTxnRequests,
        AddPartitionsToTxnResponses,
        DescribeTransactionsRequests,
        DescribeTransactionsResponses,
        EndTxnRequests,
        EndTxnResponses,
        InitProducerIdRequests,
        InitProducerIdResponses,
        ListTransactionsRequests,
        ListTransactionsResponses,
        TxnOffsetCommitRequests,
        TxnOffsetCommitResponses,
        WriteTxnMarkersRequests,
        WriteTxnMarkersResponses,
    )

INIT_PRODUCER_ID = 22
ADD_PARTITIONS_TO_TXN = 24
ADD_OFFSETS_TO_TXN = 25
END_TXN = 26
WRITE_TXN_MARKERS = 27
TXN_OFFSET_COMMIT = 28
DESCRIBE_TRANSACTIONS = 65
LIST_TRANSACTIONS = 66

INIT_PRODUCER_ID_API: KafkaApi[InitProducerIdRequests, InitProducerIdResponses] = KafkaApi(
    INIT_PRODUCER_ID
)
ADD_PARTITIONS_TO_TXN_API: KafkaApi[AddPartitionsToTxnRequests, AddPartitionsToTxnResponses] = (
    KafkaApi(ADD_PARTITIONS_TO_TXN)
)
ADD_OFFSETS_TO_TXN_API: KafkaApi[AddOffsetsToTxnRequests, AddOffsetsToTxnResponses] = KafkaApi(
    ADD_OFFSETS_TO_TXN
)
END_TXN_API: KafkaApi[EndTxnRequests, EndTxnResponses] = KafkaApi(END_TXN)
WRITE_TXN_MARKERS_API: KafkaApi[WriteTxnMarkersRequests, WriteTxnMarkersResponses] = KafkaApi(
    WRITE_TXN_MARKERS
)
TXN_OFFSET_COMMIT_API: KafkaApi[TxnOffsetCommitRequests, TxnOffsetCommitResponses] = KafkaApi(
    TXN_OFFSET_COMMIT
)
DESCRIBE_TRANSACTIONS_API: KafkaApi[
    DescribeTransactionsRequests, DescribeTransactionsResponses
] = KafkaApi(DESCRIBE_TRANSACTIONS)
LIST_TRANSACTIONS_API: KafkaApi[ListTransactionsRequests, ListTransactionsResponses] = KafkaApi(
    LIST_TRANSACTIONS
)

SUPPORTED_VERSIONS: dict[int, tuple[int, int]] = {
    INIT_PRODUCER_ID: (0, 4),
    ADD_PARTITIONS_TO_TXN: (0, 5),
    ADD_OFFSETS_TO_TXN: (0, 3),
    END_TXN: (0, 5),
    WRITE_TXN_MARKERS: (1, 1),
    TXN_OFFSET_COMMIT: (0, 5),
    DESCRIBE_TRANSACTIONS: (0, 0),
    LIST_TRANSACTIONS: (0, 1),
}

#: Kafka's names of the states, as DescribeTransactions/ListTransactions spell them.
STATE_NAMES = {
    TxnState.EMPTY: "Empty", TxnState.ONGOING: "Ongoing",
    TxnState.PREPARE_COMMIT: "PrepareCommit", TxnState.PREPARE_ABORT: "PrepareAbort",
    TxnState.COMPLETE_COMMIT: "CompleteCommit", TxnState.COMPLETE_ABORT: "CompleteAbort",
    TxnState.DEAD: "Dead", TxnState.PREPARE_EPOCH_FENCE: "PrepareEpochFence",
}

#: The first EndTxn and TxnOffsetCommit versions of transaction version 2 clients.
TV2_END_TXN = 5
TV2_TXN_OFFSET_COMMIT = 5
#: Batched AddPartitionsToTxn, between brokers (v5: a leader adding for a v2 client).
_BATCHED_ADD = (add_partitions_to_txn_v4.AddPartitionsToTxnRequest,
                add_partitions_to_txn_v5.AddPartitionsToTxnRequest)

#: The first version of each API that may carry PRODUCER_FENCED (KIP-588).
_FENCED_FROM = {
    INIT_PRODUCER_ID: 4, ADD_PARTITIONS_TO_TXN: 2, ADD_OFFSETS_TO_TXN: 2, END_TXN: 2,
    TXN_OFFSET_COMMIT: 2,
}


def _ms(value: datetime.timedelta | int) -> int:
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds() * 1000)
    return int(value)


def _refusal(ctx: RequestContext, transactional_id: str | None) -> ErrorCode | None:
    """The authorization error when the pipeline's authorizer denied this request."""
    if not ctx.denied:
        return None
    if (int(ResourceType.CLUSTER), "kafka-cluster") in ctx.denied:
        return ErrorCode.cluster_authorization_failed
    if (int(ResourceType.TRANSACTIONAL_ID), transactional_id) in ctx.denied:
        return ErrorCode.transactional_id_authorization_failed
    return None


def _group_refusal(ctx: RequestContext, group_id: str) -> ErrorCode | None:
    if ctx.refused(ResourceType.GROUP, group_id):
        return ErrorCode.group_authorization_failed
    return None


def _for_version(code: ErrorCode, ctx: RequestContext) -> ErrorCode:
    if code is ErrorCode.producer_fenced and ctx.api_version < _FENCED_FROM.get(ctx.api_key, 0):
        return ErrorCode.invalid_producer_epoch
    return code


def transaction_api_handlers(
    coordinator: TransactionCoordinator,
    groups: GroupCoordinator,
    broker: Broker,
    markers: LocalMarkerWriter,
) -> list[ApiHandler[Any, Any]]:
    return [
        INIT_PRODUCER_ID_API.handler(
            *SUPPORTED_VERSIONS[INIT_PRODUCER_ID],
            functools.partial(_init_producer_id, coordinator, broker), _init_producer_id_actions,
        ),
        ADD_PARTITIONS_TO_TXN_API.handler(
            *SUPPORTED_VERSIONS[ADD_PARTITIONS_TO_TXN],
            functools.partial(_add_partitions, coordinator, broker), _add_partitions_actions,
        ),
        ADD_OFFSETS_TO_TXN_API.handler(
            *SUPPORTED_VERSIONS[ADD_OFFSETS_TO_TXN],
            functools.partial(_add_offsets, coordinator), _add_offsets_actions,
        ),
        END_TXN_API.handler(
            *SUPPORTED_VERSIONS[END_TXN], functools.partial(_end_txn, coordinator),
            _transactional_id,
        ),
        WRITE_TXN_MARKERS_API.handler(
            *SUPPORTED_VERSIONS[WRITE_TXN_MARKERS],
            functools.partial(_write_txn_markers, markers), _cluster_action,
        ),
        TXN_OFFSET_COMMIT_API.handler(
            *SUPPORTED_VERSIONS[TXN_OFFSET_COMMIT],
            functools.partial(_txn_offset_commit, groups, broker), _txn_offset_commit_actions,
        ),
        DESCRIBE_TRANSACTIONS_API.handler(
            *SUPPORTED_VERSIONS[DESCRIBE_TRANSACTIONS],
            functools.partial(_describe_transactions, coordinator),
            _describe_transactions_actions,
        ),
        LIST_TRANSACTIONS_API.handler(
            *SUPPORTED_VERSIONS[LIST_TRANSACTIONS],
            functools.partial(_list_transactions, coordinator),
        ),
    ]


class _Transactional(Protocol):
    """A request of one producer's transaction (None: an idempotent InitProducerId)."""

    @property
    def transactional_id(self) -> str | None: ...


def _transactional_id(request: _Transactional) -> Sequence[Action]:
    """Kafka: WRITE on the transactional id for the producer's transaction APIs."""
    return _write_on(request.transactional_id)


def _write_on(transactional_id: str | None) -> Sequence[Action]:
    if transactional_id is None:
        return []
    return [Action(Operation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id)]


def _cluster_action(request: object) -> Sequence[Action]:
    """Markers (and v4 verification) are broker-to-broker: CLUSTER_ACTION on the cluster."""
    return [Action(Operation.CLUSTER_ACTION, ResourceType.CLUSTER, "kafka-cluster")]


def _add_partitions_actions(request: AddPartitionsToTxnRequests) -> Sequence[Action]:
    """v4 batches come from brokers (CLUSTER_ACTION); a producer's need WRITE on its
    transactional id and on every topic it adds."""
    if isinstance(request, _BATCHED_ADD):
        return _cluster_action(request)
    return [*_write_on(request.v3_and_below_transactional_id),
            *(Action(Operation.WRITE, ResourceType.TOPIC, t.name)
              for t in request.v3_and_below_topics)]


def _init_producer_id_actions(request: InitProducerIdRequests) -> Sequence[Action]:
    """WRITE on the transactional id; an idempotent producer needs IDEMPOTENT_WRITE on the
    cluster (which WRITE on any topic also grants, as Kafka's KIP-679)."""
    if request.transactional_id is None:
        return [Action(Operation.IDEMPOTENT_WRITE, ResourceType.CLUSTER, CLUSTER_NAME)]
    return _write_on(request.transactional_id)


def _add_offsets_actions(request: AddOffsetsToTxnRequests) -> Sequence[Action]:
    """WRITE on the transactional id, READ on the group whose offsets join the transaction."""
    return [*_write_on(request.transactional_id),
            Action(Operation.READ, ResourceType.GROUP, request.group_id)]


def _txn_offset_commit_actions(request: TxnOffsetCommitRequests) -> Sequence[Action]:
    """WRITE on the transactional id, READ on the group and on every topic committed."""
    return [*_write_on(request.transactional_id),
            Action(Operation.READ, ResourceType.GROUP, request.group_id),
            *(Action(Operation.READ, ResourceType.TOPIC, t.name) for t in request.topics)]


def _describe_transactions_actions(request: DescribeTransactionsRequests) -> Sequence[Action]:
    return [Action(Operation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, t)
            for t in request.transactional_ids]


async def _init_producer_id(
    coordinator: TransactionCoordinator, broker: Broker, request: InitProducerIdRequests,
    ctx: RequestContext,
) -> InitProducerIdResponses:
    response = INIT_PRODUCER_ID_API.response(ctx.api_version)
    transactional_id = request.transactional_id
    if transactional_id is None:
        # An idempotent producer: a fresh id at epoch 0, no coordinator state.
        if ctx.refused(ResourceType.CLUSTER, CLUSTER_NAME):
            return build(response, error_code=ErrorCode.cluster_authorization_failed,
                         producer_id=-1, producer_epoch=-1)
        try:
            producer_id = await broker.producer_ids.allocate()
        except KafkaError as failure:
            return build(response, error_code=failure.code,
                         producer_id=-1, producer_epoch=-1)
        return build(response, error_code=ErrorCode.none,
                     producer_id=producer_id, producer_epoch=0)
    refused = _refusal(ctx, transactional_id)
    if refused is not None:
        return build(response, error_code=refused, producer_id=-1,
                     producer_epoch=-1)
    error, producer_id, epoch = await coordinator.init_producer_id(
        transactional_id, _ms(request.transaction_timeout),
        int(getattr(request, "producer_id", -1)), int(getattr(request, "producer_epoch", -1)),
    )
    return build(response, error_code=_for_version(error, ctx),
                 producer_id=producer_id, producer_epoch=epoch)


async def _add_partitions(
    coordinator: TransactionCoordinator, broker: Broker, request: AddPartitionsToTxnRequests,
    ctx: RequestContext,
) -> AddPartitionsToTxnResponses:
    version = ctx.api_version
    module = ADD_PARTITIONS_TO_TXN_API.classes(version)
    response = ADD_PARTITIONS_TO_TXN_API.response(version)
    if isinstance(request, _BATCHED_ADD):
        results = []
        for txn in request.transactions:
            topic_results = await _add_one(
                coordinator, broker, module, ctx, txn.transactional_id, int(txn.producer_id),
                int(txn.producer_epoch), txn.topics, verify_only=bool(txn.verify_only),
            )
            results.append(build(module.AddPartitionsToTxnResult,
                                 transactional_id=txn.transactional_id,
                                 topic_results=topic_results))
        return build(response, error_code=ErrorCode.none,
                     results_by_transaction=tuple(results))
    topic_results = await _add_one(
        coordinator, broker, module, ctx, request.v3_and_below_transactional_id,
        int(request.v3_and_below_producer_id), int(request.v3_and_below_producer_epoch),
        request.v3_and_below_topics, verify_only=False,
    )
    return build(response, results_by_topic_v3_and_below=topic_results)


async def _add_one(
    coordinator: TransactionCoordinator, broker: Broker, module: ModuleType, ctx: RequestContext,
    transactional_id: str, producer_id: int, producer_epoch: int,
    topics: Iterable[RequestTopic[int]], *, verify_only: bool,
) -> tuple[object, ...]:
    wanted = [(t.name, int(p)) for t in topics for p in t.partitions]
    errors: dict[tuple[str, int], ErrorCode] = {}
    refused = _refusal(ctx, transactional_id)
    denied_topics = {t for t, _ in wanted if ctx.refused(ResourceType.TOPIC, t)}
    if refused is not None:
        errors = dict.fromkeys(wanted, refused)
    elif denied_topics:
        # As Kafka: nothing is added; the denied topics say why, the others were not tried.
        errors = {key: ErrorCode.topic_authorization_failed if key[0] in denied_topics
                  else ErrorCode.operation_not_attempted for key in wanted}
    elif verify_only:
        for key in wanted:
            errors[key] = _for_version(
                coordinator.verify(transactional_id, producer_id, producer_epoch, key), ctx
            )
    else:
        unknown = {key for key in wanted if not broker.partition_exists(*key)}
        if unknown:
            for key in wanted:
                errors[key] = (ErrorCode.unknown_topic_or_partition if key in unknown
                               else ErrorCode.operation_not_attempted)
        else:
            code = await coordinator.add_partitions(
                transactional_id, producer_id, producer_epoch, frozenset(wanted)
            )
            errors = {key: _for_version(code, ctx) for key in wanted}
    by_topic: dict[str, list[object]] = {}
    for (topic, partition), code in errors.items():
        by_topic.setdefault(topic, []).append(build(
            module.AddPartitionsToTxnPartitionResult, partition_index=partition,
            partition_error_code=code,
        ))
    return tuple(
        build(module.AddPartitionsToTxnTopicResult, name=topic,
              results_by_partition=tuple(results))
        for topic, results in by_topic.items()
    )


async def _add_offsets(
    coordinator: TransactionCoordinator, request: AddOffsetsToTxnRequests, ctx: RequestContext
) -> AddOffsetsToTxnResponses:
    code = _refusal(ctx, request.transactional_id) or _group_refusal(ctx, request.group_id) or (
        await coordinator.add_offsets(
        request.transactional_id, int(request.producer_id), int(request.producer_epoch),
        request.group_id,
    ))
    return build(ADD_OFFSETS_TO_TXN_API.response(ctx.api_version),
                 error_code=_for_version(code, ctx))


async def _end_txn(
    coordinator: TransactionCoordinator, request: EndTxnRequests, ctx: RequestContext
) -> EndTxnResponses:
    version_2 = ctx.api_version >= TV2_END_TXN
    code = _refusal(ctx, request.transactional_id) or await coordinator.end_txn(
        request.transactional_id, int(request.producer_id), int(request.producer_epoch),
        bool(request.committed), bump_epoch=version_2,
    )
    response = END_TXN_API.response(ctx.api_version)
    if not version_2:
        return build(response, error_code=_for_version(code, ctx))
    producer_id, epoch = (coordinator.producer_after_end(request.transactional_id)
                          if code is ErrorCode.none else (-1, -1))
    return build(response, error_code=code, producer_id=producer_id, producer_epoch=epoch)


async def _txn_offset_commit(
    groups: GroupCoordinator, broker: Broker, request: TxnOffsetCommitRequests,
    ctx: RequestContext,
) -> TxnOffsetCommitResponses:
    module = TXN_OFFSET_COMMIT_API.classes(ctx.api_version)
    commits: list[OffsetCommit] = []
    refused: dict[tuple[str, int], ErrorCode] = {}
    denied = _refusal(ctx, request.transactional_id) or _group_refusal(ctx, request.group_id)
    for topic in request.topics:
        for partition in topic.partitions:
            index = int(partition.partition_index)
            if denied is not None:
                refused[(topic.name, index)] = denied
                continue
            if ctx.refused(ResourceType.TOPIC, topic.name):
                refused[(topic.name, index)] = ErrorCode.topic_authorization_failed
                continue
            if not broker.partition_exists(topic.name, index):
                refused[(topic.name, index)] = ErrorCode.unknown_topic_or_partition
                continue
            commits.append(OffsetCommit(
                topic.name, index, int(partition.committed_offset),
                int(getattr(partition, "committed_leader_epoch", -1)),
                partition.committed_metadata,
            ))
    if commits and ctx.api_version >= TV2_TXN_OFFSET_COMMIT:
        # Transaction version 2: no AddOffsetsToTxn came; the offsets partition joins here.
        added = await _add_offsets_partition(groups, broker, request)
        if added is not ErrorCode.none:
            refused.update({(c.topic, c.partition): added for c in commits})
            commits = []
    results = await groups.commit_transactional_offsets(
        request.group_id, int(request.producer_id), int(request.producer_epoch),
        int(getattr(request, "generation_id", -1)), getattr(request, "member_id", "") or "",
        getattr(request, "group_instance_id", None), commits,
    ) if commits else {}
    results.update(refused)
    by_topic: dict[str, list[object]] = {}
    for (topic_name, index), code in results.items():
        by_topic.setdefault(topic_name, []).append(build(
            module.TxnOffsetCommitResponsePartition, partition_index=index,
            error_code=_for_version(code, ctx),
        ))
    return build(TXN_OFFSET_COMMIT_API.response(ctx.api_version), topics=tuple(
        build(module.TxnOffsetCommitResponseTopic, name=name, partitions=tuple(parts))
        for name, parts in by_topic.items()
    ))


async def _add_offsets_partition(
    groups: GroupCoordinator, broker: Broker, request: TxnOffsetCommitRequests
) -> ErrorCode:
    verifier = broker.transaction_verifier
    if verifier is None:
        return ErrorCode.coordinator_not_available
    return await verifier.verify(
        request.transactional_id, int(request.producer_id), int(request.producer_epoch),
        "__consumer_offsets", groups.partition_for(request.group_id), add=True,
    )


async def _write_txn_markers(
    markers: LocalMarkerWriter, request: WriteTxnMarkersRequests, ctx: RequestContext
) -> WriteTxnMarkersResponses:
    module = WRITE_TXN_MARKERS_API.classes(ctx.api_version)
    refused = _refusal(ctx, None)
    results = []
    for marker in request.markers:
        topics = []
        for topic in marker.topics:
            partitions = []
            for index in topic.partition_indexes:
                code = refused or await markers.write_marker(
                    topic.name, int(index), int(marker.producer_id), int(marker.producer_epoch),
                    bool(marker.transaction_result), int(marker.coordinator_epoch),
                )
                partitions.append(build(module.WritableTxnMarkerPartitionResult,
                                        partition_index=int(index), error_code=code))
            topics.append(build(module.WritableTxnMarkerTopicResult, name=topic.name,
                                partitions=tuple(partitions)))
        results.append(build(module.WritableTxnMarkerResult,
                             producer_id=marker.producer_id, topics=tuple(topics)))
    return build(WRITE_TXN_MARKERS_API.response(ctx.api_version), markers=tuple(results))


def _datetime(ms: int) -> datetime.datetime:
    """kio's timestamp for Kafka's milliseconds; -1 (no transaction running) stays -1."""
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)


async def _describe_transactions(
    coordinator: TransactionCoordinator, request: DescribeTransactionsRequests,
    ctx: RequestContext,
) -> DescribeTransactionsResponses:
    module = DESCRIBE_TRANSACTIONS_API.classes(ctx.api_version)
    states = []
    for transactional_id in request.transactional_ids:
        error = coordinator.log.ownership_error(transactional_id)
        metadata = coordinator.describe(transactional_id)
        if ctx.refused(ResourceType.TRANSACTIONAL_ID, transactional_id):
            error, metadata = ErrorCode.transactional_id_authorization_failed, None
        if error is ErrorCode.none and metadata is None:
            error = ErrorCode.transactional_id_not_found
        if error is not ErrorCode.none or metadata is None:
            states.append(build(
                module.TransactionState, error_code=error, transactional_id=transactional_id,
                transaction_state="", transaction_timeout=datetime.timedelta(0),
                transaction_start_time=_datetime(0), producer_id=-1, producer_epoch=-1,
                topics=(),
            ))
            continue
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(metadata.partitions):
            by_topic.setdefault(topic, []).append(partition)
        states.append(build(
            module.TransactionState, error_code=ErrorCode.none,
            transactional_id=transactional_id, transaction_state=STATE_NAMES[metadata.state],
            transaction_timeout=datetime.timedelta(milliseconds=metadata.timeout_ms),
            transaction_start_time=_datetime(metadata.start_ms),
            producer_id=metadata.producer_id, producer_epoch=metadata.producer_epoch,
            topics=tuple(build(module.TopicData, topic=t, partitions=tuple(ps))
                         for t, ps in by_topic.items()),
        ))
    return build(DESCRIBE_TRANSACTIONS_API.response(ctx.api_version),
                 transaction_states=tuple(states))


async def _list_transactions(
    coordinator: TransactionCoordinator, request: ListTransactionsRequests, ctx: RequestContext
) -> ListTransactionsResponses:
    module = LIST_TRANSACTIONS_API.classes(ctx.api_version)
    known = {name: state for state, name in STATE_NAMES.items()}
    wanted_states = set(request.state_filters)
    unknown = tuple(sorted(wanted_states - set(known)))
    wanted = {known[name] for name in wanted_states if name in known}
    producers = {int(p) for p in request.producer_id_filters}
    duration = int(getattr(request, "duration_filter", -1))
    now = coordinator.now_ms()
    listed = []
    visible = set(ctx.visible(ResourceType.TRANSACTIONAL_ID, coordinator.transactions))
    for transactional_id, metadata in sorted(coordinator.transactions.items()):
        if transactional_id not in visible:
            continue
        if coordinator.log.ownership_error(transactional_id) is not ErrorCode.none:
            continue
        if wanted_states and metadata.state not in wanted:
            continue
        if producers and metadata.producer_id not in producers:
            continue
        if duration >= 0 and (metadata.start_ms < 0 or now - metadata.start_ms < duration):
            continue
        listed.append(build(module.TransactionState, transactional_id=transactional_id,
                            producer_id=metadata.producer_id,
                            transaction_state=STATE_NAMES[metadata.state]))
    return build(LIST_TRANSACTIONS_API.response(ctx.api_version), error_code=ErrorCode.none,
                 unknown_state_filters=unknown, transaction_states=tuple(listed))
