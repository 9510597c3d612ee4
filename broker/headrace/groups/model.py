"""What a consumer group is made of, shared by the state machine, the coordinator and the log.

A :class:`Group` holds its members, generation, chosen protocol and committed offsets; the
result types are the answers JoinGroup and SyncGroup get, and :class:`Effects` collects what
the asyncio layer must do after a state machine call. Plain data, no I/O and no clock.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field

from kio.schema.errors import ErrorCode


class GroupState(enum.StrEnum):
    """Kafka's names, which ListGroups and DescribeGroups report verbatim."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


def member_host(client_host: str) -> str:
    """A member's host as Kafka's coordinator records it: Java's ``InetAddress.toString()`` of the
    client's address, ``/127.0.0.1``, which DescribeGroups, ConsumerGroupDescribe and
    ``kafka-consumer-groups --members`` report."""
    return client_host if client_host.startswith("/") else f"/{client_host}"


@dataclass(frozen=True, slots=True)
class JoinProtocol:
    name: str
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """One JoinGroup call, whatever its version (the coordinator adds the clock)."""

    group_id: str
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    #: -1 for JoinGroup v0, which has none: the session timeout stands in.
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: tuple[JoinProtocol, ...]
    require_known_member_id: bool


@dataclass(slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: tuple[JoinProtocol, ...]
    assignment: bytes = b""
    awaiting_join: bool = False
    awaiting_sync: bool = False
    heartbeat_deadline_ms: int = 0

    def metadata_for(self, protocol_name: str | None) -> bytes:
        for protocol in self.protocols:
            if protocol.name == protocol_name:
                return protocol.metadata
        return b""

    def protocol_names(self) -> list[str]:
        return [protocol.name for protocol in self.protocols]


@dataclass(frozen=True, slots=True)
class MemberMetadata:
    """One entry of the member list the leader receives in its JoinGroup response."""

    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinResult:
    error: ErrorCode
    member_id: str
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str = ""
    members: tuple[MemberMetadata, ...] = ()


@dataclass(frozen=True, slots=True)
class PendingJoin:
    """JoinGroup parked until the rebalance completes; the answer arrives in the effects."""

    member_id: str


@dataclass(frozen=True, slots=True)
class SyncResult:
    error: ErrorCode
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp_ms: int


TopicPartition = tuple[str, int]


@dataclass(slots=True)
class Group:
    group_id: str
    state: GroupState = GroupState.EMPTY
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    #: member ids handed out with MEMBER_ID_REQUIRED, mapped to the deadline for their rejoin
    pending_members: dict[str, int] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)
    offsets: dict[TopicPartition, CommittedOffset] = field(default_factory=dict)
    rebalance_deadline_ms: int | None = None
    #: While the initial rebalance delay runs (Kafka's InitialDelayedJoin): how much of the
    #: rebalance timeout is left for extensions; None when no initial delay is running.
    initial_delay_remaining_ms: int | None = None
    #: A member joined during the current delay window, so the window may be extended once.
    joined_during_initial_delay: bool = False
    sync_deadline_ms: int | None = None
    rebalances: int = 0

    def is_empty(self) -> bool:
        return not self.members

    def candidate_protocols(self) -> set[str]:
        """Protocols every current member supports."""
        names: set[str] | None = None
        for member in self.members.values():
            member_names = set(member.protocol_names())
            names = member_names if names is None else names & member_names
        return names or set()

    def select_protocol(self) -> str:
        """Each member votes for its most preferred candidate; ties go to the smallest name."""
        candidates = self.candidate_protocols()
        votes: Counter[str] = Counter()
        for member in self.members.values():
            for name in member.protocol_names():
                if name in candidates:
                    votes[name] += 1
                    break
        return min(votes, key=lambda name: (-votes[name], name))

    def all_members_joined(self) -> bool:
        return not self.pending_members and all(m.awaiting_join for m in self.members.values())

    def member_error(self, member_id: str, group_instance_id: str | None) -> ErrorCode:
        """Whether a call from ``member_id`` (as ``group_instance_id``) may act on the group:
        an old incarnation of a static member is fenced, an unknown member refused."""
        if group_instance_id is not None:
            known = self.static_members.get(group_instance_id)
            if known is not None and known != member_id:
                return ErrorCode.fenced_instance_id
        if member_id not in self.members:
            return ErrorCode.unknown_member_id
        return ErrorCode.none


@dataclass(slots=True)
class Effects:
    """What the async layer must do after a state machine call."""

    join_results: list[tuple[str, str, JoinResult]] = field(default_factory=list)
    sync_results: list[tuple[str, str, SyncResult]] = field(default_factory=list)
    groups_to_store: set[str] = field(default_factory=set)
    rebalances_completed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.join_results or self.sync_results or self.groups_to_store
            or self.rebalances_completed
        )
