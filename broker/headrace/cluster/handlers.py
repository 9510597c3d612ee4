"""Kafka APIs a clustered broker serves differently or additionally.

(Fetch, InitProducerId and DescribeCluster are not here: the server's single handlers serve
both modes through the replica manager, producer-id and metadata-view seams the cluster supplies
to the broker.)

* OffsetForLeaderEpoch (v2-4, KIP-101/279): end offset of an epoch, for follower truncation and
  librdkafka's consumer-side epoch validation.
* ElectLeaders (v0-2): preferred-leader election through the etcd metadata.
* AlterPartitionReassignments / ListPartitionReassignments (v0, KIP-455).

They replace/extend the single-broker handlers only when the broker runs with ``--metadata``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from kio.schema.errors import ErrorCode

from headrace.cluster.decisions import ReassignmentError, cancel_reassignment, start_reassignment
from headrace.cluster.model import NO_LEADER
from headrace.cluster.replica_manager import ClusteredReplicaManager
from headrace.core.errors import KafkaError
from headrace.core.requests import ApiHandler, KafkaApi, RequestContext
from headrace.core.responses import build, by_topic, partition_results, require
from headrace.core.security import CLUSTER_NAME, Action, Operation, ResourceType

if TYPE_CHECKING:
    from kio.schema.alter_partition_reassignments.v0.request import (
        AlterPartitionReassignmentsRequest,
        ReassignablePartition,
    )
    from kio.schema.list_partition_reassignments.v0.request import (
        ListPartitionReassignmentsRequest,
    )

    from headrace.cluster.node import ClusterNode
    from headrace.core.api_types import (
        AlterPartitionReassignmentsResponses,
        ElectLeadersRequests,
        ElectLeadersResponses,
        ListPartitionReassignmentsResponses,
        OffsetForLeaderEpochRequests,
        OffsetForLeaderEpochResponses,
    )

OFFSET_FOR_LEADER_EPOCH: KafkaApi[OffsetForLeaderEpochRequests, OffsetForLeaderEpochResponses] = (
    KafkaApi(23)
)
ELECT_LEADERS: KafkaApi[ElectLeadersRequests, ElectLeadersResponses] = KafkaApi(43)
ALTER_PARTITION_REASSIGNMENTS: KafkaApi[
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponses
] = KafkaApi(45)
LIST_PARTITION_REASSIGNMENTS: KafkaApi[
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponses
] = KafkaApi(46)


class _EpochQuery(Protocol):
    @property
    def partition(self) -> int: ...

    @property
    def current_leader_epoch(self) -> int: ...

    @property
    def leader_epoch(self) -> int: ...


class _EpochTopic(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def partitions(self) -> Sequence[_EpochQuery]: ...


class OffsetForLeaderEpochQuery(Protocol):
    """What the handler reads of every OffsetForLeaderEpoch version."""

    @property
    def topics(self) -> Sequence[_EpochTopic]: ...


async def handle_offset_for_leader_epoch(
    manager: ClusteredReplicaManager, request: OffsetForLeaderEpochQuery, ctx: RequestContext
) -> OffsetForLeaderEpochResponses:
    module = OFFSET_FOR_LEADER_EPOCH.classes(ctx.api_version)

    async def answer(topic: str, item: _EpochQuery) -> object:
        index = int(item.partition)
        role = manager.leader_role(topic, index)
        manager.check_epoch(role, int(item.current_leader_epoch))
        log_ = manager.log(topic, index)
        requested = int(item.leader_epoch)
        if requested >= role.leader_epoch:
            # The current epoch (or a future one) extends to the log end (KIP-101).
            epoch, end_offset = role.leader_epoch, log_.log_end_offset
        else:
            epoch, end_offset = log_.end_offset_for_epoch(requested)
            if epoch == log_.latest_leader_epoch:
                end_offset = log_.log_end_offset
        return build(module.EpochEndOffset, error_code=ErrorCode.none, partition=index,
                     leader_epoch=epoch, end_offset=end_offset)

    def failed(topic: str, item: _EpochQuery, error: KafkaError) -> object:
        return build(module.EpochEndOffset, error_code=error.code, partition=int(item.partition),
                     leader_epoch=-1, end_offset=-1)

    async def check(topic: str) -> None:
        require(ctx, ResourceType.CLUSTER, CLUSTER_NAME)  # a follower's, without CLUSTER_ACTION

    topics = await partition_results(
        ctx, ((t.topic, t.partitions) for t in request.topics), answer=answer, failed=failed,
        topic=lambda name, partitions: build(
            module.OffsetForLeaderTopicResult, topic=name, partitions=partitions),
        check=check,
    )
    return build(OFFSET_FOR_LEADER_EPOCH.response(ctx.api_version), topics=topics)


async def _elect_leaders(
    node: ClusterNode, request: ElectLeadersRequests, ctx: RequestContext
) -> ElectLeadersResponses:
    module = ELECT_LEADERS.classes(ctx.api_version)
    if ctx.refused(ResourceType.CLUSTER, CLUSTER_NAME):
        return build(ELECT_LEADERS.response(ctx.api_version),
                     error_code=ErrorCode.cluster_authorization_failed,
                     replica_election_results=())
    election_type = int(getattr(request, "election_type", 0))
    snapshot = node.store.snapshot()
    wanted: list[tuple[str, int]]
    if request.topic_partitions is None:
        wanted = sorted(snapshot.partitions)
    else:
        wanted = [
            (t.topic, int(p)) for t in request.topic_partitions for p in t.partitions
        ]
    written = {
        (s.topic, s.partition)
        for s in await node.controller.elect_preferred_leaders(
            wanted, unclean=election_type == 1
        )
    }

    def outcome(key: tuple[str, int]) -> tuple[ErrorCode, str | None]:
        state = snapshot.partitions.get(key)
        if state is None:
            return ErrorCode.unknown_topic_or_partition, "unknown partition"
        if key in written:
            return ErrorCode.none, None
        if election_type == 1 and state.leader != NO_LEADER:
            return ErrorCode.election_not_needed, "the partition has a leader"
        if election_type == 1:
            return ErrorCode.eligible_leaders_not_available, "no live replica to elect"
        if state.replicas and state.leader == state.replicas[0]:
            return ErrorCode.election_not_needed, "preferred leader already leads"
        return (ErrorCode.preferred_leader_not_available,
                "preferred replica is not an eligible ISR member")

    def result(key: tuple[str, int]) -> object:
        code, message = outcome(key)
        return build(module.PartitionResult, partition_id=key[1], error_code=code,
                     error_message=message)

    return build(
        ELECT_LEADERS.response(ctx.api_version),
        error_code=ErrorCode.none,
        replica_election_results=by_topic(
            ((key, result(key)) for key in wanted),
            lambda topic, parts: build(module.ReplicaElectionResult, topic=topic,
                                       partition_result=parts),
        ),
    )


async def _alter_partition_reassignments(
    node: ClusterNode, request: AlterPartitionReassignmentsRequest, ctx: RequestContext
) -> AlterPartitionReassignmentsResponses:
    module = ALTER_PARTITION_REASSIGNMENTS.classes(ctx.api_version)
    if ctx.refused(ResourceType.CLUSTER, CLUSTER_NAME):
        return build(ALTER_PARTITION_REASSIGNMENTS.response(ctx.api_version),
                     error_code=ErrorCode.cluster_authorization_failed,
                     error_message="not authorized to move replicas", responses=())
    snapshot = node.store.snapshot()

    async def reassign(topic: str, item: ReassignablePartition) -> object:
        key = (topic, int(item.partition_index))
        state = snapshot.partitions.get(key)
        if state is None:
            raise KafkaError(ErrorCode.unknown_topic_or_partition, "unknown partition")
        if item.replicas is None:
            proposal = cancel_reassignment(state)
            if proposal is None:
                raise KafkaError(ErrorCode.no_reassignment_in_progress,
                                 "no reassignment in progress")
        else:
            try:
                proposal = start_reassignment(
                    state, [int(b) for b in item.replicas], snapshot.brokers
                )
            except ReassignmentError as error:
                raise KafkaError(ErrorCode.invalid_replica_assignment, str(error)) from error
        if proposal is not None:
            expected = node.store.cache.partition_revision(*key)
            if not await node.store.write_partition(proposal, expected_revision=expected):
                raise KafkaError(ErrorCode.request_timed_out,
                                 "partition changed concurrently; retry")
        return build(module.ReassignablePartitionResponse, partition_index=key[1],
                     error_code=ErrorCode.none, error_message=None)

    def failed(topic: str, item: ReassignablePartition, error: KafkaError) -> object:
        return build(module.ReassignablePartitionResponse,
                     partition_index=int(item.partition_index), error_code=error.code,
                     error_message=error.message)

    topics = await partition_results(
        ctx, ((t.name, t.partitions) for t in request.topics), answer=reassign, failed=failed,
        topic=lambda name, partitions: build(module.ReassignableTopicResponse, name=name,
                                             partitions=partitions),
    )
    return build(ALTER_PARTITION_REASSIGNMENTS.response(ctx.api_version),
                 error_code=ErrorCode.none, error_message=None, responses=topics)


async def _list_partition_reassignments(
    node: ClusterNode, request: ListPartitionReassignmentsRequest, ctx: RequestContext
) -> ListPartitionReassignmentsResponses:
    module = LIST_PARTITION_REASSIGNMENTS.classes(ctx.api_version)
    if ctx.refused(ResourceType.CLUSTER, CLUSTER_NAME):
        return build(LIST_PARTITION_REASSIGNMENTS.response(ctx.api_version),
                     error_code=ErrorCode.cluster_authorization_failed,
                     error_message="not authorized to describe the cluster", topics=())
    snapshot = node.store.snapshot()
    if request.topics is None:
        wanted = None
    else:
        wanted = {
            (t.name, int(p)) for t in request.topics for p in t.partition_indexes
        }
    ongoing = (
        (key, build(module.OngoingPartitionReassignment, partition_index=key[1],
                    replicas=state.replicas, adding_replicas=state.adding,
                    removing_replicas=state.removing))
        for key, state in sorted(snapshot.partitions.items())
        if (state.adding or state.removing) and (wanted is None or key in wanted)
    )
    return build(
        LIST_PARTITION_REASSIGNMENTS.response(ctx.api_version), error_code=ErrorCode.none,
        error_message=None,
        topics=by_topic(ongoing, lambda name, parts: build(
            module.OngoingTopicReassignment, name=name, partitions=parts)),
    )


def cluster_api_handlers(node: ClusterNode) -> list[ApiHandler[Any, Any]]:
    """The handlers a clustered broker adds to (or replaces in) the registry."""
    return [
        # kio (like Kafka 4, KIP-896) has no OffsetForLeaderEpoch v0/v1.
        OFFSET_FOR_LEADER_EPOCH.handler(
            2, 4, functools.partial(handle_offset_for_leader_epoch, node.replicas),
            _offset_for_leader_epoch_actions),
        ELECT_LEADERS.handler(0, 2, functools.partial(_elect_leaders, node),
                              _on_cluster(Operation.ALTER)),
        ALTER_PARTITION_REASSIGNMENTS.handler(
            0, 0, functools.partial(_alter_partition_reassignments, node),
            _on_cluster(Operation.ALTER)),
        LIST_PARTITION_REASSIGNMENTS.handler(
            0, 0, functools.partial(_list_partition_reassignments, node),
            _on_cluster(Operation.DESCRIBE)),
    ]


def _on_cluster(operation: Operation) -> Callable[[object], Sequence[Action]]:
    def actions(request: object) -> Sequence[Action]:
        return [Action(operation, ResourceType.CLUSTER, CLUSTER_NAME)]

    return actions


def _offset_for_leader_epoch_actions(request: OffsetForLeaderEpochQuery) -> Sequence[Action]:
    """A follower's (replica id set) needs CLUSTER_ACTION, a client's DESCRIBE on each topic."""
    if int(getattr(request, "replica_id", -1)) >= 0:
        return [Action(Operation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME)]
    return [Action(Operation.DESCRIBE, ResourceType.TOPIC, t.topic) for t in request.topics]
