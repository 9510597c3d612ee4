"""What each group API needs authorized: Kafka's operations on groups and topics (the
``actions`` of :mod:`headrace.groups.handlers`, consulted by the request pipeline only when an
authorizer is on)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from kio.schema.find_coordinator import v4 as find_coordinator_v4
from kio.schema.offset_fetch import v8 as offset_fetch_v8
from kio.schema.offset_fetch import v9 as offset_fetch_v9

from headrace.core.security import Action, Operation, ResourceType

if TYPE_CHECKING:
    from headrace.core.api_types import (
        DeleteGroupsRequests,
        DescribeGroupsRequests,
        FindCoordinatorRequests,
        OffsetDeleteRequests,
        OffsetFetchRequests,
    )

#: FindCoordinator's key types: a group, a transactional id.
GROUP_KEY_TYPE = 0
TRANSACTION_KEY_TYPE = 1
#: FindCoordinator key type → the resource its key names.
KEY_RESOURCES = {GROUP_KEY_TYPE: ResourceType.GROUP,
                 TRANSACTION_KEY_TYPE: ResourceType.TRANSACTIONAL_ID}


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Topics(Protocol):
    @property
    def topics(self) -> Sequence[_Named]: ...


class _GroupAndTopics(_Topics, Protocol):
    @property
    def group_id(self) -> str: ...


class _OneGroup(Protocol):
    @property
    def group_id(self) -> str: ...


def read_group(request: _OneGroup) -> Sequence[Action]:
    """Kafka's: READ on the group for membership (Join/Sync/Heartbeat/Leave)."""
    return [Action(Operation.READ, ResourceType.GROUP, request.group_id)]


def offset_commit_actions(request: _GroupAndTopics) -> Sequence[Action]:
    """READ on the group and on every topic committed."""
    return [*read_group(request),
            *(Action(Operation.READ, ResourceType.TOPIC, t.name) for t in request.topics)]


def offset_fetch_actions(request: OffsetFetchRequests) -> Sequence[Action]:
    """DESCRIBE on each group and on every topic named (all topics: filtered by the handler)."""
    asked: list[tuple[str, Iterable[_Named] | None]]
    if isinstance(request, offset_fetch_v8.OffsetFetchRequest | offset_fetch_v9.OffsetFetchRequest):
        asked = [(g.group_id, g.topics) for g in request.groups]
    else:
        asked = [(request.group_id, request.topics)]
    actions = []
    for group_id, topics in asked:
        actions.append(Action(Operation.DESCRIBE, ResourceType.GROUP, group_id))
        actions.extend(Action(Operation.DESCRIBE, ResourceType.TOPIC, t.name)
                       for t in topics or ())
    return actions


def find_coordinator_actions(request: FindCoordinatorRequests) -> Sequence[Action]:
    """DESCRIBE on the group or transactional id whose coordinator is asked for."""
    resource = KEY_RESOURCES.get(int(getattr(request, "key_type", GROUP_KEY_TYPE)))
    if resource is None:
        return []
    if isinstance(request, find_coordinator_v4.FindCoordinatorRequest):
        keys: Sequence[str] = request.coordinator_keys
    else:
        keys = [request.key]
    return [Action(Operation.DESCRIBE, resource, key) for key in keys]


def describe_groups_actions(request: DescribeGroupsRequests) -> Sequence[Action]:
    return [Action(Operation.DESCRIBE, ResourceType.GROUP, g) for g in request.groups]


def delete_groups_actions(request: DeleteGroupsRequests) -> Sequence[Action]:
    return [Action(Operation.DELETE, ResourceType.GROUP, g) for g in request.groups_names]


def offset_delete_actions(request: OffsetDeleteRequests) -> Sequence[Action]:
    """DELETE on the group, READ on every topic whose offsets go."""
    return [Action(Operation.DELETE, ResourceType.GROUP, request.group_id),
            *(Action(Operation.READ, ResourceType.TOPIC, t.name) for t in request.topics)]


__all__ = [
    "GROUP_KEY_TYPE", "KEY_RESOURCES", "TRANSACTION_KEY_TYPE", "delete_groups_actions",
    "describe_groups_actions", "find_coordinator_actions", "offset_commit_actions",
    "offset_delete_actions", "offset_fetch_actions", "read_group",
]
