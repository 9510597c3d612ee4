"""The classic consumer-group state machine, free of I/O so it can be tested without a server.

It follows Kafka's classic GroupCoordinator: groups move through Empty, PreparingRebalance,
CompletingRebalance, Stable and Dead; members join, the coordinator waits for every known member
to rejoin (or for the rebalance timeout), bumps the generation, picks a protocol and a leader,
and the leader's SyncGroup hands out the assignments. Static members (KIP-345) are keyed by
``group.instance.id`` and can be replaced without a rebalance.

Every operation takes ``now_ms`` (a monotonic clock in milliseconds) instead of reading a clock,
and JoinGroup/SyncGroup calls that must wait for other members return ``None``: their answers
appear later in the effects returned by :meth:`GroupStateMachine.drain_effects`, together with
the groups whose metadata must be written to the log. The asyncio layer turns that into futures
and timers.
"""

from __future__ import annotations

import enum
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from kio.schema.errors import ErrorCode
from kio.serial.readers import read_int16, read_int32, read_legacy_string


class GroupState(enum.StrEnum):
    """Kafka's names, which ListGroups and DescribeGroups report verbatim."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class GroupLimits:
    """Broker settings that bound what members may ask for (Kafka's ``group.*`` configs)."""

    min_session_timeout_ms: int = 1_000
    max_session_timeout_ms: int = 1_800_000
    #: Kafka's group.initial.rebalance.delay.ms: the first rebalance of an Empty group waits this
    #: long (more per member joining meanwhile, up to the rebalance timeout) so consumers starting
    #: together share one generation. 0 here, so a lone state machine answers at once; the broker
    #: passes its own default, 3000 ms like Kafka.
    initial_rebalance_delay_ms: int = 0
    max_metadata_size: int = 4096


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


def new_member_id(prefix: str) -> str:
    """Kafka's shape: client id (or instance id) followed by a random UUID."""
    return f"{prefix}-{uuid.uuid4()}"


class GroupStateMachine:
    """All groups of the ``__consumer_offsets`` partitions this broker coordinates."""

    def __init__(
        self,
        limits: GroupLimits | None = None,
        member_id_factory: Callable[[str], str] = new_member_id,
    ) -> None:
        self.limits = limits or GroupLimits()
        self.groups: dict[str, Group] = {}
        self._new_member_id = member_id_factory
        self._effects = Effects()

    # ----------------------------------------------------------------- effects and timers

    def drain_effects(self) -> Effects:
        effects, self._effects = self._effects, Effects()
        return effects

    def next_deadline_ms(self) -> int | None:
        deadlines: list[int] = []
        for group in self.groups.values():
            deadlines.extend(group.pending_members.values())
            if group.rebalance_deadline_ms is not None:
                deadlines.append(group.rebalance_deadline_ms)
            if group.sync_deadline_ms is not None:
                deadlines.append(group.sync_deadline_ms)
            deadlines.extend(
                m.heartbeat_deadline_ms
                for m in group.members.values()
                if not (m.awaiting_join or m.awaiting_sync)
            )
        return min(deadlines, default=None)

    def tick(self, now_ms: int) -> None:
        """Expire silent members and finish rebalances whose time is up."""
        for group in list(self.groups.values()):
            for pending_id, deadline in list(group.pending_members.items()):
                if deadline <= now_ms:
                    del group.pending_members[pending_id]
            expired = [
                m.member_id
                for m in group.members.values()
                if not (m.awaiting_join or m.awaiting_sync) and m.heartbeat_deadline_ms <= now_ms
            ]
            for member_id in expired:
                if member_id in group.members:  # an earlier removal may have dropped it
                    self._remove_member(group, member_id, now_ms)
            if group.state is GroupState.COMPLETING_REBALANCE and (
                group.sync_deadline_ms is not None and group.sync_deadline_ms <= now_ms
            ):
                # The leader never sent its assignment: drop whoever did not sync and retry.
                for member in list(group.members.values()):
                    if not member.awaiting_sync:
                        self._remove_member(group, member.member_id, now_ms)
                if group.state is GroupState.COMPLETING_REBALANCE:
                    self._prepare_rebalance(group, now_ms)
            if group.state is GroupState.PREPARING_REBALANCE:
                self._maybe_complete_join(group, now_ms)

    # ------------------------------------------------------------------------------ join

    def join(self, request: JoinRequest, now_ms: int) -> JoinResult | PendingJoin:
        """Answer at once, or park the member until the rebalance's effects carry its answer."""
        group_id, member_id = request.group_id, request.member_id
        group_instance_id, protocols = request.group_instance_id, request.protocols
        session_timeout_ms = request.session_timeout_ms
        rebalance_timeout_ms = request.rebalance_timeout_ms
        if rebalance_timeout_ms < 0:  # JoinGroup v0 has no rebalance timeout
            rebalance_timeout_ms = session_timeout_ms
        if not group_id:
            return JoinResult(ErrorCode.invalid_group_id, member_id)
        if not (
            self.limits.min_session_timeout_ms
            <= session_timeout_ms
            <= self.limits.max_session_timeout_ms
        ):
            return JoinResult(ErrorCode.invalid_session_timeout, member_id)
        group = self.groups.get(group_id)
        if group is None:
            if member_id:
                return JoinResult(ErrorCode.unknown_member_id, member_id)
            if not request.protocol_type or not protocols:  # refuse before a phantom group
                return JoinResult(ErrorCode.inconsistent_group_protocol, member_id)
            group = self.groups[group_id] = Group(group_id)
        if group.state is GroupState.DEAD:
            return JoinResult(ErrorCode.coordinator_not_available, member_id)
        if not self._supports(group, request.protocol_type, protocols):
            return JoinResult(ErrorCode.inconsistent_group_protocol, member_id)

        def make_member(new_id: str) -> Member:
            return Member(
                member_id=new_id,
                group_instance_id=group_instance_id,
                client_id=request.client_id,
                client_host=request.client_host,
                session_timeout_ms=session_timeout_ms,
                rebalance_timeout_ms=rebalance_timeout_ms,
                protocol_type=request.protocol_type,
                protocols=protocols,
            )

        if not member_id:
            new_id = self._new_member_id(group_instance_id or request.client_id)
            if group_instance_id is not None and group_instance_id in group.static_members:
                return self._replace_static_member(group, make_member(new_id), now_ms)
            if group_instance_id is None and request.require_known_member_id:
                group.pending_members[new_id] = now_ms + session_timeout_ms
                return JoinResult(ErrorCode.member_id_required, new_id)
            return self._add_member_and_rebalance(group, make_member(new_id), now_ms)

        if member_id in group.pending_members:
            del group.pending_members[member_id]
            return self._add_member_and_rebalance(group, make_member(member_id), now_ms)
        error = self._validate_member(group, member_id, group_instance_id)
        if error is not ErrorCode.none:
            return JoinResult(error, member_id)
        member = group.members[member_id]
        unchanged = member.protocols == protocols
        if group.state is GroupState.COMPLETING_REBALANCE and unchanged:
            # A retried JoinGroup: repeat what this member was told for the current generation.
            return self._join_result_for(group, member)
        if group.state is GroupState.STABLE and unchanged and member_id != group.leader_id:
            return self._join_result_for(group, member)
        self._update_member(member, session_timeout_ms, rebalance_timeout_ms, protocols)
        return self._await_join(group, member, now_ms)

    def _supports(
        self, group: Group, protocol_type: str, protocols: tuple[JoinProtocol, ...]
    ) -> bool:
        if not protocol_type or not protocols:
            return False
        if group.is_empty():
            return group.protocol_type in (None, protocol_type) or not group.members
        return protocol_type == group.protocol_type and bool(
            group.candidate_protocols() & {p.name for p in protocols}
        )

    def _validate_member(
        self, group: Group, member_id: str, group_instance_id: str | None
    ) -> ErrorCode:
        if group_instance_id is not None:
            known = group.static_members.get(group_instance_id)
            if known is not None and known != member_id:
                return ErrorCode.fenced_instance_id
        if member_id not in group.members:
            return ErrorCode.unknown_member_id
        return ErrorCode.none

    @staticmethod
    def _update_member(
        member: Member, session_ms: int, rebalance_ms: int, protocols: tuple[JoinProtocol, ...]
    ) -> None:
        member.session_timeout_ms = session_ms
        member.rebalance_timeout_ms = rebalance_ms
        member.protocols = protocols

    def _add_member_and_rebalance(
        self, group: Group, member: Member, now_ms: int
    ) -> PendingJoin:
        if group.is_empty():
            group.protocol_type = member.protocol_type
        group.members[member.member_id] = member
        if member.group_instance_id is not None:
            group.static_members[member.group_instance_id] = member.member_id
        if group.initial_delay_remaining_ms is not None:
            group.joined_during_initial_delay = True
        return self._await_join(group, member, now_ms)

    def _await_join(self, group: Group, member: Member, now_ms: int) -> PendingJoin:
        member.awaiting_join = True
        member.awaiting_sync = False
        if group.state is not GroupState.PREPARING_REBALANCE:
            self._prepare_rebalance(group, now_ms)
        self._maybe_complete_join(group, now_ms)
        return PendingJoin(member.member_id)

    def _replace_static_member(
        self, group: Group, member: Member, now_ms: int
    ) -> JoinResult | PendingJoin:
        assert member.group_instance_id is not None
        old_id = group.static_members[member.group_instance_id]
        old = group.members.pop(old_id)
        self._answer_parked_calls(group, old, ErrorCode.fenced_instance_id)
        member.assignment = old.assignment
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
        group.members[member.member_id] = member
        group.static_members[member.group_instance_id] = member.member_id
        if group.leader_id == old_id:
            group.leader_id = member.member_id
        selected = group.protocol_name
        if (
            group.state is GroupState.STABLE
            and old.metadata_for(selected) == member.metadata_for(selected)
            and selected in member.protocol_names()
        ):
            # KIP-345: same instance, same subscription: keep the generation and assignment.
            self._effects.groups_to_store.add(group.group_id)
            return self._join_result_for(group, member)
        return self._await_join(group, member, now_ms)

    def _join_result_for(self, group: Group, member: Member) -> JoinResult:
        is_leader = member.member_id == group.leader_id
        members = self._member_list(group) if is_leader else ()
        return JoinResult(
            error=ErrorCode.none,
            member_id=member.member_id,
            generation_id=group.generation_id,
            protocol_type=group.protocol_type,
            protocol_name=group.protocol_name,
            leader_id=group.leader_id or "",
            members=members,
        )

    @staticmethod
    def _member_list(group: Group) -> tuple[MemberMetadata, ...]:
        return tuple(
            MemberMetadata(m.member_id, m.group_instance_id, m.metadata_for(group.protocol_name))
            for m in group.members.values()
        )

    def _prepare_rebalance(self, group: Group, now_ms: int) -> None:
        if group.state is GroupState.COMPLETING_REBALANCE:
            self._fail_pending_syncs(group, ErrorCode.rebalance_in_progress)
        was_empty = group.state is GroupState.EMPTY
        group.state = GroupState.PREPARING_REBALANCE
        group.sync_deadline_ms = None
        timeout = self._rebalance_timeout(group)
        delay = self.limits.initial_rebalance_delay_ms
        if was_empty and delay > 0:
            # Kafka's InitialDelayedJoin: the first window is the full delay, extensions come
            # out of whatever the rebalance timeout leaves after it.
            group.rebalance_deadline_ms = now_ms + delay
            group.initial_delay_remaining_ms = max(timeout - delay, 0)
            group.joined_during_initial_delay = False
        else:
            group.rebalance_deadline_ms = now_ms + timeout

    @staticmethod
    def _rebalance_timeout(group: Group) -> int:
        return max((m.rebalance_timeout_ms for m in group.members.values()), default=0)

    def _initial_delay_holds(self, group: Group, now_ms: int) -> bool:
        """Whether the initial delay still holds the join phase open (extending it if due).

        When a window ends and members joined during it, a new window of at most the delay
        starts, paid from the remaining rebalance timeout. When the delay is over the group
        falls back to the ordinary join phase, bounded by the rebalance timeout.
        """
        remaining = group.initial_delay_remaining_ms
        deadline = group.rebalance_deadline_ms
        if remaining is None or deadline is None:
            return False
        if deadline > now_ms:
            return True
        if group.joined_during_initial_delay and remaining > 0:
            window = min(self.limits.initial_rebalance_delay_ms, remaining)
            group.initial_delay_remaining_ms = remaining - window
            group.joined_during_initial_delay = False
            group.rebalance_deadline_ms = now_ms + window
            return True
        group.initial_delay_remaining_ms = None
        group.joined_during_initial_delay = False
        group.rebalance_deadline_ms = now_ms + self._rebalance_timeout(group)
        return False

    def _fail_pending_syncs(self, group: Group, error: ErrorCode) -> None:
        for member in group.members.values():
            if member.awaiting_sync:
                member.awaiting_sync = False
                self._effects.sync_results.append(
                    (group.group_id, member.member_id, SyncResult(error))
                )

    def _maybe_complete_join(self, group: Group, now_ms: int) -> None:
        if group.state is not GroupState.PREPARING_REBALANCE:
            return
        if self._initial_delay_holds(group, now_ms):
            return
        deadline = group.rebalance_deadline_ms
        timed_out = deadline is not None and deadline <= now_ms
        if not timed_out and not group.all_members_joined():
            return
        for member in list(group.members.values()):
            if not member.awaiting_join:
                self._remove_member(group, member.member_id, now_ms, rebalance=False)
        group.pending_members.clear()
        group.rebalance_deadline_ms = None
        group.initial_delay_remaining_ms = None
        group.generation_id += 1
        group.rebalances += 1
        self._effects.rebalances_completed.append(group.group_id)
        if group.is_empty():
            group.state = GroupState.EMPTY
            group.protocol_name = None
            group.leader_id = None
            self._effects.groups_to_store.add(group.group_id)
            return
        group.protocol_name = group.select_protocol()
        if group.leader_id not in group.members:
            group.leader_id = next(iter(group.members))
        group.state = GroupState.COMPLETING_REBALANCE
        longest = max(m.rebalance_timeout_ms for m in group.members.values())
        group.sync_deadline_ms = now_ms + longest
        for member in group.members.values():
            member.awaiting_join = False
            member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
            self._effects.join_results.append(
                (group.group_id, member.member_id, self._join_result_for(group, member))
            )

    def _answer_parked_calls(self, group: Group, member: Member, error: ErrorCode) -> None:
        """A member leaving the group: its parked JoinGroup/SyncGroup calls end with ``error``."""
        if member.awaiting_join:
            self._effects.join_results.append(
                (group.group_id, member.member_id, JoinResult(error, member.member_id))
            )
        if member.awaiting_sync:
            self._effects.sync_results.append(
                (group.group_id, member.member_id, SyncResult(error))
            )

    def _remove_member(
        self, group: Group, member_id: str, now_ms: int, *, rebalance: bool = True
    ) -> None:
        member = group.members.pop(member_id)
        instance_id = member.group_instance_id
        if instance_id is not None and group.static_members.get(instance_id) == member_id:
            del group.static_members[instance_id]
        self._answer_parked_calls(group, member, ErrorCode.unknown_member_id)
        if not rebalance:
            return
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, now_ms)
        self._maybe_complete_join(group, now_ms)

    # ------------------------------------------------------------------------------ sync

    def sync(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: dict[str, bytes],
        now_ms: int,
    ) -> SyncResult | None:
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return SyncResult(ErrorCode.unknown_member_id)
        error = self._validate_member(group, member_id, group_instance_id)
        if error is not ErrorCode.none:
            return SyncResult(error)
        if generation_id != group.generation_id:
            return SyncResult(ErrorCode.illegal_generation)
        if (protocol_type is not None and protocol_type != group.protocol_type) or (
            protocol_name is not None and protocol_name != group.protocol_name
        ):
            return SyncResult(ErrorCode.inconsistent_group_protocol)
        member = group.members[member_id]
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
        if group.state is GroupState.PREPARING_REBALANCE:
            return SyncResult(ErrorCode.rebalance_in_progress)
        if group.state is GroupState.STABLE:
            return self._sync_result_for(group, member)
        member.awaiting_sync = True
        if member_id == group.leader_id:
            for each in group.members.values():
                each.assignment = assignments.get(each.member_id, b"")
            group.state = GroupState.STABLE
            group.sync_deadline_ms = None
            self._effects.groups_to_store.add(group_id)
            for each in group.members.values():
                if each.awaiting_sync:
                    each.awaiting_sync = False
                    each.heartbeat_deadline_ms = now_ms + each.session_timeout_ms
                    self._effects.sync_results.append(
                        (group_id, each.member_id, self._sync_result_for(group, each))
                    )
        return None

    @staticmethod
    def _sync_result_for(group: Group, member: Member) -> SyncResult:
        return SyncResult(
            ErrorCode.none, member.assignment, group.protocol_type, group.protocol_name
        )

    # ------------------------------------------------------------------- heartbeat, leave

    def heartbeat(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        now_ms: int,
    ) -> ErrorCode:
        group = self.groups.get(group_id)
        if group is None or group.state in (GroupState.DEAD, GroupState.EMPTY):
            return ErrorCode.unknown_member_id
        error = self._validate_member(group, member_id, group_instance_id)
        if error is not ErrorCode.none:
            return error
        if generation_id != group.generation_id:
            return ErrorCode.illegal_generation
        member = group.members[member_id]
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
        if group.state is GroupState.PREPARING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def leave(
        self, group_id: str, leavers: Iterable[tuple[str, str | None]], now_ms: int
    ) -> list[ErrorCode]:
        """Remove each (member id, instance id); an empty member id means 'by instance id'."""
        group = self.groups.get(group_id)
        results: list[ErrorCode] = []
        for member_id, instance_id in leavers:
            if group is None or group.state is GroupState.DEAD:
                results.append(ErrorCode.unknown_member_id)
                continue
            if not member_id and instance_id is not None:
                member_id = group.static_members.get(instance_id, "")
                if not member_id:
                    results.append(ErrorCode.unknown_member_id)
                    continue
            if member_id in group.pending_members:
                del group.pending_members[member_id]
                self._maybe_complete_join(group, now_ms)
                results.append(ErrorCode.none)
                continue
            error = self._validate_member(group, member_id, instance_id)
            if error is ErrorCode.none:
                self._remove_member(group, member_id, now_ms)
            results.append(error)
        return results

    # --------------------------------------------------------------------------- offsets

    def validate_commit(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
    ) -> ErrorCode:
        """Whether an OffsetCommit may be applied; creates offset-only groups for simple use."""
        if not group_id:
            return ErrorCode.invalid_group_id
        group = self.groups.get(group_id)
        if group is None:
            if generation_id >= 0:
                # Kafka: a commit carrying a generation for a group that does not exist.
                return ErrorCode.illegal_generation
            self.groups[group_id] = Group(group_id)
            return ErrorCode.none
        if group.state is GroupState.DEAD:
            return ErrorCode.coordinator_not_available
        if generation_id < 0 and group.state is GroupState.EMPTY:
            return ErrorCode.none
        error = self._validate_member(group, member_id, group_instance_id)
        if error is not ErrorCode.none:
            return error
        if generation_id != group.generation_id:
            return ErrorCode.illegal_generation
        if group.state is GroupState.COMPLETING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def apply_offset(
        self, group_id: str, topic: str, partition: int, committed: CommittedOffset | None
    ) -> None:
        """Record (or with None, forget) a committed offset, creating the group if needed."""
        group = self.groups.get(group_id)
        if group is None:
            if committed is None:
                return
            group = self.groups[group_id] = Group(group_id)
        if committed is None:
            group.offsets.pop((topic, partition), None)
        else:
            group.offsets[(topic, partition)] = committed

    def committed(self, group_id: str) -> dict[TopicPartition, CommittedOffset]:
        group = self.groups.get(group_id)
        return dict(group.offsets) if group is not None else {}

    def subscribed_topics(self, group_id: str) -> set[str] | None:
        """Topics the members subscribe to, or None when the protocol is not 'consumer'."""
        group = self.groups.get(group_id)
        if group is None or group.is_empty():
            return set()
        if group.protocol_type != "consumer":
            return None
        topics: set[str] = set()
        for member in group.members.values():
            topics.update(subscription_topics(member.metadata_for(group.protocol_name)))
        return topics

    # ----------------------------------------------------------------- delete and restore

    def delete_group(self, group_id: str) -> ErrorCode:
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.group_id_not_found
        if group.state is not GroupState.EMPTY:
            return ErrorCode.non_empty_group
        group.state = GroupState.DEAD
        del self.groups[group_id]
        return ErrorCode.none

    def restore_group(
        self,
        group_id: str,
        protocol_type: str | None,
        generation_id: int,
        protocol_name: str | None,
        leader_id: str | None,
        members: list[Member],
        now_ms: int,
    ) -> None:
        """Rebuild a group from its stored metadata: Stable with members, else Empty."""
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = Group(group_id)
        group.protocol_type = protocol_type or None
        group.generation_id = generation_id
        group.protocol_name = protocol_name
        group.leader_id = leader_id
        group.members = {}
        group.static_members = {}
        for member in members:
            member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
            group.members[member.member_id] = member
            if member.group_instance_id is not None:
                group.static_members[member.group_instance_id] = member.member_id
        group.state = GroupState.STABLE if members else GroupState.EMPTY
        group.rebalance_deadline_ms = None
        group.initial_delay_remaining_ms = None
        group.joined_during_initial_delay = False

    def forget_group(self, group_id: str) -> None:
        self.groups.pop(group_id, None)


def expired_offsets(
    group: Group, empty_since_ms: int | None, now_ms: int, retention_ms: int
) -> list[TopicPartition]:
    """Kafka's offset retention (KIP-211), on wall-clock milliseconds.

    Offsets of a group with members never expire. A group that has had members loses all its
    offsets once it has been Empty for ``retention_ms``; an offsets-only group (simple
    consumers, admin tools) loses each offset ``retention_ms`` after it was committed.
    """
    if group.state is not GroupState.EMPTY or group.members:
        return []
    if group.protocol_type is None:
        return sorted(
            tp for tp, c in group.offsets.items() if c.commit_timestamp_ms + retention_ms <= now_ms
        )
    if empty_since_ms is not None and empty_since_ms + retention_ms <= now_ms:
        return sorted(group.offsets)
    return []


def subscription_topics(metadata: bytes) -> list[str]:
    """Topic names from a ConsumerProtocolSubscription (all versions start the same way)."""
    try:
        _version, offset = read_int16(metadata, 0)
        count, size = read_int32(metadata, offset)
        offset += size
        topics: list[str] = []
        for _ in range(count):
            topic, size = read_legacy_string(metadata, offset)
            offset += size
            topics.append(topic)
        return topics
    except Exception:  # malformed metadata subscribes to nothing we can name
        return []
