"""What a KIP-848 consumer group is made of. Plain data, no I/O and no clock.

A :class:`ConsumerGroup` has a *group epoch* (bumped whenever membership, a subscription or
the subscribed topics' partitions change), a *target assignment* computed by the group's
assignor at some *assignment epoch*, and members that each converge to their target one
heartbeat at a time. A member's *member epoch* reaches the assignment epoch once it holds its
target, or as much of it as other members have released (see
:mod:`~headrace.groups.consumer.reconciliation`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from headrace.groups.model import JoinProtocol

TopicPartition = tuple[str, int]

#: Member epochs with a meaning of their own in ConsumerGroupHeartbeat.
JOIN_EPOCH = 0
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2


class MemberState(enum.StrEnum):
    """Kafka's MemberState names."""

    STABLE = "stable"
    #: holds partitions the target gave to someone else; must revoke them before moving on
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    #: at the target epoch, but waiting for others to release part of its target
    UNRELEASED_PARTITIONS = "unreleased_partitions"


class ConsumerGroupState(enum.StrEnum):
    """Kafka's ConsumerGroupState names, which ListGroups and ConsumerGroupDescribe report."""

    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class ClassicMembership:
    """What a classic-protocol member of a consumer group (KIP-848's online migration) joined
    with: it speaks JoinGroup/SyncGroup/Heartbeat, and its protocols are kept so the group can
    become classic again when the last consumer-protocol member leaves."""

    session_timeout_ms: int
    protocol_type: str
    protocols: tuple[JoinProtocol, ...]


@dataclass(slots=True)
class ConsumerMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    rebalance_timeout_ms: int = 300_000
    subscribed_topic_names: tuple[str, ...] = ()
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    member_epoch: int = 0
    previous_member_epoch: int = -1
    state: MemberState = MemberState.STABLE
    assigned: frozenset[TopicPartition] = frozenset()
    pending_revocation: frozenset[TopicPartition] = frozenset()
    #: monotonic deadlines, never stored: a loaded group gives every member a fresh session
    session_deadline_ms: int = 0
    revocation_deadline_ms: int | None = None
    #: set for a member that joined with the classic protocol (JoinGroup), None otherwise
    classic: ClassicMembership | None = None

    def owned(self) -> frozenset[TopicPartition]:
        """What the member may still be reading: its assignment and what it must revoke."""
        return self.assigned | self.pending_revocation


@dataclass(slots=True)
class ConsumerGroup:
    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    assignor_name: str = ""
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    #: instance id -> member id of static members
    static_members: dict[str, str] = field(default_factory=dict)
    #: member id -> the partitions the assignor gave it at ``assignment_epoch``
    target: dict[str, frozenset[TopicPartition]] = field(default_factory=dict)
    #: the subscribed topics the target was computed from: name -> (topic id hex, partitions)
    subscribed_topics: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def state(self) -> ConsumerGroupState:
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.group_epoch > self.assignment_epoch:
            return ConsumerGroupState.ASSIGNING
        for member in self.members.values():
            if (
                member.member_epoch != self.assignment_epoch
                or member.state is not MemberState.STABLE
            ):
                return ConsumerGroupState.RECONCILING
        return ConsumerGroupState.STABLE

    def owner_of(self) -> dict[TopicPartition, str]:
        """Who may be reading each partition now (assigned or pending revocation)."""
        owners: dict[TopicPartition, str] = {}
        for member in self.members.values():
            for tp in member.owned():
                owners[tp] = member.member_id
        return owners
