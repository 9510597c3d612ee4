"""The JoinGroup/SyncGroup protocol on one group: how a generation is formed. Pure code.

It follows Kafka's classic GroupCoordinator: a join moves the group to PreparingRebalance, the
join phase waits for every known member to rejoin (or for the rebalance timeout, or first for
the initial rebalance delay), then the generation is bumped, a protocol and a leader are
chosen and the group moves to CompletingRebalance; the leader's SyncGroup hands out the
assignments and makes it Stable. Static members (KIP-345) are keyed by ``group.instance.id``
and can be replaced without a rebalance.

Calls that must wait for other members return :class:`PendingJoin` or ``None``; their answers
come out of :meth:`Rebalancer.drain_effects`, with the groups whose metadata must be stored.
The :class:`~headrace.groups.state.GroupStateMachine` finds the group and checks the request
first; this module only ever sees a live group.
"""

from __future__ import annotations

from collections.abc import Callable

from kio.schema.errors import ErrorCode

from headrace.groups.model import (
    Effects,
    Group,
    GroupState,
    JoinProtocol,
    JoinRequest,
    JoinResult,
    Member,
    MemberMetadata,
    PendingJoin,
    SyncResult,
)


class Rebalancer:
    """Runs joins, syncs and member removals, collecting their deferred answers as effects."""

    def __init__(
        self, member_id_factory: Callable[[str], str], initial_rebalance_delay_ms: int
    ) -> None:
        self._effects = Effects()
        self._new_member_id = member_id_factory
        self._initial_delay_ms = initial_rebalance_delay_ms

    def drain_effects(self) -> Effects:
        effects, self._effects = self._effects, Effects()
        return effects

    # ------------------------------------------------------------------------------ join

    def join(self, group: Group, request: JoinRequest, now_ms: int) -> JoinResult | PendingJoin:
        """Answer at once, or park the member until the rebalance's effects carry its answer."""
        member_id = request.member_id
        group_instance_id, protocols = request.group_instance_id, request.protocols
        session_timeout_ms = request.session_timeout_ms
        rebalance_timeout_ms = request.rebalance_timeout_ms
        if rebalance_timeout_ms < 0:  # JoinGroup v0 has no rebalance timeout
            rebalance_timeout_ms = session_timeout_ms
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
        error = group.member_error(member_id, group_instance_id)
        if error is not ErrorCode.none:
            return JoinResult(error, member_id)
        member = group.members[member_id]
        unchanged = member.protocols == protocols
        if group.state is GroupState.COMPLETING_REBALANCE and unchanged:
            # A retried JoinGroup: repeat what this member was told for the current generation.
            return self._join_result_for(group, member)
        if group.state is GroupState.STABLE and unchanged and member_id != group.leader_id:
            return self._join_result_for(group, member)
        member.session_timeout_ms = session_timeout_ms
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.protocols = protocols
        return self._await_join(group, member, now_ms)

    @staticmethod
    def _supports(group: Group, protocol_type: str, protocols: tuple[JoinProtocol, ...]) -> bool:
        if not protocol_type or not protocols:
            return False
        if group.is_empty():  # the first member sets the protocol type
            return True
        return protocol_type == group.protocol_type and bool(
            group.candidate_protocols() & {p.name for p in protocols}
        )

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
        self.complete_join_if_due(group, now_ms)
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

    @staticmethod
    def _join_result_for(group: Group, member: Member) -> JoinResult:
        members: tuple[MemberMetadata, ...] = ()
        if member.member_id == group.leader_id:  # only the leader gets the member list
            members = tuple(
                MemberMetadata(
                    m.member_id, m.group_instance_id, m.metadata_for(group.protocol_name)
                )
                for m in group.members.values()
            )
        return JoinResult(
            error=ErrorCode.none,
            member_id=member.member_id,
            generation_id=group.generation_id,
            protocol_type=group.protocol_type,
            protocol_name=group.protocol_name,
            leader_id=group.leader_id or "",
            members=members,
        )

    # ------------------------------------------------------------------ the join phase

    def store(self, group_id: str) -> None:
        """Have the coordinator write the group's metadata after this call."""
        self._effects.groups_to_store.add(group_id)

    def rebalance(self, group: Group, now_ms: int) -> None:
        """Start a rebalance of a Stable group (one just converted from a consumer group)."""
        self._prepare_rebalance(group, now_ms)
        self._effects.groups_to_store.add(group.group_id)

    def _prepare_rebalance(self, group: Group, now_ms: int) -> None:
        if group.state is GroupState.COMPLETING_REBALANCE:
            self._fail_pending_syncs(group, ErrorCode.rebalance_in_progress)
        was_empty = group.state is GroupState.EMPTY
        group.state = GroupState.PREPARING_REBALANCE
        group.sync_deadline_ms = None
        timeout = self._rebalance_timeout(group)
        delay = self._initial_delay_ms
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
            window = min(self._initial_delay_ms, remaining)
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

    def complete_join_if_due(self, group: Group, now_ms: int) -> None:
        """End the join phase once everyone rejoined or time is up: a new generation."""
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
                self.remove_member(group, member.member_id, now_ms, rebalance=False)
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

    def check_deadlines(self, group: Group, now_ms: int) -> None:
        """Finish a rebalance whose time is up (the timer calls this on every tick)."""
        if group.state is GroupState.COMPLETING_REBALANCE and (
            group.sync_deadline_ms is not None and group.sync_deadline_ms <= now_ms
        ):
            # The leader never sent its assignment: drop whoever did not sync and retry.
            for member in list(group.members.values()):
                if not member.awaiting_sync:
                    self.remove_member(group, member.member_id, now_ms)
            if group.state is GroupState.COMPLETING_REBALANCE:
                self._prepare_rebalance(group, now_ms)
        self.complete_join_if_due(group, now_ms)

    # ------------------------------------------------------------------- leaving members

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

    def remove_member(
        self, group: Group, member_id: str, now_ms: int, *, rebalance: bool = True
    ) -> None:
        """Drop a member (left, expired or not rejoined); the rest rebalance unless told not."""
        member = group.members.pop(member_id)
        instance_id = member.group_instance_id
        if instance_id is not None and group.static_members.get(instance_id) == member_id:
            del group.static_members[instance_id]
        self._answer_parked_calls(group, member, ErrorCode.unknown_member_id)
        if not rebalance:
            return
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, now_ms)
        self.complete_join_if_due(group, now_ms)

    # ------------------------------------------------------------------------------ sync

    def sync(
        self,
        group: Group,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: dict[str, bytes],
        now_ms: int,
    ) -> SyncResult | None:
        """Answer at once, or (None) park the member until the leader's assignment arrives."""
        error = group.member_error(member_id, group_instance_id)
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
            self._effects.groups_to_store.add(group.group_id)
            for each in group.members.values():
                if each.awaiting_sync:
                    each.awaiting_sync = False
                    each.heartbeat_deadline_ms = now_ms + each.session_timeout_ms
                    self._effects.sync_results.append(
                        (group.group_id, each.member_id, self._sync_result_for(group, each))
                    )
        return None

    @staticmethod
    def _sync_result_for(group: Group, member: Member) -> SyncResult:
        return SyncResult(
            ErrorCode.none, member.assignment, group.protocol_type, group.protocol_name
        )
