"""Kafka APIs a clustered broker serves differently or additionally.

(Fetch, InitProducerId and DescribeCluster are not here: the server's single handlers serve
both modes through the replica manager, producer-id and metadata-view seams the cluster supplies
to the broker.)

* OffsetForLeaderEpoch (v0-4, KIP-101/279): end offset of an epoch, for follower truncation and
  librdkafka's consumer-side epoch validation.
* ElectLeaders (v0-2): preferred-leader election through the etcd metadata.
* AlterPartitionReassignments / ListPartitionReassignments (v0, KIP-455).

They replace/extend the single-broker handlers only when the broker runs with ``--metadata``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode

from headrace.cluster.decisions import ReassignmentError, cancel_reassignment, start_reassignment
from headrace.cluster.model import NO_LEADER
from headrace.cluster.replica_manager import ClusteredReplicaManager
from headrace.core.errors import KafkaError
from headrace.core.requests import ApiHandler, RequestContext
from headrace.core.responses import build, partition_results, response_classes

if TYPE_CHECKING:
    from headrace.cluster.node import ClusterNode

OFFSET_FOR_LEADER_EPOCH_KEY = 23
ELECT_LEADERS_KEY = 43
ALTER_PARTITION_REASSIGNMENTS_KEY = 45
LIST_PARTITION_REASSIGNMENTS_KEY = 46


async def handle_offset_for_leader_epoch(
    manager: ClusteredReplicaManager, request: Any, ctx: RequestContext
) -> Any:
    module = response_classes(OFFSET_FOR_LEADER_EPOCH_KEY, ctx.api_version)

    def answer(topic: str, item: Any) -> Any:
        index = int(item.partition)
        role = manager.leader_role(topic, index)
        manager.check_epoch(role, int(getattr(item, "current_leader_epoch", -1)))
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

    def failed(topic: str, item: Any, code: ErrorCode) -> Any:
        return build(module.EpochEndOffset, error_code=code, partition=int(item.partition),
                     leader_epoch=-1, end_offset=-1)

    topics = partition_results(
        ctx, request.topics, answer=answer, failed=failed, name_of=lambda t: str(t.topic),
        topic=lambda name, partitions: build(
            module.OffsetForLeaderTopicResult, topic=name, partitions=partitions),
    )
    return build(module.OffsetForLeaderEpochResponse, topics=topics)


async def _elect_leaders(node: ClusterNode, request: Any, ctx: RequestContext) -> Any:
    module = response_classes(43, ctx.api_version)
    election_type = int(getattr(request, "election_type", 0))
    snapshot = node.store.snapshot()
    if request.topic_partitions is None:
        wanted = sorted(snapshot.partitions)
    else:
        wanted = [
            (t.topic, int(p)) for t in request.topic_partitions for p in t.partitions
        ]
    results: dict[str, list[Any]] = {}
    written = {
        (s.topic, s.partition)
        for s in await node.controller.elect_preferred_leaders(
            wanted, unclean=election_type == 1
        )
    }
    for key in wanted:
        state = snapshot.partitions.get(key)
        if state is None:
            code, message = ErrorCode.unknown_topic_or_partition, "unknown partition"
        elif key in written:
            code, message = ErrorCode.none, None
        elif election_type == 1 and state.leader != NO_LEADER:
            code, message = ErrorCode.election_not_needed, "the partition has a leader"
        elif election_type == 1:
            code, message = (ErrorCode.eligible_leaders_not_available,
                             "no live replica to elect")
        elif state.replicas and state.leader == state.replicas[0]:
            code, message = ErrorCode.election_not_needed, "preferred leader already leads"
        else:
            code, message = (
                ErrorCode.preferred_leader_not_available,
                "preferred replica is not an eligible ISR member",
            )
        results.setdefault(key[0], []).append(
            build(module.PartitionResult, partition_id=key[1], error_code=code,
                  error_message=message)
        )
    return build(
        module.ElectLeadersResponse,
        error_code=ErrorCode.none,
        replica_election_results=tuple(
            build(module.ReplicaElectionResult, topic=topic, partition_result=tuple(parts))
            for topic, parts in results.items()
        ),
    )

async def _alter_partition_reassignments(
    node: ClusterNode, request: Any, ctx: RequestContext
) -> Any:
    module = response_classes(45, ctx.api_version)
    snapshot = node.store.snapshot()
    topics = []
    for topic in request.topics:
        results = []
        for item in topic.partitions:
            key = (topic.name, int(item.partition_index))
            state = snapshot.partitions.get(key)
            code, message = ErrorCode.none, None
            try:
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
                        raise KafkaError(
                            ErrorCode.invalid_replica_assignment, str(error)
                        ) from error
                if proposal is not None:
                    expected = node.store.cache.partition_revision(*key)
                    if not await node.store.write_partition(
                        proposal, expected_revision=expected
                    ):
                        raise KafkaError(ErrorCode.request_timed_out,
                                         "partition changed concurrently; retry")
            except KafkaError as error:
                code, message = error.code, error.message
            results.append(build(module.ReassignablePartitionResponse,
                                 partition_index=key[1], error_code=code,
                                 error_message=message))
        topics.append(build(module.ReassignableTopicResponse, name=topic.name,
                            partitions=tuple(results)))
    return build(module.AlterPartitionReassignmentsResponse, error_code=ErrorCode.none,
                 error_message=None, responses=tuple(topics))

def _list_partition_reassignments(node: ClusterNode, request: Any, ctx: RequestContext) -> Any:
    module = response_classes(46, ctx.api_version)
    snapshot = node.store.snapshot()
    if request.topics is None:
        wanted = None
    else:
        wanted = {
            (t.name, int(p)) for t in request.topics for p in t.partition_indexes
        }
    ongoing: dict[str, list[Any]] = {}
    for key, state in sorted(snapshot.partitions.items()):
        if not (state.adding or state.removing):
            continue
        if wanted is not None and key not in wanted:
            continue
        ongoing.setdefault(key[0], []).append(build(
            module.OngoingPartitionReassignment, partition_index=key[1],
            replicas=state.replicas, adding_replicas=state.adding,
            removing_replicas=state.removing,
        ))
    return build(
        module.ListPartitionReassignmentsResponse, error_code=ErrorCode.none,
        error_message=None,
        topics=tuple(build(module.OngoingTopicReassignment, name=name,
                           partitions=tuple(parts)) for name, parts in ongoing.items()),
    )


def cluster_api_handlers(node: ClusterNode) -> list[ApiHandler]:
    """The handlers a clustered broker adds to (or replaces in) the registry."""

    async def handle_list_reassignments(request: Any, ctx: RequestContext) -> Any:
        return _list_partition_reassignments(node, request, ctx)

    return [
        ApiHandler(OFFSET_FOR_LEADER_EPOCH_KEY, 0, 4,
                   functools.partial(handle_offset_for_leader_epoch, node.replicas)),
        ApiHandler(ELECT_LEADERS_KEY, 0, 2, functools.partial(_elect_leaders, node)),
        ApiHandler(ALTER_PARTITION_REASSIGNMENTS_KEY, 0, 0,
                   functools.partial(_alter_partition_reassignments, node)),
        ApiHandler(LIST_PARTITION_REASSIGNMENTS_KEY, 0, 0, handle_list_reassignments),
    ]
