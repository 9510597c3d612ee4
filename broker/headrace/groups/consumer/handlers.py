"""Kafka API handlers for KIP-848 groups: ConsumerGroupHeartbeat (68) and -Describe (69).

ConsumerGroupHeartbeat v0 and v1 (v1: the client generates its member id, as Kafka 4 clients
do); ConsumerGroupDescribe v0 and v1 (v1 adds the member type, which Headrace reports as
"consumer" for every member: it has no classic members inside consumer groups). The broker
registers :func:`consumer_group_api_handlers` next to the classic group handlers, and
ApiVersions advertises these APIs because they are registered.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode

from headrace.core.requests import ApiHandler, KafkaApi, RequestContext
from headrace.core.responses import authorization_error, build
from headrace.core.security import Action, Operation, ResourceType
from headrace.groups.consumer.machine import ConsumerGroupMachine, HeartbeatRequest
from headrace.groups.consumer.model import ConsumerGroup, TopicPartition
from headrace.groups.coordinator import GroupCoordinator
from headrace.groups.model import member_host

if TYPE_CHECKING:
    from headrace.core.api_types import (
        ConsumerGroupDescribeRequests,
        ConsumerGroupDescribeResponses,
        ConsumerGroupHeartbeatRequests,
        ConsumerGroupHeartbeatResponses,
    )

CONSUMER_GROUP_HEARTBEAT = 68
CONSUMER_GROUP_DESCRIBE = 69
HEARTBEAT_API: KafkaApi[ConsumerGroupHeartbeatRequests, ConsumerGroupHeartbeatResponses] = (
    KafkaApi(CONSUMER_GROUP_HEARTBEAT)
)
DESCRIBE_API: KafkaApi[ConsumerGroupDescribeRequests, ConsumerGroupDescribeResponses] = (
    KafkaApi(CONSUMER_GROUP_DESCRIBE)
)

SUPPORTED_VERSIONS: dict[int, tuple[int, int]] = {
    CONSUMER_GROUP_HEARTBEAT: (0, 1),
    CONSUMER_GROUP_DESCRIBE: (0, 1),
}

#: ConsumerGroupDescribe v1's MemberType: 1 for a member speaking the consumer protocol.
_CONSUMER_MEMBER_TYPE = 1
#: ... and for a classic-protocol member of a consumer group (online migration)
_CLASSIC_MEMBER_TYPE = 0


def _ms(value: Any) -> int:
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds() * 1000)
    return int(value)


def consumer_group_api_handlers(coordinator: GroupCoordinator) -> list[ApiHandler[Any, Any]]:
    async def heartbeat(
        request: ConsumerGroupHeartbeatRequests, ctx: RequestContext
    ) -> ConsumerGroupHeartbeatResponses:
        return await _heartbeat(coordinator, request, ctx)

    async def describe(
        request: ConsumerGroupDescribeRequests, ctx: RequestContext
    ) -> ConsumerGroupDescribeResponses:
        return _describe(coordinator, request, ctx)

    return [
        HEARTBEAT_API.handler(*SUPPORTED_VERSIONS[CONSUMER_GROUP_HEARTBEAT], heartbeat,
                              _heartbeat_actions),
        DESCRIBE_API.handler(*SUPPORTED_VERSIONS[CONSUMER_GROUP_DESCRIBE], describe,
                             _describe_actions),
    ]


def _heartbeat_actions(request: ConsumerGroupHeartbeatRequests) -> Sequence[Action]:
    """Kafka's: READ on the group, DESCRIBE on every topic subscribed by name."""
    return [Action(Operation.READ, ResourceType.GROUP, request.group_id),
            *(Action(Operation.DESCRIBE, ResourceType.TOPIC, name)
              for name in request.subscribed_topic_names or ())]


def _describe_actions(request: ConsumerGroupDescribeRequests) -> Sequence[Action]:
    return [Action(Operation.DESCRIBE, ResourceType.GROUP, g) for g in request.group_ids]


async def _heartbeat(
    coordinator: GroupCoordinator, request: ConsumerGroupHeartbeatRequests, ctx: RequestContext
) -> ConsumerGroupHeartbeatResponses:
    version = ctx.api_version
    refused = None
    if ctx.refused(ResourceType.GROUP, request.group_id):
        refused = authorization_error(ResourceType.GROUP, request.group_id)
    elif ctx.denied:
        topics = [n for n in request.subscribed_topic_names or ()
                  if ctx.refused(ResourceType.TOPIC, n)]
        if topics:
            refused = authorization_error(ResourceType.TOPIC, ", ".join(sorted(topics)))
    if refused is not None:
        return build(HEARTBEAT_API.response(version), error_code=refused.code,
                     error_message=refused.message, member_id=None, member_epoch=-1,
                     heartbeat_interval=datetime.timedelta(0), assignment=None)
    owned = request.topic_partitions
    result = await coordinator.consumer_groups.heartbeat(
        HeartbeatRequest(
            group_id=request.group_id,
            member_id=request.member_id,
            member_epoch=int(request.member_epoch),
            api_version=version,
            instance_id=request.instance_id,
            rack_id=request.rack_id,
            rebalance_timeout_ms=_ms(request.rebalance_timeout),
            subscribed_topic_names=(
                None if request.subscribed_topic_names is None
                else tuple(request.subscribed_topic_names)
            ),
            subscribed_topic_regex=getattr(request, "subscribed_topic_regex", None),
            server_assignor=request.server_assignor,
            owned=(
                None if owned is None
                else tuple(
                    (tp.topic_id or uuid.UUID(int=0), tuple(int(p) for p in tp.partitions))
                    for tp in owned
                )
            ),
            client_id=ctx.client_id or "",
            client_host=member_host(ctx.client_host),
        )
    )
    module = HEARTBEAT_API.classes(version)
    assignment = None
    if result.assignment is not None:
        assignment = build(
            module.Assignment,
            topic_partitions=tuple(
                build(module.TopicPartitions, topic_id=topic_id, partitions=partitions)
                for topic_id, partitions in result.assignment
            ),
        )
    return build(
        HEARTBEAT_API.response(version),
        error_code=result.error,
        error_message=result.message,
        member_id=result.member_id,
        member_epoch=result.member_epoch,
        heartbeat_interval=datetime.timedelta(milliseconds=result.heartbeat_interval_ms),
        assignment=assignment,
    )


def _describe(
    coordinator: GroupCoordinator, request: ConsumerGroupDescribeRequests, ctx: RequestContext
) -> ConsumerGroupDescribeResponses:
    version = ctx.api_version
    module = DESCRIBE_API.classes(version)
    consumer_groups = coordinator.consumer_groups
    described = []
    for group_id in request.group_ids:
        error = coordinator.ownership_error(group_id)
        group = consumer_groups.groups.get(group_id)
        message = None
        if ctx.refused(ResourceType.GROUP, group_id):
            error, group = ErrorCode.group_authorization_failed, None
            message = f"not authorized to describe group {group_id}"
        if error is ErrorCode.none and group is None:
            # As Kafka: the admin client then falls back to DescribeGroups.
            error = ErrorCode.group_id_not_found
            message = f"Group {group_id} is not a consumer group."
        if group is None or error is not ErrorCode.none:
            described.append(
                build(
                    module.DescribedGroup,
                    error_code=error,
                    error_message=message,
                    group_id=group_id,
                    group_state="Dead",
                    group_epoch=-1,
                    assignment_epoch=-1,
                    assignor_name="",
                    members=(),
                )
            )
            continue
        described.append(_described_group(module, group, consumer_groups.machine))
    return build(DESCRIBE_API.response(version), groups=tuple(described))


def _described_group(module: Any, group: ConsumerGroup, machine: ConsumerGroupMachine) -> Any:
    def assignment(partitions: Iterable[TopicPartition]) -> Any:
        by_topic: dict[str, list[int]] = {}
        for topic, partition in partitions:
            by_topic.setdefault(topic, []).append(partition)
        return build(
            module.Assignment,
            topic_partitions=tuple(
                build(
                    module.TopicPartitions,
                    topic_id=uuid.UUID(hex=group.subscribed_topics[topic][0]),
                    topic_name=topic,
                    partitions=tuple(sorted(parts)),
                )
                for topic, parts in sorted(by_topic.items())
                if topic in group.subscribed_topics
            ),
        )

    members = tuple(
        build(
            module.Member,
            member_id=m.member_id,
            instance_id=m.instance_id,
            rack_id=m.rack_id,
            member_epoch=m.member_epoch,
            client_id=m.client_id,
            client_host=m.client_host,
            subscribed_topic_names=m.subscribed_topic_names,
            subscribed_topic_regex=m.subscribed_topic_regex,
            assignment=assignment(m.assigned),
            target_assignment=assignment(group.target.get(m.member_id, frozenset())),
            member_type=_CONSUMER_MEMBER_TYPE if m.classic is None else _CLASSIC_MEMBER_TYPE,
        )
        for m in group.members.values()
    )
    return build(
        module.DescribedGroup,
        error_code=ErrorCode.none,
        group_id=group.group_id,
        group_state=group.state.value,
        group_epoch=group.group_epoch,
        assignment_epoch=group.assignment_epoch,
        assignor_name=group.assignor_name or machine.settings.assignors[0],
        members=members,
    )
