"""The classic consumer-group state machine, free of I/O so it can be tested without a server.

:class:`GroupStateMachine` holds every group of the ``__consumer_offsets`` partitions this
broker coordinates. It checks each request against the group it names, hands joins and syncs
to the :class:`~headrace.groups.rebalance.Rebalancer` (how generations form), and itself keeps
sessions alive (heartbeats, expiry), removes leaving members, checks and records committed
offsets, and deletes or restores groups.

Every operation takes ``now_ms`` (a monotonic clock in milliseconds) instead of reading a clock,
and JoinGroup/SyncGroup calls that must wait for other members return ``PendingJoin``/``None``:
their answers appear later in the effects returned by :meth:`GroupStateMachine.drain_effects`,
together with the groups whose metadata must be written to the log. The asyncio layer turns
that into futures and timers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kio.schema.errors import ErrorCode
from kio.serial.readers import read_int16, read_int32, read_legacy_string

from headrace.groups.model import (
    CommittedOffset,
    Effects,
    Group,
    GroupState,
    JoinRequest,
    JoinResult,
    Member,
    PendingJoin,
    SyncResult,
    TopicPartition,
)
from headrace.groups.rebalance import Rebalancer


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
        self._rebalance = Rebalancer(member_id_factory, self.limits.initial_rebalance_delay_ms)

    # ----------------------------------------------------------------- effects and timers

    def drain_effects(self) -> Effects:
        return self._rebalance.drain_effects()

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
                    self._rebalance.remove_member(group, member_id, now_ms)
            self._rebalance.check_deadlines(group, now_ms)

    # ------------------------------------------------------------------ join and sync

    def join(self, request: JoinRequest, now_ms: int) -> JoinResult | PendingJoin:
        """Answer at once, or park the member until the rebalance's effects carry its answer."""
        group_id, member_id = request.group_id, request.member_id
        if not group_id:
            return JoinResult(ErrorCode.invalid_group_id, member_id)
        if not (
            self.limits.min_session_timeout_ms
            <= request.session_timeout_ms
            <= self.limits.max_session_timeout_ms
        ):
            return JoinResult(ErrorCode.invalid_session_timeout, member_id)
        group = self.groups.get(group_id)
        if group is None:
            if member_id:
                return JoinResult(ErrorCode.unknown_member_id, member_id)
            if not request.protocol_type or not request.protocols:  # refuse before a phantom
                return JoinResult(ErrorCode.inconsistent_group_protocol, member_id)
            group = self.groups[group_id] = Group(group_id)
        if group.state is GroupState.DEAD:
            return JoinResult(ErrorCode.coordinator_not_available, member_id)
        return self._rebalance.join(group, request, now_ms)

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
        return self._rebalance.sync(
            group,
            generation_id,
            member_id,
            group_instance_id,
            protocol_type,
            protocol_name,
            assignments,
            now_ms,
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
        error = group.member_error(member_id, group_instance_id)
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
                self._rebalance.complete_join_if_due(group, now_ms)
                results.append(ErrorCode.none)
                continue
            error = group.member_error(member_id, instance_id)
            if error is ErrorCode.none:
                self._rebalance.remove_member(group, member_id, now_ms)
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
        error = group.member_error(member_id, group_instance_id)
        if error is not ErrorCode.none:
            return error
        if generation_id != group.generation_id:
            return ErrorCode.illegal_generation
        if group.state is GroupState.COMPLETING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def validate_txn_commit(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
    ) -> ErrorCode:
        """Whether a TxnOffsetCommit may be written (KIP-447: a producer carrying its
        consumer's group metadata is fenced by member id and generation; one without it —
        generation -1, no member — is not checked, as for pre-2.5 clients)."""
        if not group_id:
            return ErrorCode.invalid_group_id
        group = self.groups.get(group_id)
        if group is None:
            self.groups[group_id] = Group(group_id)
            return ErrorCode.none
        if group.state is GroupState.DEAD:
            return ErrorCode.coordinator_not_available
        if generation_id < 0 and not member_id:
            return ErrorCode.none
        error = group.member_error(member_id, group_instance_id)
        if error is not ErrorCode.none:
            return error
        if generation_id >= 0 and generation_id != group.generation_id:
            return ErrorCode.illegal_generation
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

    # ------------------------------------------- online migration (KIP-848, consumer side)

    def holder(self, group_id: str) -> Group:
        """The group's entry here, made Empty if missing: a consumer group's offsets holder."""
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = Group(group_id)
        return group

    def release_members(self, group_id: str) -> None:
        """A Stable group whose members a consumer group took over: Empty, offsets kept."""
        group = self.groups[group_id]
        group.members = {}
        group.static_members = {}
        group.pending_members = {}
        group.leader_id = None
        group.state = GroupState.EMPTY
        self._rebalance.store(group_id)

    def adopt(self, group: Group, now_ms: int) -> None:
        """A group converted back from a consumer group: stored, and rebalancing as classic."""
        self.groups[group.group_id] = group
        self._rebalance.rebalance(group, now_ms)


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
