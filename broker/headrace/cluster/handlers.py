"""Kafka APIs a clustered broker serves differently or additionally.

* Fetch (v4-12) for consumers AND followers: consumers see records below the high watermark
  and are fenced by ``current_leader_epoch``; followers (``replica_id >= 0``) read up to the log
  end and report their progress by the offset they ask for.
* OffsetForLeaderEpoch (v0-4, KIP-101/279): end offset of an epoch, for follower truncation and
  librdkafka's consumer-side epoch validation.
* ElectLeaders (v0-2): preferred-leader election through the etcd metadata.
* DescribeCluster (v0-1): brokers, racks and the controller.
* AlterPartitionReassignments / ListPartitionReassignments (v0, KIP-455).

They replace/extend the single-broker handlers only when the broker runs with ``--metadata``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode

from headrace.cluster.replica_manager import ClusteredReplicaManager
from headrace.protocol.codec import PreEncodedResponse
from headrace.protocol.fetch import API_KEY as FETCH_KEY
from headrace.protocol.fetch import MAX_VERSION as FETCH_MAX
from headrace.protocol.fetch import MIN_VERSION as FETCH_MIN
from headrace.protocol.fetch import PartitionData, encode_fetch_body
from headrace.server.dispatch import ApiHandler, RequestContext
from headrace.server.errors import KafkaError
from headrace.server.handlers.common import NO_THROTTLE, build, response_classes
from headrace.storage import LogRead

if TYPE_CHECKING:
    from headrace.cluster.node import ClusterNode

OFFSET_FOR_LEADER_EPOCH_KEY = 23
ELECT_LEADERS_KEY = 43
DESCRIBE_CLUSTER_KEY = 60
ALTER_PARTITION_REASSIGNMENTS_KEY = 45
LIST_PARTITION_REASSIGNMENTS_KEY = 46
_FETCH_SESSION_ID_NOT_FOUND = 70


def _replicas(ctx: RequestContext) -> ClusteredReplicaManager:
    manager = ctx.broker.replicas
    assert isinstance(manager, ClusteredReplicaManager)
    return manager


def _read_round(
    manager: ClusteredReplicaManager, request: Any, version: int, reads: list[LogRead]
) -> tuple[list[tuple[str, list[PartitionData]]], int, bool]:
    replica_id = int(getattr(request, "replica_id", -1))
    from_follower = replica_id >= 0
    budget = max(int(request.max_bytes), 0)
    total = 0
    any_error = False
    topics = []
    for fetch_topic in request.topics:
        name = fetch_topic.topic
        partitions = []
        for fetch_partition in fetch_topic.partitions:
            index = int(fetch_partition.partition)
            offset = int(fetch_partition.fetch_offset)
            try:
                role = manager.leader_role(name, index)
                if version >= 9:
                    manager.check_epoch(role, int(fetch_partition.current_leader_epoch))
                log_ = manager.log(name, index)
                if from_follower:
                    manager.record_follower_fetch(name, index, replica_id, offset)
                log_start, log_end = log_.log_start_offset, log_.log_end_offset
                high_watermark = role.progress.high_watermark
            except KafkaError as error:
                any_error = True
                partitions.append(PartitionData(index, error.code, -1, -1, -1))
                continue
            data = PartitionData(index, 0, high_watermark, high_watermark, log_start)
            limit_offset = log_end if from_follower else high_watermark
            # Like Kafka, only offsets outside the log are out of range: a consumer between
            # the high watermark and the log end (e.g. just after a leader change, before the
            # new leader's HW caught up) simply gets nothing yet.
            if offset < log_start or offset > log_end:
                data.error_code = ErrorCode.offset_out_of_range
                any_error = True
            elif offset < limit_offset and (budget > 0 or total == 0):
                limit = max(min(int(fetch_partition.partition_max_bytes), budget), 1)
                try:
                    if from_follower:
                        read = manager.read_for_follower(name, index, offset, limit)
                    else:
                        read = manager.read(name, index, offset, limit)
                except KafkaError as error:
                    data.error_code = error.code
                    any_error = True
                else:
                    if total > 0 and read.size > limit:
                        # Only the first partition with data may exceed the limits (as in
                        # headrace.server.handlers.fetch, which this loop mirrors).
                        read.close()
                    else:
                        reads.append(read)
                        data.records = list(read.regions)
                        total += read.size
                        budget -= read.size
            partitions.append(data)
        topics.append((name, partitions))
    return topics, total, any_error


async def handle_fetch(request: Any, ctx: RequestContext) -> Any:
    broker = ctx.broker
    manager = _replicas(ctx)
    version = ctx.api_version
    session_id = int(getattr(request, "session_id", 0))
    session_epoch = int(getattr(request, "session_epoch", -1))
    if session_id != 0 and session_epoch not in (0, -1):
        return PreEncodedResponse(
            FETCH_KEY,
            version >= 12,
            encode_fetch_body(version, [], error_code=_FETCH_SESSION_ID_NOT_FOUND),
            _FETCH_SESSION_ID_NOT_FOUND,
        )
    deadline = time.monotonic() + request.max_wait.total_seconds()
    min_bytes = int(request.min_bytes)
    keys = [(t.topic, int(p.partition)) for t in request.topics for p in t.partitions]
    while True:
        reads: list[LogRead] = []
        try:
            topics, total, any_error = _read_round(manager, request, version, reads)
        except BaseException:
            _close_all(reads)
            raise
        remaining = deadline - time.monotonic()
        if total >= min_bytes or any_error or remaining <= 0 or not keys:
            break
        _close_all(reads)
        await broker.wait_for_append(keys, remaining)
    if int(getattr(request, "replica_id", -1)) < 0:
        for name, partitions in topics:
            for partition in partitions:
                if partition.records_size:
                    broker.observer.on_fetched(name, partition.partition, partition.records_size)
    body = encode_fetch_body(version, topics)
    first_error = next((p.error_code for _, ps in topics for p in ps if p.error_code), 0)
    return PreEncodedResponse(
        FETCH_KEY, version >= 12, body, int(first_error), lambda: _close_all(reads)
    )


def _close_all(reads: list[LogRead]) -> None:
    for read in reads:
        read.close()


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

    async def handle_describe_cluster(request: Any, ctx: RequestContext) -> Any:
        return node.handle_describe_cluster(request, ctx)

    async def handle_alter_reassignments(request: Any, ctx: RequestContext) -> Any:
        return await node.handle_alter_partition_reassignments(request, ctx)

    async def handle_list_reassignments(request: Any, ctx: RequestContext) -> Any:
        return node.handle_list_partition_reassignments(request, ctx)

    return [
        ApiHandler(FETCH_KEY, FETCH_MIN, FETCH_MAX, handle_fetch),
        ApiHandler(OFFSET_FOR_LEADER_EPOCH_KEY, 0, 4, handle_offset_for_leader_epoch),
        ApiHandler(ELECT_LEADERS_KEY, 0, 2, handle_elect_leaders),
        ApiHandler(DESCRIBE_CLUSTER_KEY, 0, 1, handle_describe_cluster),
        ApiHandler(ALTER_PARTITION_REASSIGNMENTS_KEY, 0, 0, handle_alter_reassignments),
        ApiHandler(LIST_PARTITION_REASSIGNMENTS_KEY, 0, 0, handle_list_reassignments),
    ]
