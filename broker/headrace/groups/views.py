"""What ListGroups, DescribeGroups, the HTTP API and the CLI see of a group. Pure code.

Read-only snapshots, so callers outside the coordinator never hold its mutable groups. A
:class:`GroupDescription` describes either kind of group: a classic one (DescribeGroups' view,
member assignments as consumer-protocol bytes) or a KIP-848 consumer group
(ConsumerGroupDescribe's view, :func:`describe_consumer`); each member's
``assigned_partitions`` is what both kinds share, for consumers lists and lag.
"""

from __future__ import annotations

from dataclasses import dataclass

from kio.schema.consumer_protocol_assignment.v0 import ConsumerProtocolAssignment
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader

from headrace.groups.consumer.model import ConsumerGroup
from headrace.groups.model import Group, GroupState

_read_assignment = entity_reader(ConsumerProtocolAssignment)

#: The protocol type ListGroups reports for KIP-848 groups (and for classic consumer groups).
CONSUMER_PROTOCOL_TYPE = "consumer"


def decode_assignment(data: bytes) -> tuple[tuple[str, int], ...]:
    """Topic-partitions in a consumer protocol assignment (any version; empty if unreadable)."""
    if len(data) < 2:
        return ()
    try:
        assignment, _ = _read_assignment(memoryview(data)[2:], 0)
    except Exception:  # a non-consumer protocol (e.g. connect) carries other bytes
        return ()
    return tuple((tp.topic, int(p)) for tp in assignment.assigned_partitions
                 for p in tp.partitions)


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
    #: DescribeGroups' member assignment bytes (empty for a consumer-protocol member)
    assignment: bytes
    #: the topic-partitions the member holds, whichever the protocol
    assigned_partitions: tuple[tuple[str, int], ...] = ()


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
            decode_assignment(m.assignment) if stable else (),
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


def describe_consumer(group: ConsumerGroup, default_assignor: str) -> GroupDescription:
    """A KIP-848 group as ConsumerGroupDescribe reports it: the group epoch stands for the
    generation and the server-side assignor for the protocol; no leader."""
    members = tuple(
        MemberDescription(m.member_id, m.instance_id, m.client_id, m.client_host, b"", b"",
                          tuple(sorted(m.assigned)))
        for m in group.members.values()
    )
    return GroupDescription(
        ErrorCode.none,
        group.group_id,
        group.state.value,
        CONSUMER_PROTOCOL_TYPE,
        group.assignor_name or default_assignor,
        group.group_epoch,
        "",
        members,
    )


def describe_missing(group_id: str, error: ErrorCode) -> GroupDescription:
    """A group we do not coordinate (``error``) or do not know (Dead, as Kafka answers)."""
    state = "" if error is not ErrorCode.none else GroupState.DEAD.value
    return GroupDescription(error, group_id, state, "", "", -1, "", ())
