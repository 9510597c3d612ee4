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

from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode

from headrace.cluster.replica_manager import ClusteredReplicaManager
from headrace.core.errors import KafkaError
from headrace.core.requests import ApiHandler, RequestContext
from headrace.core.responses import NO_THROTTLE, build, response_classes

if TYPE_CHECKING:
    from headrace.cluster.node import ClusterNode

OFFSET_FOR_LEADER_EPOCH_KEY = 23
ELECT_LEADERS_KEY = 43
ALTER_PARTITION_REASSIGNMENTS_KEY = 45
LIST_PARTITION_REASSIGNMENTS_KEY = 46


def _replicas(ctx: RequestContext) -> ClusteredReplicaManager:
    manager = ctx.broker.replicas
    assert isinstance(manager, ClusteredReplicaManager)
    return manager


async def handle_offset_for_leader_epoch(request: Any, ctx: RequestContext) -> Any:
    manager = _replicas(ctx)
    module = response_classes(OFFSET_FOR_LEADER_EPOCH_KEY, ctx.api_version)
    results = []
    for topic in request.topics:
        partitions = []
        for item in topic.partitions:
            index = int(item.partition)
            try:
                role = manager.leader_role(topic.topic, index)
                manager.check_epoch(role, int(getattr(item, "current_leader_epoch", -1)))
                log_ = manager.log(topic.topic, index)
                requested = int(item.leader_epoch)
                if requested >= role.leader_epoch:
                    # The current epoch (or a future one) extends to the log end (KIP-101).
                    epoch, end_offset = role.leader_epoch, log_.log_end_offset
                else:
                    epoch, end_offset = log_.end_offset_for_epoch(requested)
                    if epoch == log_.latest_leader_epoch:
                        end_offset = log_.log_end_offset
                partitions.append(
                    build(
                        module.EpochEndOffset,
                        error_code=ErrorCode.none,
                        partition=index,
                        leader_epoch=epoch,
                        end_offset=end_offset,
                    )
                )
            except KafkaError as error:
                partitions.append(
                    build(
                        module.EpochEndOffset,
                        error_code=error.code,
                        partition=index,
                        leader_epoch=-1,
                        end_offset=-1,
                    )
                )
        results.append(build(module.OffsetForLeaderTopicResult, topic=topic.topic,
                             partitions=tuple(partitions)))
    return build(module.OffsetForLeaderEpochResponse, throttle_time=NO_THROTTLE,
                 topics=tuple(results))


def cluster_api_handlers(node: ClusterNode) -> list[ApiHandler]:
    """The handlers a clustered broker adds to (or replaces in) the registry."""

    async def handle_elect_leaders(request: Any, ctx: RequestContext) -> Any:
        return await node.handle_elect_leaders(request, ctx)

    async def handle_alter_reassignments(request: Any, ctx: RequestContext) -> Any:
        return await node.handle_alter_partition_reassignments(request, ctx)

    async def handle_list_reassignments(request: Any, ctx: RequestContext) -> Any:
        return node.handle_list_partition_reassignments(request, ctx)

    return [
        ApiHandler(OFFSET_FOR_LEADER_EPOCH_KEY, 0, 4, handle_offset_for_leader_epoch),
        ApiHandler(ELECT_LEADERS_KEY, 0, 2, handle_elect_leaders),
        ApiHandler(ALTER_PARTITION_REASSIGNMENTS_KEY, 0, 0, handle_alter_reassignments),
        ApiHandler(LIST_PARTITION_REASSIGNMENTS_KEY, 0, 0, handle_list_reassignments),
    ]
