"""The KIP-848 consumer-group state machine: ConsumerGroupHeartbeat, expiry, commit checks.

One :class:`ConsumerGroupMachine` holds every consumer-protocol group this coordinator owns.
A heartbeat does, in order (KIP-848's "group coordinator" section):

1. check the request, find or create the group and the member, and fence a member whose
   epoch is not the one the coordinator gave it (or the one before, when a response got lost);
2. record a changed subscription, and bump the *group epoch* when membership, a subscription
   or the subscribed topics (a regex match appearing, partitions added) changed;
3. when the group epoch is ahead of the target assignment, run the group's assignor;
4. move the member one step towards its target (:mod:`.reconciliation`) and answer with its
   member epoch and, when it changed, its assignment.

Like the classic machine it is free of I/O: it takes ``now_ms`` and a :class:`TopicCatalog`,
and records which groups changed (``dirty``) so the coordinator writes them to
``__consumer_offsets`` before answering. Timers: members that stop heartbeating for the
session timeout, or take longer than their rebalance timeout to revoke, are removed.
"""

from __future__ import annotations

import base64
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace

from kio.schema.errors import ErrorCode

from headrace.groups.consumer import assignors, subscriptions
from headrace.groups.consumer.model import (
    JOIN_EPOCH,
    LEAVE_EPOCH,
    STATIC_LEAVE_EPOCH,
    ConsumerGroup,
    ConsumerMember,
    MemberState,
    TopicPartition,
)
from headrace.groups.consumer.reconciliation import reconcile
from headrace.groups.consumer.subscriptions import TopicCatalog


@dataclass(frozen=True, slots=True)
class ConsumerGroupSettings:
    """Kafka's ``group.consumer.*`` broker settings."""

    session_timeout_ms: int = 45_000
    heartbeat_interval_ms: int = 5_000
    #: ``group.consumer.assignors``: the assignors members may ask for; the first is the default
    assignors: tuple[str, ...] = ("uniform", "range")


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    """One ConsumerGroupHeartbeat; None fields did not change since the member's last one."""

    group_id: str
    member_id: str
    member_epoch: int
    api_version: int = 1
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: tuple[str, ...] | None = None
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    #: (topic id, partitions) the member owns
    owned: tuple[tuple[uuid.UUID, tuple[int, ...]], ...] | None = None
    client_id: str = ""
    client_host: str = ""


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    error: ErrorCode
    message: str | None = None
    member_id: str | None = None
    member_epoch: int = -1
    heartbeat_interval_ms: int = 0
    #: (topic id, partitions) when the member must (re)learn its assignment
    assignment: tuple[tuple[uuid.UUID, tuple[int, ...]], ...] | None = None


def new_member_id() -> str:
    """Kafka's ``Uuid.randomUuid().toString()``: url-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


@dataclass(slots=True)
class ConsumerGroupMachine:
    settings: ConsumerGroupSettings = field(default_factory=ConsumerGroupSettings)
    groups: dict[str, ConsumerGroup] = field(default_factory=dict)
    #: groups whose stored form is out of date
    dirty: set[str] = field(default_factory=set)

    # ---------------------------------------------------------------------- heartbeat

    def heartbeat(
        self, request: HeartbeatRequest, now_ms: int, catalog: TopicCatalog
    ) -> HeartbeatResult:
        problem = self._invalid(request)
        if problem is not None:
            return HeartbeatResult(problem[0], problem[1])
        group = self.groups.get(request.group_id)
        if request.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(group, request)
        if group is None:
            if request.member_epoch != JOIN_EPOCH:
                return HeartbeatResult(
                    ErrorCode.group_id_not_found, f"consumer group {request.group_id} not found"
                )
            group = ConsumerGroup(request.group_id)
        found = self._member(group, request, now_ms)
        if isinstance(found, HeartbeatResult):
            return found
        member, bump = found
        self.groups[group.group_id] = group
        bump |= self._update_subscription(member, request)
        member.session_deadline_ms = now_ms + self.settings.session_timeout_ms
        resolved = subscriptions.resolve(
            {t for m in group.members.values() for t in m.subscribed_topic_names},
            {m.subscribed_topic_regex or "" for m in group.members.values()},
            catalog,
        )
        if resolved != group.subscribed_topics:
            group.subscribed_topics = resolved
            bump = True
        if bump:
            group.group_epoch += 1
            self.dirty.add(group.group_id)
        if group.group_epoch > group.assignment_epoch:
            self.assign(group)
        reported = self._owned_names(group, request.owned)
        epoch_before = member.member_epoch
        owners: dict[TopicPartition, str] | None = None

        def owned_by_other(tp: TopicPartition) -> bool:
            nonlocal owners
            if owners is None:
                owners = group.owner_of()
            return owners.get(tp, member.member_id) != member.member_id

        changed = reconcile(
            member,
            group.assignment_epoch,
            group.target.get(member.member_id, frozenset()),
            reported,
            owned_by_other,
            now_ms,
        )
        if changed or member.member_epoch != epoch_before:
            self.dirty.add(group.group_id)
        # The assignment travels when the member's view of it may be out of date.
        send_assignment = (
            changed
            or request.member_epoch != member.member_epoch
            or (reported is not None and reported != member.assigned)
        )
        return HeartbeatResult(
            ErrorCode.none,
            member_id=member.member_id,
            member_epoch=member.member_epoch,
            heartbeat_interval_ms=self.settings.heartbeat_interval_ms,
            assignment=self._by_topic_id(group, member.assigned) if send_assignment else None,
        )

    def _invalid(self, request: HeartbeatRequest) -> tuple[ErrorCode, str] | None:
        bad = ErrorCode.invalid_request
        if not request.group_id:
            return bad, "GroupId can't be empty."
        if request.api_version >= 1 and not request.member_id:
            return bad, "MemberId can't be empty."
        if request.member_epoch < STATIC_LEAVE_EPOCH:
            return bad, f"MemberEpoch {request.member_epoch} is invalid."
        if request.member_epoch == STATIC_LEAVE_EPOCH and request.instance_id is None:
            return bad, "InstanceId can't be null when leaving as a static member."
        if request.member_epoch == JOIN_EPOCH:
            if request.rebalance_timeout_ms < 0:
                return bad, "RebalanceTimeoutMs must be provided in first request."
            if request.owned:
                return bad, "TopicPartitions must be empty when (re-)joining."
            if request.subscribed_topic_names is None and request.subscribed_topic_regex is None:
                return bad, (
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request."
                )
        if request.subscribed_topic_regex:
            message = subscriptions.check_regex(request.subscribed_topic_regex)
            if message is not None:
                return ErrorCode.invalid_regular_expression, message
        assignor = request.server_assignor
        if assignor is not None and assignor not in self.settings.assignors:
            return ErrorCode.unsupported_assignor, f"ServerAssignor {assignor} is not supported."
        return None

    def _member(
        self, group: ConsumerGroup, request: HeartbeatRequest, now_ms: int
    ) -> tuple[ConsumerMember, bool] | HeartbeatResult:
        """The member this heartbeat is from, and whether its arrival bumps the group epoch."""
        member_id = request.member_id or new_member_id()
        existing = group.members.get(member_id)
        if request.member_epoch == JOIN_EPOCH:
            if request.instance_id is not None:
                static_id = group.static_members.get(request.instance_id)
                if static_id is not None and static_id != member_id:
                    return self._replace_static(group, static_id, member_id)
            if existing is not None:
                # Rejoining under the same id (after being fenced): it holds nothing now.
                existing.assigned = existing.pending_revocation = frozenset()
                existing.member_epoch, existing.state = JOIN_EPOCH, MemberState.STABLE
                return existing, True
            member = ConsumerMember(
                member_id,
                instance_id=request.instance_id,
                client_id=request.client_id,
                client_host=request.client_host,
                rebalance_timeout_ms=request.rebalance_timeout_ms,
            )
            group.members[member_id] = member
            if request.instance_id is not None:
                group.static_members[request.instance_id] = member_id
            return member, True
        if existing is None:
            return HeartbeatResult(
                ErrorCode.unknown_member_id, f"member {member_id} is not in the group"
            )
        received, current = request.member_epoch, existing.member_epoch
        if received != current:
            lost_response = (
                received == existing.previous_member_epoch
                and self._owned_within(group, request, existing)
            )
            if current == STATIC_LEAVE_EPOCH or received > current or not lost_response:
                return HeartbeatResult(
                    ErrorCode.fenced_member_epoch,
                    f"member epoch {received} is fenced; the current epoch is {current}",
                )
        return existing, False

    def _owned_within(
        self, group: ConsumerGroup, request: HeartbeatRequest, member: ConsumerMember
    ) -> bool:
        owned = self._owned_names(group, request.owned)
        return owned is None or owned <= member.assigned

    def _replace_static(
        self, group: ConsumerGroup, old_id: str, member_id: str
    ) -> tuple[ConsumerMember, bool] | HeartbeatResult:
        old = group.members[old_id]
        if old.member_epoch != STATIC_LEAVE_EPOCH:
            return HeartbeatResult(
                ErrorCode.unreleased_instance_id,
                f"static member {old.instance_id} is still in use by member {old_id}",
            )
        # KIP-345 under KIP-848: the new incarnation takes over the assignment, no rebalance.
        member = replace(old, member_id=member_id, member_epoch=old.previous_member_epoch)
        del group.members[old_id]
        group.members[member_id] = member
        assert member.instance_id is not None
        group.static_members[member.instance_id] = member_id
        if old_id in group.target:
            group.target[member_id] = group.target.pop(old_id)
        self.dirty.add(group.group_id)
        return member, False

    @staticmethod
    def _update_subscription(member: ConsumerMember, request: HeartbeatRequest) -> bool:
        changed = False
        if request.subscribed_topic_names is not None:
            names = tuple(sorted(set(request.subscribed_topic_names)))
            if names != member.subscribed_topic_names:
                member.subscribed_topic_names, changed = names, True
        if request.subscribed_topic_regex is not None:
            regex = request.subscribed_topic_regex or None
            if regex != member.subscribed_topic_regex:
                member.subscribed_topic_regex, changed = regex, True
        assignor = request.server_assignor
        if assignor is not None and assignor != member.server_assignor:
            member.server_assignor, changed = assignor, True
        if request.rebalance_timeout_ms >= 0:
            member.rebalance_timeout_ms = request.rebalance_timeout_ms
        if request.rack_id is not None:
            member.rack_id = request.rack_id
        member.client_id = request.client_id or member.client_id
        member.client_host = request.client_host or member.client_host
        return changed

    # ----------------------------------------------------------------- target assignment

    def assign(self, group: ConsumerGroup) -> None:
        """Compute the group's target assignment at its group epoch."""
        chosen = Counter(m.server_assignor for m in group.members.values() if m.server_assignor)
        name = (
            min(chosen, key=lambda n: (-chosen[n], n)) if chosen else self.settings.assignors[0]
        )
        spec = assignors.AssignmentSpec(
            members={
                m.member_id: assignors.MemberSpec(self.member_topics(group, m), m.assigned)
                for m in group.members.values()
            },
            partitions={name_: count for name_, (_, count) in group.subscribed_topics.items()},
        )
        group.target = assignors.ASSIGNORS[name](spec)
        group.assignor_name = name
        group.assignment_epoch = group.group_epoch
        self.dirty.add(group.group_id)

    @staticmethod
    def member_topics(group: ConsumerGroup, member: ConsumerMember) -> frozenset[str]:
        """The existing topics ``member`` reads: those it names and those its regex matches."""
        topics = {t for t in member.subscribed_topic_names if t in group.subscribed_topics}
        if member.subscribed_topic_regex:
            regex = member.subscribed_topic_regex
            topics.update(t for t in group.subscribed_topics if subscriptions.matches(regex, t))
        return frozenset(topics)

    @staticmethod
    def _owned_names(
        group: ConsumerGroup, owned: tuple[tuple[uuid.UUID, tuple[int, ...]], ...] | None
    ) -> frozenset[TopicPartition] | None:
        if owned is None:
            return None
        names = {topic_id: name for name, (topic_id, _) in group.subscribed_topics.items()}
        return frozenset(
            (names[topic_id.hex], int(p))
            for topic_id, partitions in owned
            if topic_id.hex in names
            for p in partitions
        )

    @staticmethod
    def _by_topic_id(
        group: ConsumerGroup, partitions: frozenset[TopicPartition]
    ) -> tuple[tuple[uuid.UUID, tuple[int, ...]], ...]:
        by_topic: dict[str, list[int]] = {}
        for topic, partition in partitions:
            by_topic.setdefault(topic, []).append(partition)
        return tuple(
            (uuid.UUID(hex=group.subscribed_topics[topic][0]), tuple(sorted(parts)))
            for topic, parts in sorted(by_topic.items())
            if topic in group.subscribed_topics
        )

    # --------------------------------------------------------------------- leaving

    def _leave(self, group: ConsumerGroup | None, request: HeartbeatRequest) -> HeartbeatResult:
        member_id = request.member_id
        if group is not None and request.instance_id is not None and not member_id:
            member_id = group.static_members.get(request.instance_id, "")
        member = group.members.get(member_id) if group is not None else None
        if group is None or member is None:
            return HeartbeatResult(
                ErrorCode.unknown_member_id, f"member {member_id} is not in the group"
            )
        if request.instance_id is not None and member.instance_id != request.instance_id:
            return HeartbeatResult(ErrorCode.fenced_instance_id, "instance id does not match")
        if request.member_epoch == STATIC_LEAVE_EPOCH:
            # Keeps its partitions for a session timeout, for a restarted instance to take.
            if member.member_epoch != STATIC_LEAVE_EPOCH:
                member.previous_member_epoch = member.member_epoch
                member.member_epoch = STATIC_LEAVE_EPOCH
            self.dirty.add(group.group_id)
        else:
            self.remove_member(group, member_id)
        return HeartbeatResult(
            ErrorCode.none, member_id=member_id, member_epoch=request.member_epoch
        )

    def remove_member(self, group: ConsumerGroup, member_id: str) -> None:
        """Drop a member (left, expired, fenced): its partitions are free, the group rebalances."""
        member = group.members.pop(member_id)
        instance_id = member.instance_id
        if instance_id is not None and group.static_members.get(instance_id) == member_id:
            del group.static_members[instance_id]
        group.target.pop(member_id, None)
        group.group_epoch += 1
        self.dirty.add(group.group_id)

    # ------------------------------------------------------------------------- timers

    def next_deadline_ms(self) -> int | None:
        deadlines = [
            deadline
            for group in self.groups.values()
            for member in group.members.values()
            for deadline in (member.session_deadline_ms, member.revocation_deadline_ms)
            if deadline is not None
        ]
        return min(deadlines, default=None)

    def tick(self, now_ms: int) -> None:
        """Remove members whose session expired or who did not revoke in time."""
        for group in self.groups.values():
            for member in list(group.members.values()):
                revocation = member.revocation_deadline_ms
                if member.session_deadline_ms <= now_ms or (
                    revocation is not None and revocation <= now_ms
                ):
                    self.remove_member(group, member.member_id)

    def restart_sessions(self, group: ConsumerGroup, now_ms: int) -> None:
        """A loaded group: every member gets a full session to find its new coordinator."""
        for member in group.members.values():
            session = (member.classic.session_timeout_ms if member.classic is not None
                       else self.settings.session_timeout_ms)
            member.session_deadline_ms = now_ms + session
            if member.revocation_deadline_ms is not None:
                member.revocation_deadline_ms = now_ms + member.rebalance_timeout_ms

    # ------------------------------------------------------------------------ offsets

    def validate_commit(self, group_id: str, member_epoch: int, member_id: str) -> ErrorCode:
        """KIP-848's OffsetCommit check: the member's current epoch, or a simple commit
        (epoch < 0) to an empty group."""
        group = self.groups[group_id]
        if member_epoch < 0 and not group.members:
            return ErrorCode.none
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.unknown_member_id
        if member_epoch != member.member_epoch:
            # A classic member's commit carries its generation: Kafka's classic answer.
            return (ErrorCode.illegal_generation if member.classic is not None
                    else ErrorCode.stale_member_epoch)
        return ErrorCode.none

    def subscribed_topics(self, group_id: str) -> set[str]:
        group = self.groups.get(group_id)
        if group is None:
            return set()
        return {t for m in group.members.values() for t in self.member_topics(group, m)}
