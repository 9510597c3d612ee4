"""Kafka API handlers for consumer groups: kio requests in, coordinator calls, kio responses out.

Each API spans many versions whose kio classes differ only by which fields exist, so requests are
read with defaults for fields an old version lacks and responses are built by the server's
:func:`~headrace.core.responses.build`, which keeps only the fields the negotiated
version's class declares.
The server registers the list from :func:`group_api_handlers`; ApiVersions advertises it.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from kio.schema.errors import ErrorCode
from kio.schema.find_coordinator import v4 as find_coordinator_v4
from kio.schema.leave_group import v0 as leave_group_v0
from kio.schema.leave_group import v1 as leave_group_v1
from kio.schema.leave_group import v2 as leave_group_v2
from kio.schema.offset_fetch import v8 as offset_fetch_v8
from kio.schema.offset_fetch import v9 as offset_fetch_v9

from headrace.core.requests import ApiHandler, KafkaApi, Req, RequestContext, Resp
from headrace.core.responses import (
    NOT_REQUESTED,
    RequestTopic,
    authorization_error,
    authorized_operations,
    build,
    by_topic,
    partition_results,
)
from headrace.core.security import CLUSTER_NAME, Action, Operation, ResourceType
from headrace.groups.actions import (
    GROUP_KEY_TYPE,
    KEY_RESOURCES,
    TRANSACTION_KEY_TYPE,
    delete_groups_actions,
    describe_groups_actions,
    find_coordinator_actions,
    offset_commit_actions,
    offset_delete_actions,
    offset_fetch_actions,
    read_group,
)
from headrace.groups.coordinator import CoordinatorNode, GroupCoordinator
from headrace.groups.model import CommittedOffset, JoinProtocol, JoinRequest, member_host
from headrace.groups.offsets import OffsetCommit

if TYPE_CHECKING:
    from headrace.core.api_types import (
        DeleteGroupsRequests,
        DeleteGroupsResponses,
        DescribeGroupsRequests,
        DescribeGroupsResponses,
        FindCoordinatorRequests,
        FindCoordinatorResponses,
        HeartbeatRequests,
        HeartbeatResponses,
        JoinGroupRequests,
        JoinGroupResponses,
        LeaveGroupRequests,
        LeaveGroupResponses,
        ListGroupsRequests,
        ListGroupsResponses,
        OffsetCommitRequests,
        OffsetCommitResponses,
        OffsetDeleteRequests,
        OffsetDeleteResponses,
        OffsetFetchRequests,
        OffsetFetchResponses,
        SyncGroupRequests,
        SyncGroupResponses,
    )

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

FIND_COORDINATOR_API: KafkaApi[FindCoordinatorRequests, FindCoordinatorResponses] = KafkaApi(
    FIND_COORDINATOR
)
JOIN_GROUP_API: KafkaApi[JoinGroupRequests, JoinGroupResponses] = KafkaApi(JOIN_GROUP)
SYNC_GROUP_API: KafkaApi[SyncGroupRequests, SyncGroupResponses] = KafkaApi(SYNC_GROUP)
HEARTBEAT_API: KafkaApi[HeartbeatRequests, HeartbeatResponses] = KafkaApi(HEARTBEAT)
LEAVE_GROUP_API: KafkaApi[LeaveGroupRequests, LeaveGroupResponses] = KafkaApi(LEAVE_GROUP)
OFFSET_COMMIT_API: KafkaApi[OffsetCommitRequests, OffsetCommitResponses] = KafkaApi(OFFSET_COMMIT)
OFFSET_FETCH_API: KafkaApi[OffsetFetchRequests, OffsetFetchResponses] = KafkaApi(OFFSET_FETCH)
DESCRIBE_GROUPS_API: KafkaApi[DescribeGroupsRequests, DescribeGroupsResponses] = KafkaApi(
    DESCRIBE_GROUPS
)
LIST_GROUPS_API: KafkaApi[ListGroupsRequests, ListGroupsResponses] = KafkaApi(LIST_GROUPS)
DELETE_GROUPS_API: KafkaApi[DeleteGroupsRequests, DeleteGroupsResponses] = KafkaApi(
    DELETE_GROUPS
)
OFFSET_DELETE_API: KafkaApi[OffsetDeleteRequests, OffsetDeleteResponses] = KafkaApi(
    OFFSET_DELETE
)

#: (api key, min version, max version): what the clients in docs/groups.md need and kio knows.
SUPPORTED_VERSIONS: dict[int, tuple[int, int]] = {
    FIND_COORDINATOR: (0, 4),
    JOIN_GROUP: (0, 7),
    SYNC_GROUP: (0, 5),
    HEARTBEAT: (0, 4),
    LEAVE_GROUP: (0, 4),
    OFFSET_COMMIT: (2, 9),  # kio 0.6.5 (like Kafka 4) has no v0/v1; v9: KIP-848 epochs
    OFFSET_FETCH: (1, 9),  # ... and no v0
    DESCRIBE_GROUPS: (0, 5),
    LIST_GROUPS: (0, 4),
    DELETE_GROUPS: (0, 2),
    OFFSET_DELETE: (0, 0),
}



def _ms(value: datetime.timedelta | int) -> int:
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
#: A broker's (host, port) on a listener, by broker id and listener name (None: it has none).
ListenerEndpoint = Callable[[int, str], tuple[str, int] | None]


def group_api_handlers(
    coordinator: GroupCoordinator,
    partition_exists: PartitionExists = _any_partition,
    transaction_coordinator_for: TransactionCoordinatorLookup | None = None,
    listener_endpoint: ListenerEndpoint | None = None,
) -> list[ApiHandler[Any, Any]]:
    """The handlers for every group and offset API; ``partition_exists`` comes from the
    broker's metadata (the default, for coordinator-only tests, accepts every partition);
    ``transaction_coordinator_for`` answers FindCoordinator for transactional ids;
    ``listener_endpoint`` gives the coordinator's address on the listener the client is on
    (None: the coordinator's own address)."""
    lookups: dict[int, TransactionCoordinatorLookup] = {
        GROUP_KEY_TYPE: coordinator.coordinator_for,
    }
    if transaction_coordinator_for is not None:
        lookups[TRANSACTION_KEY_TYPE] = transaction_coordinator_for

    def serve(
        api: KafkaApi[Req, Resp],
        handle: Callable[[GroupCoordinator, Req, RequestContext], Awaitable[Resp]],
        actions: Callable[[Req], Sequence[Action]] | None = None,
    ) -> ApiHandler[Req, Resp]:
        return api.handler(*SUPPORTED_VERSIONS[api.key], functools.partial(handle, coordinator),
                           actions)

    find_coordinator = functools.partial(_find_coordinator, lookups, listener_endpoint)
    return [
        FIND_COORDINATOR_API.handler(*SUPPORTED_VERSIONS[FIND_COORDINATOR], find_coordinator,
                                     find_coordinator_actions),
        serve(JOIN_GROUP_API, _join_group, read_group),
        serve(SYNC_GROUP_API, _sync_group, read_group),
        serve(HEARTBEAT_API, _heartbeat, read_group),
        serve(LEAVE_GROUP_API, _leave_group, read_group),
        serve(OFFSET_COMMIT_API,
              functools.partial(_offset_commit, partition_exists=partition_exists),
              offset_commit_actions),
        serve(OFFSET_FETCH_API, _offset_fetch, offset_fetch_actions),
        serve(DESCRIBE_GROUPS_API, _describe_groups, describe_groups_actions),
        serve(LIST_GROUPS_API, _list_groups),
        serve(DELETE_GROUPS_API, _delete_groups, delete_groups_actions),
        serve(OFFSET_DELETE_API, _offset_delete, offset_delete_actions),
    ]


# --------------------------------------------------------------------------- coordinator


def _coordinator_entry(
    lookups: dict[int, TransactionCoordinatorLookup], key: str, key_type: int,
    ctx: RequestContext, listener_endpoint: ListenerEndpoint | None,
) -> tuple[ErrorCode, str | None, int, str, int]:
    """(error, message, node id, host, port) for one FindCoordinator key, addressed on the
    client's listener."""
    resource = KEY_RESOURCES.get(key_type)
    if resource is not None and ctx.refused(resource, key):
        error = authorization_error(resource, key)
        return error.code, error.message, -1, "", -1
    lookup = lookups.get(key_type)
    if lookup is None:
        return ErrorCode.invalid_request, f"unsupported key type {key_type}", -1, "", -1
    node = lookup(key)
    if node is None:
        return ErrorCode.coordinator_not_available, None, -1, "", -1
    if listener_endpoint is None:
        return ErrorCode.none, None, node.node_id, node.host, node.port
    endpoint = listener_endpoint(node.node_id, ctx.listener)
    if endpoint is None:  # the coordinator has no such listener (as Kafka answers then)
        return ErrorCode.coordinator_not_available, None, -1, "", -1
    return ErrorCode.none, None, node.node_id, *endpoint


async def _find_coordinator(
    lookups: dict[int, TransactionCoordinatorLookup],
    listener_endpoint: ListenerEndpoint | None,
    request: FindCoordinatorRequests,
    ctx: RequestContext,
) -> FindCoordinatorResponses:
    version = ctx.api_version
    response = FIND_COORDINATOR_API.response(version)
    key_type = int(getattr(request, "key_type", GROUP_KEY_TYPE))
    if isinstance(request, find_coordinator_v4.FindCoordinatorRequest):  # v4: batched keys
        entry_cls = FIND_COORDINATOR_API.classes(version).Coordinator
        coordinators = []
        for key in request.coordinator_keys:
            error, message, node_id, host, port = _coordinator_entry(
                lookups, key, key_type, ctx, listener_endpoint)
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
        return build(response, coordinators=tuple(coordinators))
    error, message, node_id, host, port = _coordinator_entry(
        lookups, request.key, key_type, ctx, listener_endpoint)
    return build(
        response,
        error_code=error,
        error_message=message,
        node_id=node_id,
        host=host,
        port=port,
    )


# ---------------------------------------------------------------------------- membership


async def _join_group(
    coordinator: GroupCoordinator, request: JoinGroupRequests, ctx: RequestContext
) -> JoinGroupResponses:
    version = ctx.api_version
    if ctx.refused(ResourceType.GROUP, request.group_id):
        return build(JOIN_GROUP_API.response(version),
                     error_code=ErrorCode.group_authorization_failed, generation_id=-1,
                     protocol_type=None, protocol_name=None if version >= 7 else "",
                     leader="", member_id="", members=())
    session_ms = _ms(request.session_timeout)
    rebalance_ms = _ms(getattr(request, "rebalance_timeout", -1))
    result = await coordinator.join_group(
        JoinRequest(
            group_id=request.group_id,
            member_id=request.member_id,
            group_instance_id=getattr(request, "group_instance_id", None),
            client_id=_client_id(ctx),
            client_host=member_host(ctx.client_host),
            session_timeout_ms=session_ms,
            rebalance_timeout_ms=rebalance_ms if rebalance_ms >= 0 else session_ms,
            protocol_type=request.protocol_type,
            protocols=tuple(JoinProtocol(p.name, p.metadata) for p in request.protocols),
            require_known_member_id=version >= 4,
        )
    )
    member_cls = JOIN_GROUP_API.classes(version).JoinGroupResponseMember
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
        JOIN_GROUP_API.response(version),
        error_code=result.error,
        generation_id=result.generation_id,
        protocol_type=result.protocol_type,
        protocol_name=protocol_name,
        leader=result.leader_id,
        member_id=result.member_id,
        members=members,
    )


async def _sync_group(
    coordinator: GroupCoordinator, request: SyncGroupRequests, ctx: RequestContext
) -> SyncGroupResponses:
    version = ctx.api_version
    if ctx.refused(ResourceType.GROUP, request.group_id):
        return build(SYNC_GROUP_API.response(version),
                     error_code=ErrorCode.group_authorization_failed, protocol_type=None,
                     protocol_name=None, assignment=b"")
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
        SYNC_GROUP_API.response(version),
        error_code=result.error,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name,
        assignment=result.assignment,
    )


async def _heartbeat(
    coordinator: GroupCoordinator, request: HeartbeatRequests, ctx: RequestContext
) -> HeartbeatResponses:
    if ctx.refused(ResourceType.GROUP, request.group_id):
        return build(HEARTBEAT_API.response(ctx.api_version),
                     error_code=ErrorCode.group_authorization_failed)
    error = coordinator.heartbeat(
        request.group_id,
        int(request.generation_id),
        request.member_id,
        getattr(request, "group_instance_id", None),
    )
    return build(HEARTBEAT_API.response(ctx.api_version), error_code=error)


_SINGLE_LEAVERS = (
    leave_group_v0.LeaveGroupRequest, leave_group_v1.LeaveGroupRequest,
    leave_group_v2.LeaveGroupRequest,
)


async def _leave_group(
    coordinator: GroupCoordinator, request: LeaveGroupRequests, ctx: RequestContext
) -> LeaveGroupResponses:
    version = ctx.api_version
    response = LEAVE_GROUP_API.response(version)
    if ctx.refused(ResourceType.GROUP, request.group_id):
        return build(response, error_code=ErrorCode.group_authorization_failed, members=())
    if isinstance(request, _SINGLE_LEAVERS):  # before v3, one member leaves
        group_error, errors = await coordinator.leave_group(
            request.group_id, [(request.member_id, None)]
        )
        error = group_error if group_error is not ErrorCode.none else errors[0]
        return build(response, error_code=error)
    leavers = [(m.member_id, m.group_instance_id) for m in request.members]
    group_error, errors = await coordinator.leave_group(request.group_id, leavers)
    member_cls = LEAVE_GROUP_API.classes(version).MemberResponse
    members = tuple(
        build(member_cls, member_id=member_id, group_instance_id=instance_id, error_code=error)
        for (member_id, instance_id), error in zip(leavers, errors, strict=True)
    )
    return build(
        response,
        error_code=group_error,
        members=members if group_error is ErrorCode.none else (),
    )


# ------------------------------------------------------------------------------- offsets


class _Indexed(Protocol):
    @property
    def partition_index(self) -> int: ...


class _Commit(_Indexed, Protocol):
    @property
    def committed_offset(self) -> int: ...

    @property
    def committed_metadata(self) -> str | None: ...


class OffsetCommitQuery(Protocol):
    """What the handler reads of every OffsetCommit version (``group_instance_id`` and
    ``committed_leader_epoch`` only where the version has them)."""

    @property
    def group_id(self) -> str: ...

    @property
    def generation_id_or_member_epoch(self) -> int: ...

    @property
    def member_id(self) -> str: ...

    @property
    def topics(self) -> Sequence[RequestTopic[_Commit]]: ...


async def _offset_commit(
    coordinator: GroupCoordinator,
    request: OffsetCommitQuery,
    ctx: RequestContext,
    *,
    partition_exists: PartitionExists,
) -> OffsetCommitResponses:
    version = ctx.api_version
    commits: list[OffsetCommit] = []
    results: dict[tuple[str, int], ErrorCode] = {}
    group_refused = ctx.refused(ResourceType.GROUP, request.group_id)
    for topic in request.topics:
        for p in topic.partitions:
            if group_refused:
                results[(topic.name, int(p.partition_index))] = (
                    ErrorCode.group_authorization_failed)
                continue
            if ctx.refused(ResourceType.TOPIC, topic.name):
                continue  # answered TOPIC_AUTHORIZATION_FAILED by partition_results
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
    if commits:
        results |= await coordinator.commit_offsets(
            request.group_id,
            int(request.generation_id_or_member_epoch),
            request.member_id,
            getattr(request, "group_instance_id", None),
            commits,
        )
    module = OFFSET_COMMIT_API.classes(version)
    topics = await _partition_errors(
        ctx,
        module.OffsetCommitResponseTopic,
        module.OffsetCommitResponsePartition,
        request.topics,
        results,
    )
    return build(OFFSET_COMMIT_API.response(version), topics=topics)


async def _partition_errors(
    ctx: RequestContext,
    topic_cls: type[Any],
    partition_cls: type[Any],
    requested_topics: Iterable[RequestTopic[_Indexed]],
    errors: dict[tuple[str, int], ErrorCode],
) -> tuple[object, ...]:
    """Response topics echoing each requested partition with its error (OffsetCommit/-Delete)."""

    def result(p: _Indexed, code: ErrorCode) -> object:
        return build(partition_cls, partition_index=p.partition_index, error_code=code)

    async def answer(name: str, p: _Indexed) -> object:
        return result(p, errors[(name, int(p.partition_index))])

    return await partition_results(
        ctx, ((t.name, t.partitions) for t in requested_topics), answer=answer,
        failed=lambda name, p, error: result(p, error.code),
        topic=lambda name, partitions: build(topic_cls, name=name, partitions=partitions),
    )


class _FetchTopic(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def partition_indexes(self) -> Sequence[int]: ...


def _fetch_group_offsets(
    coordinator: GroupCoordinator,
    ctx: RequestContext,
    group_id: str,
    requested: Iterable[_FetchTopic] | None,
    partition_cls: type[Any],
    topic_cls: type[Any],
    require_stable: bool = False,
) -> tuple[ErrorCode, tuple[object, ...]]:
    version = ctx.api_version
    wanted = (
        None
        if requested is None
        else [(t.name, int(p)) for t in requested for p in t.partition_indexes]
    )
    refused_topics = {name for name, _ in wanted or ()
                      if ctx.refused(ResourceType.TOPIC, name)}
    offsets: dict[tuple[str, int], CommittedOffset | None]
    if ctx.refused(ResourceType.GROUP, group_id):
        error, offsets = ErrorCode.group_authorization_failed, {}
    else:
        error, offsets = coordinator.fetch_offsets(
            group_id, None if wanted is None else [k for k in wanted
                                                   if k[0] not in refused_topics])
        if wanted is None:  # every topic: those the principal may not describe left out
            visible = set(ctx.visible(ResourceType.TOPIC, {name for name, _ in offsets}))
            offsets = {key: value for key, value in offsets.items() if key[0] in visible}
    if error is not ErrorCode.none:
        # Before v2 there is no group-level error: report it on every partition.
        partitions_error = error if version < 2 else ErrorCode.none
        offsets = dict.fromkeys(wanted or [])
    else:
        partitions_error = ErrorCode.none

    def result(key: tuple[str, int], committed: CommittedOffset | None) -> object:
        partition_error = partitions_error
        if key[0] in refused_topics:
            partition_error, committed = ErrorCode.topic_authorization_failed, None
        elif require_stable and coordinator.has_pending_offset(group_id, *key):
            # KIP-447: a transaction's offset is not decided yet; the client asks again.
            partition_error, committed = ErrorCode.unstable_offset_commit, None
        return build(
            partition_cls,
            partition_index=key[1],
            committed_offset=committed.offset if committed else -1,
            committed_leader_epoch=committed.leader_epoch if committed else -1,
            metadata=committed.metadata if committed else "",
            error_code=partition_error,
        )

    if error is ErrorCode.none:
        offsets = {key: offsets.get(key) for key in wanted} if wanted is not None else offsets
    topics = by_topic(
        ((key, result(key, committed)) for key, committed in offsets.items()),
        lambda topic, parts: build(topic_cls, name=topic, partitions=parts),
    )
    return error, topics


async def _offset_fetch(
    coordinator: GroupCoordinator, request: OffsetFetchRequests, ctx: RequestContext
) -> OffsetFetchResponses:
    version = ctx.api_version
    module = OFFSET_FETCH_API.classes(version)
    if isinstance(request, offset_fetch_v8.OffsetFetchRequest | offset_fetch_v9.OffsetFetchRequest):
        # v8+: several groups
        groups = []
        for group in request.groups:
            error, topics = _fetch_group_offsets(
                coordinator, ctx, group.group_id, group.topics,
                module.OffsetFetchResponsePartitions, module.OffsetFetchResponseTopics,
                bool(getattr(request, "require_stable", False)),
            )
            groups.append(build(module.OffsetFetchResponseGroup, group_id=group.group_id,
                                topics=topics, error_code=error))
        return build(OFFSET_FETCH_API.response(version), groups=tuple(groups))
    error, topics = _fetch_group_offsets(
        coordinator, ctx, request.group_id, request.topics,
        module.OffsetFetchResponsePartition, module.OffsetFetchResponseTopic,
        bool(getattr(request, "require_stable", False)),
    )
    return build(OFFSET_FETCH_API.response(version), topics=topics, error_code=error)


async def _offset_delete(
    coordinator: GroupCoordinator, request: OffsetDeleteRequests, ctx: RequestContext
) -> OffsetDeleteResponses:
    version = ctx.api_version
    wanted: list[tuple[str, int]] = [
        (t.name, int(p.partition_index)) for t in request.topics for p in t.partitions
        if not ctx.refused(ResourceType.TOPIC, t.name)
    ]
    if ctx.refused(ResourceType.GROUP, request.group_id):
        return build(OFFSET_DELETE_API.response(version),
                     error_code=ErrorCode.group_authorization_failed, topics=())
    error, results = await coordinator.delete_offsets(request.group_id, wanted)
    module = OFFSET_DELETE_API.classes(version)
    topics: tuple[object, ...] = ()
    if error is ErrorCode.none:
        topics = await _partition_errors(
            ctx,
            module.OffsetDeleteResponseTopic,
            module.OffsetDeleteResponsePartition,
            request.topics,
            results,
        )
    return build(OFFSET_DELETE_API.response(version), error_code=error, topics=topics)


# --------------------------------------------------------------------------------- admin


async def _list_groups(
    coordinator: GroupCoordinator, request: ListGroupsRequests, ctx: RequestContext
) -> ListGroupsResponses:
    version = ctx.api_version
    listed_cls = LIST_GROUPS_API.classes(version).ListedGroup
    overviews = coordinator.list_groups(getattr(request, "states_filter", ()))
    if not ctx.allows(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
        # Kafka's: DESCRIBE on the cluster lists every group, else those one may describe.
        visible = set(ctx.visible(ResourceType.GROUP, [o.group_id for o in overviews]))
        overviews = [o for o in overviews if o.group_id in visible]
    return build(
        LIST_GROUPS_API.response(version),
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
    coordinator: GroupCoordinator, request: DescribeGroupsRequests, ctx: RequestContext
) -> DescribeGroupsResponses:
    version = ctx.api_version
    member_cls = DESCRIBE_GROUPS_API.classes(version).DescribedGroupMember
    group_cls = DESCRIBE_GROUPS_API.classes(version).DescribedGroup
    groups = []
    for group_id in request.groups:
        if ctx.refused(ResourceType.GROUP, group_id):
            groups.append(build(
                group_cls, error_code=ErrorCode.group_authorization_failed, group_id=group_id,
                group_state="", protocol_type="", protocol_data="", members=(),
                authorized_operations=NOT_REQUESTED,
            ))
            continue
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
                authorized_operations=authorized_operations(ctx, ResourceType.GROUP, group_id)
                if getattr(request, "include_authorized_operations", False) else NOT_REQUESTED,
            )
        )
    return build(DESCRIBE_GROUPS_API.response(version), groups=tuple(groups))


async def _delete_groups(
    coordinator: GroupCoordinator, request: DeleteGroupsRequests, ctx: RequestContext
) -> DeleteGroupsResponses:
    version = ctx.api_version
    result_cls = DELETE_GROUPS_API.classes(version).DeletableGroupResult
    allowed: list[str] = [g for g in request.groups_names
                          if not ctx.refused(ResourceType.GROUP, g)]
    deleted = await coordinator.delete_groups(allowed) if allowed else {}
    results = {g: deleted.get(g, ErrorCode.group_authorization_failed)
               for g in request.groups_names}
    return build(
        DELETE_GROUPS_API.response(version),
        results=tuple(
            build(result_cls, group_id=group_id, error_code=error)
            for group_id, error in results.items()
        ),
    )
