"""What ListGroups, DescribeGroups, the HTTP API and the CLI see of a group. Pure code.

Read-only snapshots, so callers outside the coordinator never hold its mutable groups.
"""

from __future__ import annotations

from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from headrace.groups.model import Group, GroupState


@dataclass(frozen=True, slots=True)
class GroupOverview:
    group_id: str
    protocol_type: str
    state: str


@dataclass(frozen=True, slots=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupDescription:
    error: ErrorCode
    group_id: str
    state: str
    protocol_type: str
    protocol_name: str
    generation_id: int
    leader_id: str
    members: tuple[MemberDescription, ...]
    rebalances: int = 0


def overview(group: Group) -> GroupOverview:
    return GroupOverview(group.group_id, group.protocol_type or "", group.state.value)


def describe(group: Group) -> GroupDescription:
    # As Kafka: protocol, member metadata and assignments only once the group is Stable.
    stable = group.state is GroupState.STABLE
    members = tuple(
        MemberDescription(
            m.member_id,
            m.group_instance_id,
            m.client_id,
            m.client_host,
            m.metadata_for(group.protocol_name) if stable else b"",
            m.assignment if stable else b"",
        )
        for m in group.members.values()
    )
    return GroupDescription(
        ErrorCode.none,
        group.group_id,
        group.state.value,
        group.protocol_type or "",
        (group.protocol_name or "") if stable else "",
        group.generation_id,
        group.leader_id or "",
        members,
        group.rebalances,
    )


def describe_missing(group_id: str, error: ErrorCode) -> GroupDescription:
    """A group we do not coordinate (``error``) or do not know (Dead, as Kafka answers)."""
    state = "" if error is not ErrorCode.none else GroupState.DEAD.value
    return GroupDescription(error, group_id, state, "", "", -1, "", ())
