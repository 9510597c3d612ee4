"""Kafka API handlers for transactions: kio requests in, coordinator calls, kio responses out.

InitProducerId (idempotent and transactional), AddPartitionsToTxn (v0-3 from producers, v4
batched and ``verify_only`` between brokers, KIP-890 part 1), AddOffsetsToTxn, EndTxn,
TxnOffsetCommit (to the group coordinator, KIP-447 fencing) and WriteTxnMarkers (from a
coordinator on another broker). Kafka answers a fenced producer with PRODUCER_FENCED from the
versions KIP-588 added it in and with INVALID_PRODUCER_EPOCH before; so do these.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Any

from kio.schema.errors import ErrorCode

from headrace.core.broker import Broker
from headrace.core.errors import KafkaError
from headrace.core.requests import ApiHandler, KafkaApi, RequestContext
from headrace.core.responses import build
from headrace.core.security import Action, Operation, ResourceType
from headrace.groups.coordinator import GroupCoordinator
from headrace.groups.offsets import OffsetCommit
from headrace.transactions.coordinator import TransactionCoordinator
from headrace.transactions.markers import LocalMarkerWriter
from headrace.transactions.model import TxnState

INIT_PRODUCER_ID = 22
ADD_PARTITIONS_TO_TXN = 24
ADD_OFFSETS_TO_TXN = 25
END_TXN = 26
WRITE_TXN_MARKERS = 27
TXN_OFFSET_COMMIT = 28
DESCRIBE_TRANSACTIONS = 65
LIST_TRANSACTIONS = 66

SUPPORTED_VERSIONS: dict[int, tuple[int, int]] = {
    INIT_PRODUCER_ID: (0, 4),
    ADD_PARTITIONS_TO_TXN: (0, 4),
    ADD_OFFSETS_TO_TXN: (0, 3),
    END_TXN: (0, 3),
    WRITE_TXN_MARKERS: (1, 1),
    TXN_OFFSET_COMMIT: (0, 3),
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

#: The first version of each API that may carry PRODUCER_FENCED (KIP-588).
_FENCED_FROM = {
    INIT_PRODUCER_ID: 4, ADD_PARTITIONS_TO_TXN: 2, ADD_OFFSETS_TO_TXN: 2, END_TXN: 2,
    TXN_OFFSET_COMMIT: 2,
}


def _ms(value: Any) -> int:
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


def _for_version(code: ErrorCode, ctx: RequestContext) -> ErrorCode:
    if code is ErrorCode.producer_fenced and ctx.api_version < _FENCED_FROM.get(ctx.api_key, 0):
        return ErrorCode.invalid_producer_epoch
    return code


#: The kio classes of each API's versions, looked up at run time.
_API: dict[int, KafkaApi[Any, Any]] = {key: KafkaApi(key) for key in SUPPORTED_VERSIONS}


def transaction_api_handlers(
    coordinator: TransactionCoordinator,
    groups: GroupCoordinator,
    broker: Broker,
    markers: LocalMarkerWriter,
) -> list[ApiHandler[Any, Any]]:
    handles: dict[int, Callable[[Any, RequestContext], Any]] = {
        INIT_PRODUCER_ID: lambda req, ctx: _init_producer_id(coordinator, broker, req, ctx),
        ADD_PARTITIONS_TO_TXN: lambda req, ctx: _add_partitions(coordinator, broker, req, ctx),
        ADD_OFFSETS_TO_TXN: lambda req, ctx: _add_offsets(coordinator, req, ctx),
        END_TXN: lambda req, ctx: _end_txn(coordinator, req, ctx),
        WRITE_TXN_MARKERS: lambda req, ctx: _write_txn_markers(markers, req, ctx),
        TXN_OFFSET_COMMIT: lambda req, ctx: _txn_offset_commit(groups, broker, req, ctx),
        DESCRIBE_TRANSACTIONS: lambda req, ctx: _describe_transactions(coordinator, req, ctx),
        LIST_TRANSACTIONS: lambda req, ctx: _list_transactions(coordinator, req, ctx),
    }
    return [
        ApiHandler(api_key, low, high, handles[api_key], _ACTIONS.get(api_key))
        for api_key, (low, high) in SUPPORTED_VERSIONS.items()
    ]


def _transactional_id(request: Any) -> Sequence[Action]:
    """Kafka: WRITE on the transactional id for the producer's transaction APIs."""
    transactional_id = getattr(request, "transactional_id", None)
    if transactional_id is None:
        transactional_id = getattr(request, "v3_and_below_transactional_id", None)
    if transactional_id is None:
        return []
    return [Action(Operation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id)]


def _cluster_action(request: Any) -> Sequence[Action]:
    """Markers (and v4 verification) are broker-to-broker: CLUSTER_ACTION on the cluster."""
    return [Action(Operation.CLUSTER_ACTION, ResourceType.CLUSTER, "kafka-cluster")]


def _add_partitions_actions(request: Any) -> Sequence[Action]:
    if hasattr(request, "transactions"):
        return _cluster_action(request)
    return _transactional_id(request)


_ACTIONS: dict[int, Callable[[Any], Sequence[Action]]] = {
    INIT_PRODUCER_ID: _transactional_id,
    ADD_PARTITIONS_TO_TXN: _add_partitions_actions,
    ADD_OFFSETS_TO_TXN: _transactional_id,
    END_TXN: _transactional_id,
    WRITE_TXN_MARKERS: _cluster_action,
    TXN_OFFSET_COMMIT: _transactional_id,
}


async def _init_producer_id(
    coordinator: TransactionCoordinator, broker: Broker, request: Any, ctx: RequestContext
) -> Any:
    module = _API[INIT_PRODUCER_ID].classes(ctx.api_version)
    transactional_id = request.transactional_id
    if transactional_id is None:
        # An idempotent producer: a fresh id at epoch 0, no coordinator state.
        try:
            producer_id = await broker.producer_ids.allocate()
        except KafkaError as failure:
            return build(module.InitProducerIdResponse, error_code=failure.code,
                         producer_id=-1, producer_epoch=-1)
        return build(module.InitProducerIdResponse, error_code=ErrorCode.none,
                     producer_id=producer_id, producer_epoch=0)
    refused = _refusal(ctx, transactional_id)
    if refused is not None:
        return build(module.InitProducerIdResponse, error_code=refused, producer_id=-1,
                     producer_epoch=-1)
    error, producer_id, epoch = await coordinator.init_producer_id(
        transactional_id, _ms(request.transaction_timeout),
        int(getattr(request, "producer_id", -1)), int(getattr(request, "producer_epoch", -1)),
    )
    return build(module.InitProducerIdResponse, error_code=_for_version(error, ctx),
                 producer_id=producer_id, producer_epoch=epoch)


async def _add_partitions(
    coordinator: TransactionCoordinator, broker: Broker, request: Any, ctx: RequestContext
) -> Any:
    version = ctx.api_version
    module = _API[ADD_PARTITIONS_TO_TXN].classes(version)
    if version >= 4:
        results = []
        for txn in request.transactions:
            topic_results = await _add_one(
                coordinator, broker, module, ctx, txn.transactional_id, int(txn.producer_id),
                int(txn.producer_epoch), txn.topics, verify_only=bool(txn.verify_only),
            )
            results.append(build(module.AddPartitionsToTxnResult,
                                 transactional_id=txn.transactional_id,
                                 topic_results=topic_results))
        return build(module.AddPartitionsToTxnResponse, error_code=ErrorCode.none,
                     results_by_transaction=tuple(results))
    topic_results = await _add_one(
        coordinator, broker, module, ctx, request.v3_and_below_transactional_id,
        int(request.v3_and_below_producer_id), int(request.v3_and_below_producer_epoch),
        request.v3_and_below_topics, verify_only=False,
    )
    return build(module.AddPartitionsToTxnResponse, results_by_topic_v3_and_below=topic_results)


async def _add_one(
    coordinator: TransactionCoordinator, broker: Broker, module: Any, ctx: RequestContext,
    transactional_id: str, producer_id: int, producer_epoch: int, topics: Any, *,
    verify_only: bool,
) -> tuple[Any, ...]:
    wanted = [(t.name, int(p)) for t in topics for p in t.partitions]
    errors: dict[tuple[str, int], ErrorCode] = {}
    refused = _refusal(ctx, transactional_id)
    if refused is not None:
        errors = dict.fromkeys(wanted, refused)
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
    by_topic: dict[str, list[Any]] = {}
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
    coordinator: TransactionCoordinator, request: Any, ctx: RequestContext
) -> Any:
    module = _API[ADD_OFFSETS_TO_TXN].classes(ctx.api_version)
    code = _refusal(ctx, request.transactional_id) or await coordinator.add_offsets(
        request.transactional_id, int(request.producer_id), int(request.producer_epoch),
        request.group_id,
    )
    return build(module.AddOffsetsToTxnResponse, error_code=_for_version(code, ctx))


async def _end_txn(coordinator: TransactionCoordinator, request: Any, ctx: RequestContext) -> Any:
    module = _API[END_TXN].classes(ctx.api_version)
    code = _refusal(ctx, request.transactional_id) or await coordinator.end_txn(
        request.transactional_id, int(request.producer_id), int(request.producer_epoch),
        bool(request.committed),
    )
    return build(module.EndTxnResponse, error_code=_for_version(code, ctx))


async def _txn_offset_commit(
    groups: GroupCoordinator, broker: Broker, request: Any, ctx: RequestContext
) -> Any:
    module = _API[TXN_OFFSET_COMMIT].classes(ctx.api_version)
    commits: list[OffsetCommit] = []
    refused: dict[tuple[str, int], ErrorCode] = {}
    denied = _refusal(ctx, request.transactional_id)
    for topic in request.topics:
        for partition in topic.partitions:
            index = int(partition.partition_index)
            if denied is not None:
                refused[(topic.name, index)] = denied
            elif not broker.partition_exists(topic.name, index):
                refused[(topic.name, index)] = ErrorCode.unknown_topic_or_partition
                continue
            commits.append(OffsetCommit(
                topic.name, index, int(partition.committed_offset),
                int(getattr(partition, "committed_leader_epoch", -1)),
                partition.committed_metadata,
            ))
    results = await groups.commit_transactional_offsets(
        request.group_id, int(request.producer_id), int(request.producer_epoch),
        int(getattr(request, "generation_id", -1)), getattr(request, "member_id", "") or "",
        getattr(request, "group_instance_id", None), commits,
    ) if commits else {}
    results.update(refused)
    by_topic: dict[str, list[Any]] = {}
    for (topic_name, index), code in results.items():
        by_topic.setdefault(topic_name, []).append(build(
            module.TxnOffsetCommitResponsePartition, partition_index=index,
            error_code=_for_version(code, ctx),
        ))
    return build(module.TxnOffsetCommitResponse, topics=tuple(
        build(module.TxnOffsetCommitResponseTopic, name=name, partitions=tuple(parts))
        for name, parts in by_topic.items()
    ))


async def _write_txn_markers(
    markers: LocalMarkerWriter, request: Any, ctx: RequestContext
) -> Any:
    module = _API[WRITE_TXN_MARKERS].classes(ctx.api_version)
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
    return build(module.WriteTxnMarkersResponse, markers=tuple(results))


def _datetime(ms: int) -> datetime.datetime:
    """kio's timestamp for Kafka's milliseconds; -1 (no transaction running) stays -1."""
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)


async def _describe_transactions(
    coordinator: TransactionCoordinator, request: Any, ctx: RequestContext
) -> Any:
    module = _API[DESCRIBE_TRANSACTIONS].classes(ctx.api_version)
    states = []
    for transactional_id in request.transactional_ids:
        error = coordinator.log.ownership_error(transactional_id)
        metadata = coordinator.describe(transactional_id)
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
    return build(module.DescribeTransactionsResponse, transaction_states=tuple(states))


async def _list_transactions(
    coordinator: TransactionCoordinator, request: Any, ctx: RequestContext
) -> Any:
    module = _API[LIST_TRANSACTIONS].classes(ctx.api_version)
    known = {name: state for state, name in STATE_NAMES.items()}
    wanted_states = set(request.state_filters)
    unknown = tuple(sorted(wanted_states - set(known)))
    wanted = {known[name] for name in wanted_states if name in known}
    producers = {int(p) for p in request.producer_id_filters}
    duration = int(getattr(request, "duration_filter", -1))
    now = coordinator.now_ms()
    listed = []
    for transactional_id, metadata in sorted(coordinator.transactions.items()):
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
    return build(module.ListTransactionsResponse, error_code=ErrorCode.none,
                 unknown_state_filters=unknown, transaction_states=tuple(listed))
