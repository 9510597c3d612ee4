"""Kafka API handlers for consumer groups: kio requests in, coordinator calls, kio responses out.

Each API spans many versions whose kio classes differ only by which fields exist, so requests are
read with defaults for fields an old version lacks and responses are built by the server's
:func:`~headrace.core.responses.build`, which keeps only the fields the negotiated
version's class declares.
The server registers the list from :func:`group_api_handlers`; ApiVersions advertises it.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from typing import Any

from kio.schema.errors import ErrorCode

from headrace.core.requests import ApiHandler, RequestContext
from headrace.core.responses import build, response_classes
from headrace.groups.coordinator import CoordinatorNode, GroupCoordinator
from headrace.groups.model import JoinProtocol, JoinRequest
from headrace.groups.offsets import OffsetCommit
from headrace.protocol.codec import response_schema

FIND_COORDINATOR = 10
OFFSET_COMMIT = 8
OFFSET_FETCH = 9
JOIN_GROUP = 11
HEARTBEAT = 12
LEAVE_GROUP = 13
SYNC_GROUP = 14
DESCRIBE_GROUPS = 15
LIST_GROUPS = 16
DELETE_GROUPS = 42
OFFSET_DELETE = 47

#: (api key, min version, max version): what the clients in docs/groups.md need and kio knows.
SUPPORTED_VERSIONS: dict[int, tuple[int, int]] = {
    FIND_COORDINATOR: (0, 4),
    JOIN_GROUP: (0, 7),
    SYNC_GROUP: (0, 5),
    HEARTBEAT: (0, 4),
    LEAVE_GROUP: (0, 4),
    OFFSET_COMMIT: (2, 8),  # kio 0.6.5 (like Kafka 4) has no v0/v1
    OFFSET_FETCH: (1, 8),  # ... and no v0
    DESCRIBE_GROUPS: (0, 5),
    LIST_GROUPS: (0, 4),
    DELETE_GROUPS: (0, 2),
    OFFSET_DELETE: (0, 0),
}

_GROUP_KEY_TYPE = 0
_TRANSACTION_KEY_TYPE = 1


def _ms(value: Any) -> int:
    """kio hands durations as ``timedelta``; the coordinator counts milliseconds."""
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds() * 1000)
    return int(value)


def _client_id(ctx: RequestContext) -> str:
    return ctx.client_id or ""


#: Whether the cluster has this topic-partition (commits for others are refused one by one).
PartitionExists = Callable[[str, int], bool]


def _any_partition(topic: str, partition: int) -> bool:
    return True


#: The broker coordinating a transactional id (FindCoordinator key type 1), None while unknown.
TransactionCoordinatorLookup = Callable[[str], CoordinatorNode | None]


def group_api_handlers(
    coordinator: GroupCoordinator,
    partition_exists: PartitionExists = _any_partition,
    transaction_coordinator_for: TransactionCoordinatorLookup | None = None,
) -> list[ApiHandler]:
    """The handlers for every group and offset API; ``partition_exists`` comes from the
    broker's metadata (the default, for coordinator-only tests, accepts every partition);
    ``transaction_coordinator_for`` answers FindCoordinator for transactional ids."""
    lookups: dict[int, TransactionCoordinatorLookup] = {
        _GROUP_KEY_TYPE: coordinator.coordinator_for,
    }
    if transaction_coordinator_for is not None:
        lookups[_TRANSACTION_KEY_TYPE] = transaction_coordinator_for
    handles: dict[int, Callable[[Any, RequestContext], Any]] = {
        FIND_COORDINATOR: lambda req, ctx: _find_coordinator(lookups, req, ctx),
        JOIN_GROUP: lambda req, ctx: _join_group(coordinator, req, ctx),
        SYNC_GROUP: lambda req, ctx: _sync_group(coordinator, req, ctx),
        HEARTBEAT: lambda req, ctx: _heartbeat(coordinator, req, ctx),
        LEAVE_GROUP: lambda req, ctx: _leave_group(coordinator, req, ctx),
        OFFSET_COMMIT: lambda req, ctx: _offset_commit(coordinator, partition_exists, req, ctx),
        OFFSET_FETCH: lambda req, ctx: _offset_fetch(coordinator, req, ctx),
        DESCRIBE_GROUPS: lambda req, ctx: _describe_groups(coordinator, req, ctx),
        LIST_GROUPS: lambda req, ctx: _list_groups(coordinator, req, ctx),
        DELETE_GROUPS: lambda req, ctx: _delete_groups(coordinator, req, ctx),
        OFFSET_DELETE: lambda req, ctx: _offset_delete(coordinator, req, ctx),
    }
    return [
        ApiHandler(api_key, low, high, handles[api_key])
        for api_key, (low, high) in SUPPORTED_VERSIONS.items()
    ]


# --------------------------------------------------------------------------- coordinator


def _coordinator_entry(
    lookups: dict[int, TransactionCoordinatorLookup], key: str, key_type: int
) -> tuple[ErrorCode, str | None, int, str, int]:
    """(error, message, node id, host, port) for one FindCoordinator key."""
    lookup = lookups.get(key_type)
    if lookup is None:
        return ErrorCode.invalid_request, f"unsupported key type {key_type}", -1, "", -1
    node = lookup(key)
    if node is None:
        return ErrorCode.coordinator_not_available, None, -1, "", -1
    return ErrorCode.none, None, node.node_id, node.host, node.port


async def _find_coordinator(
    lookups: dict[int, TransactionCoordinatorLookup], request: Any, ctx: RequestContext
) -> Any:
    version = ctx.api_version
    key_type = int(getattr(request, "key_type", _GROUP_KEY_TYPE))
    if version >= 4:
        entry_cls = response_classes(FIND_COORDINATOR, version).Coordinator
        coordinators = []
        for key in request.coordinator_keys:
            error, message, node_id, host, port = _coordinator_entry(lookups, key, key_type)
            coordinators.append(
                build(
                    entry_cls,
                    key=key,
                    node_id=node_id,
                    host=host,
                    port=port,
                    error_code=error,
                    error_message=message,
                )
            )
        return build(
            response_schema(FIND_COORDINATOR, version),
            coordinators=tuple(coordinators),
        )
    error, message, node_id, host, port = _coordinator_entry(lookups, request.key, key_type)
    return build(
        response_schema(FIND_COORDINATOR, version),
        error_code=error,
        error_message=message,
        node_id=node_id,
        host=host,
        port=port,
    )


# ---------------------------------------------------------------------------- membership


async def _join_group(coordinator: GroupCoordinator, request: Any, ctx: RequestContext) -> Any:
    version = ctx.api_version
    session_ms = _ms(request.session_timeout)
    rebalance_ms = _ms(getattr(request, "rebalance_timeout", -1))
    result = await coordinator.join_group(
        JoinRequest(
            group_id=request.group_id,
            member_id=request.member_id,
            group_instance_id=getattr(request, "group_instance_id", None),
            client_id=_client_id(ctx),
            client_host=ctx.client_host,
            session_timeout_ms=session_ms,
            rebalance_timeout_ms=rebalance_ms if rebalance_ms >= 0 else session_ms,
            protocol_type=request.protocol_type,
            protocols=tuple(JoinProtocol(p.name, p.metadata) for p in request.protocols),
            require_known_member_id=version >= 4,
        )
    )
    member_cls = response_classes(JOIN_GROUP, version).JoinGroupResponseMember
    members = tuple(
        build(
            member_cls,
            member_id=m.member_id,
            group_instance_id=m.group_instance_id,
            metadata=m.metadata,
        )
        for m in result.members
    )
    # Before v7 the protocol name is a non-nullable string.
    protocol_name = result.protocol_name
    if protocol_name is None and version < 7:
        protocol_name = ""
    return build(
        response_schema(JOIN_GROUP, version),
        error_code=result.error,
        generation_id=result.generation_id,
        protocol_type=result.protocol_type,
        protocol_name=protocol_name,
        leader=result.leader_id,
        member_id=result.member_id,
        members=members,
    )


async def _sync_group(coordinator: GroupCoordinator, request: Any, ctx: RequestContext) -> Any:
    version = ctx.api_version
    result = await coordinator.sync_group(
        group_id=request.group_id,
        generation_id=int(request.generation_id),
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
        protocol_type=getattr(request, "protocol_type", None),
        protocol_name=getattr(request, "protocol_name", None),
        assignments={a.member_id: a.assignment for a in request.assignments},
    )
    return build(
        response_schema(SYNC_GROUP, version),
        error_code=result.error,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name,
        assignment=result.assignment,
    )


async def _heartbeat(coordinator: GroupCoordinator, request: Any, ctx: RequestContext) -> Any:
    error = coordinator.heartbeat(
        request.group_id,
        int(request.generation_id),
        request.member_id,
        getattr(request, "group_instance_id", None),
    )
    return build(
        response_schema(HEARTBEAT, ctx.api_version), error_code=error
    )


async def _leave_group(coordinator: GroupCoordinator, request: Any, ctx: RequestContext) -> Any:
    version = ctx.api_version
    if version < 3:
        group_error, errors = await coordinator.leave_group(
            request.group_id, [(request.member_id, None)]
        )
        error = group_error if group_error is not ErrorCode.none else errors[0]
        return build(
            response_schema(LEAVE_GROUP, version), error_code=error
        )
    leavers = [(m.member_id, m.group_instance_id) for m in request.members]
    group_error, errors = await coordinator.leave_group(request.group_id, leavers)
    member_cls = response_classes(LEAVE_GROUP, version).MemberResponse
    members = tuple(
        build(member_cls, member_id=member_id, group_instance_id=instance_id, error_code=error)
        for (member_id, instance_id), error in zip(leavers, errors, strict=True)
    )
    return build(
        response_schema(LEAVE_GROUP, version),
        error_code=group_error,
        members=members if group_error is ErrorCode.none else (),
    )


# ------------------------------------------------------------------------------- offsets


async def _offset_commit(
    coordinator: GroupCoordinator,
    partition_exists: PartitionExists,
    request: Any,
    ctx: RequestContext,
) -> Any:
    version = ctx.api_version
    commits: list[OffsetCommit] = []
    results: dict[tuple[str, int], ErrorCode] = {}
    for topic in request.topics:
        for p in topic.partitions:
            if not partition_exists(topic.name, int(p.partition_index)):
                # As Kafka: commits for partitions that do not exist are refused one by one.
                results[(topic.name, int(p.partition_index))] = (
                    ErrorCode.unknown_topic_or_partition
                )
                continue
            commits.append(
                OffsetCommit(
                    topic=topic.name,
                    partition=int(p.partition_index),
                    offset=int(p.committed_offset),
                    leader_epoch=int(getattr(p, "committed_leader_epoch", -1)),
                    metadata=p.committed_metadata,
                )
            )
    results |= await coordinator.commit_offsets(
        request.group_id,
        int(request.generation_id_or_member_epoch),
        request.member_id,
        getattr(request, "group_instance_id", None),
        commits,
    )
    module = response_classes(OFFSET_COMMIT, version)
    topics = _partition_errors(
        module.OffsetCommitResponseTopic,
        module.OffsetCommitResponsePartition,
        request.topics,
        results,
    )
    return build(response_schema(OFFSET_COMMIT, version), topics=topics)


def _partition_errors(
    topic_cls: type[Any],
    partition_cls: type[Any],
    requested_topics: Iterable[Any],
    errors: dict[tuple[str, int], ErrorCode],
) -> tuple[Any, ...]:
    """Response topics echoing each requested partition with its error (OffsetCommit/-Delete)."""
    return tuple(
        build(
            topic_cls,
            name=topic.name,
            partitions=tuple(
                build(
                    partition_cls,
                    partition_index=p.partition_index,
                    error_code=errors[(topic.name, int(p.partition_index))],
                )
                for p in topic.partitions
            ),
        )
        for topic in requested_topics
    )


def _fetch_group_offsets(
    coordinator: GroupCoordinator,
    version: int,
    group_id: str,
    requested: Iterable[Any] | None,
    partition_cls: type[Any],
    topic_cls: type[Any],
    require_stable: bool = False,
) -> tuple[ErrorCode, tuple[Any, ...]]:
    wanted = (
        None
        if requested is None
        else [(t.name, int(p)) for t in requested for p in t.partition_indexes]
    )
    error, offsets = coordinator.fetch_offsets(group_id, wanted)
    if error is not ErrorCode.none:
        # Before v2 there is no group-level error: report it on every partition.
        partitions_error = error if version < 2 else ErrorCode.none
        offsets = dict.fromkeys(wanted or [])
    else:
        partitions_error = ErrorCode.none
    by_topic: dict[str, list[Any]] = {}
    for (topic, partition), committed in offsets.items():
        partition_error = partitions_error
        if require_stable and coordinator.has_pending_offset(group_id, topic, partition):
            # KIP-447: a transaction's offset is not decided yet; the client asks again.
            partition_error, committed = ErrorCode.unstable_offset_commit, None
        by_topic.setdefault(topic, []).append(
            build(
                partition_cls,
                partition_index=partition,
                committed_offset=committed.offset if committed else -1,
                committed_leader_epoch=committed.leader_epoch if committed else -1,
                metadata=committed.metadata if committed else "",
                error_code=partition_error,
            )
        )
    topics = tuple(
        build(topic_cls, name=topic, partitions=tuple(parts)) for topic, parts in by_topic.items()
    )
    return error, topics


async def _offset_fetch(coordinator: GroupCoordinator, request: Any, ctx: RequestContext) -> Any:
    version = ctx.api_version
    if version >= 8:
        partition_cls = response_classes(OFFSET_FETCH, version).OffsetFetchResponsePartitions
        topic_cls = response_classes(OFFSET_FETCH, version).OffsetFetchResponseTopics
        group_cls = response_classes(OFFSET_FETCH, version).OffsetFetchResponseGroup
        groups = []
        for group in request.groups:
            error, topics = _fetch_group_offsets(
                coordinator, version, group.group_id, group.topics, partition_cls, topic_cls,
                bool(getattr(request, "require_stable", False)),
            )
            groups.append(
                build(group_cls, group_id=group.group_id, topics=topics, error_code=error)
            )
        return build(
            response_schema(OFFSET_FETCH, version), groups=tuple(groups)
        )
    partition_cls = response_classes(OFFSET_FETCH, version).OffsetFetchResponsePartition
    topic_cls = response_classes(OFFSET_FETCH, version).OffsetFetchResponseTopic
    error, topics = _fetch_group_offsets(
        coordinator, version, request.group_id, request.topics, partition_cls, topic_cls,
        bool(getattr(request, "require_stable", False)),
    )
    return build(
        response_schema(OFFSET_FETCH, version),
        topics=topics,
        error_code=error,
    )


async def _offset_delete(
    coordinator: GroupCoordinator, request: Any, ctx: RequestContext
) -> Any:
    version = ctx.api_version
    wanted = [(t.name, int(p.partition_index)) for t in request.topics for p in t.partitions]
    error, results = await coordinator.delete_offsets(request.group_id, wanted)
    module = response_classes(OFFSET_DELETE, version)
    topics: tuple[Any, ...] = ()
    if error is ErrorCode.none:
        topics = _partition_errors(
            module.OffsetDeleteResponseTopic,
            module.OffsetDeleteResponsePartition,
            request.topics,
            results,
        )
    return build(
        response_schema(OFFSET_DELETE, version),
        error_code=error,
        topics=topics,
    )


# --------------------------------------------------------------------------------- admin


async def _list_groups(coordinator: GroupCoordinator, request: Any, ctx: RequestContext) -> Any:
    version = ctx.api_version
    listed_cls = response_classes(LIST_GROUPS, version).ListedGroup
    overviews = coordinator.list_groups(getattr(request, "states_filter", ()))
    return build(
        response_schema(LIST_GROUPS, version),
        error_code=ErrorCode.none,
        groups=tuple(
            build(
                listed_cls,
                group_id=o.group_id,
                protocol_type=o.protocol_type,
                group_state=o.state,
            )
            for o in overviews
        ),
    )


async def _describe_groups(
    coordinator: GroupCoordinator, request: Any, ctx: RequestContext
) -> Any:
    version = ctx.api_version
    member_cls = response_classes(DESCRIBE_GROUPS, version).DescribedGroupMember
    group_cls = response_classes(DESCRIBE_GROUPS, version).DescribedGroup
    groups = []
    for group_id in request.groups:
        description = coordinator.describe_group(group_id)
        groups.append(
            build(
                group_cls,
                error_code=description.error,
                group_id=group_id,
                group_state=description.state,
                protocol_type=description.protocol_type,
                protocol_data=description.protocol_name,
                members=tuple(
                    build(
                        member_cls,
                        member_id=m.member_id,
                        group_instance_id=m.group_instance_id,
                        client_id=m.client_id,
                        client_host=m.client_host,
                        member_metadata=m.metadata,
                        member_assignment=m.assignment,
                    )
                    for m in description.members
                ),
                authorized_operations=-(2**31),  # Kafka's "not requested" sentinel
            )
        )
    return build(
        response_schema(DESCRIBE_GROUPS, version), groups=tuple(groups)
    )


async def _delete_groups(coordinator: GroupCoordinator, request: Any, ctx: RequestContext) -> Any:
    version = ctx.api_version
    result_cls = response_classes(DELETE_GROUPS, version).DeletableGroupResult
    results = await coordinator.delete_groups(list(request.groups_names))
    return build(
        response_schema(DELETE_GROUPS, version),
        results=tuple(
            build(result_cls, group_id=group_id, error_code=error)
            for group_id, error in results.items()
        ),
    )
