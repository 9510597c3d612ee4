"""The pure group state machine: join/sync/heartbeat/leave, expiry, static membership, fencing.

Time is an explicit ``now`` in milliseconds, so timeouts are tested without sleeping.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode

from headrace.groups.model import (
    GroupState,
    JoinProtocol,
    JoinRequest,
    JoinResult,
    PendingJoin,
    SyncResult,
)
from headrace.groups.state import GroupLimits, GroupStateMachine, subscription_topics

SESSION = 10_000
REBALANCE = 30_000
RANGE = (JoinProtocol("range", b"r-meta"),)


@pytest.fixture
def machine() -> GroupStateMachine:
    counter = itertools.count(1)
    return GroupStateMachine(GroupLimits(), member_id_factory=lambda p: f"{p}-{next(counter)}")


def join(
    machine: GroupStateMachine,
    member_id: str = "",
    *,
    group: str = "g",
    instance: str | None = None,
    client: str = "c",
    protocols: tuple[JoinProtocol, ...] = RANGE,
    protocol_type: str = "consumer",
    now: int = 0,
    v4: bool = False,
    session: int = SESSION,
) -> JoinResult | PendingJoin:
    return machine.join(
        JoinRequest(group, member_id, instance, client, "127.0.0.1", session, REBALANCE,
                    protocol_type, protocols, v4),
        now,
    )


def joins(machine: GroupStateMachine) -> dict[str, JoinResult]:
    return {member: result for _, member, result in machine.drain_effects().join_results}


def syncs(effects_source: GroupStateMachine) -> dict[str, SyncResult]:
    return {m: r for _, m, r in effects_source.drain_effects().sync_results}


def form_group(machine: GroupStateMachine, *clients: str) -> list[str]:
    """Members join one after another; returns their ids once the group is Stable."""
    ids: list[str] = []
    for client in clients:
        outcome = join(machine, client=client)
        assert isinstance(outcome, PendingJoin)
        ids.append(outcome.member_id)
    group = machine.groups["g"]
    if group.state is GroupState.PREPARING_REBALANCE:
        # Earlier members must rejoin for the rebalance the later ones started.
        for member_id in ids:
            if not group.members[member_id].awaiting_join:
                join(machine, member_id)
    results = joins(machine)
    leader = results[ids[0]].leader_id
    generation = results[ids[0]].generation_id
    assignments = {m: f"assign-{m}".encode() for m in ids}
    for member_id in ids:
        if member_id != leader:
            assert machine.sync("g", generation, member_id, None, None, None, {}, 0) is None
    assert machine.sync("g", generation, leader, None, None, None, assignments, 0) is None
    assert group.state is GroupState.STABLE
    return ids


def test_single_member_join_and_sync(machine: GroupStateMachine) -> None:
    outcome = join(machine, client="alpha")
    assert outcome == PendingJoin("alpha-1")
    result = joins(machine)["alpha-1"]
    assert result.error is ErrorCode.none
    assert result.generation_id == 1
    assert result.leader_id == "alpha-1"
    assert result.protocol_name == "range"
    assert [(m.member_id, m.metadata) for m in result.members] == [("alpha-1", b"r-meta")]
    assert machine.groups["g"].state is GroupState.COMPLETING_REBALANCE

    assert machine.sync("g", 1, "alpha-1", None, None, None, {"alpha-1": b"A"}, 5) is None
    effects = machine.drain_effects()
    assert effects.sync_results == [("g", "alpha-1", SyncResult(ErrorCode.none, b"A", "consumer",
                                                                "range"))]
    assert effects.groups_to_store == {"g"}
    assert machine.groups["g"].state is GroupState.STABLE
    # In Stable, a repeated SyncGroup is answered at once with the stored assignment.
    again = machine.sync("g", 1, "alpha-1", None, None, None, {}, 6)
    assert again == SyncResult(ErrorCode.none, b"A", "consumer", "range")


def test_member_id_required_then_rejoin(machine: GroupStateMachine) -> None:
    first = join(machine, client="c", v4=True)
    assert isinstance(first, JoinResult)
    assert first.error is ErrorCode.member_id_required
    assert first.member_id == "c-1"
    assert machine.groups["g"].state is GroupState.EMPTY
    second = join(machine, first.member_id, v4=True)
    assert second == PendingJoin("c-1")
    assert joins(machine)["c-1"].generation_id == 1


def test_two_members_rebalance_and_leader_gets_member_list(machine: GroupStateMachine) -> None:
    a, b = form_group(machine, "a", "b")
    group = machine.groups["g"]
    assert group.generation_id == 2  # a alone, then a+b
    assert group.members[a].assignment == f"assign-{a}".encode()
    assert group.members[b].assignment == f"assign-{b}".encode()
    followers_sync = syncs(machine)
    assert followers_sync[b].assignment == f"assign-{b}".encode()


def test_rebalance_waits_for_all_members_then_times_out_stragglers(
    machine: GroupStateMachine,
) -> None:
    a, b = form_group(machine, "a", "b")
    machine.drain_effects()
    c = join(machine, client="c", now=100)
    assert isinstance(c, PendingJoin)
    group = machine.groups["g"]
    assert group.state is GroupState.PREPARING_REBALANCE
    assert machine.heartbeat("g", 2, a, None, 200) is ErrorCode.rebalance_in_progress
    assert join(machine, a, now=300) == PendingJoin(a)
    assert joins(machine) == {}  # b has not rejoined yet
    # b heartbeats but never rejoins: the rebalance timeout drops it, the generation moves on.
    for now in range(5_000, 100 + REBALANCE, 5_000):
        assert machine.heartbeat("g", 2, b, None, now) is ErrorCode.rebalance_in_progress
        machine.tick(now)
    machine.tick(100 + REBALANCE - 1)
    assert group.state is GroupState.PREPARING_REBALANCE
    machine.tick(100 + REBALANCE)
    results = joins(machine)
    assert set(results) == {a, c.member_id}
    assert b not in group.members
    assert all(r.generation_id == 3 for r in results.values())


def test_session_expiry_removes_silent_member(machine: GroupStateMachine) -> None:
    a, b = form_group(machine, "a", "b")
    machine.drain_effects()
    assert machine.next_deadline_ms() == SESSION
    assert machine.heartbeat("g", 2, a, None, SESSION - 1) is ErrorCode.none
    machine.tick(SESSION)  # b never heartbeat after syncing at 0
    group = machine.groups["g"]
    assert b not in group.members
    assert group.state is GroupState.PREPARING_REBALANCE
    assert machine.heartbeat("g", 2, a, None, SESSION + 1) is ErrorCode.rebalance_in_progress
    assert join(machine, a, now=SESSION + 2) == PendingJoin(a)
    result = joins(machine)[a]
    assert result.generation_id == 3
    assert [m.member_id for m in result.members] == [a]


def test_generation_and_member_fencing(machine: GroupStateMachine) -> None:
    (a,) = form_group(machine, "a")
    assert machine.heartbeat("g", 0, a, None, 1) is ErrorCode.illegal_generation
    assert machine.heartbeat("g", 1, "nobody", None, 1) is ErrorCode.unknown_member_id
    assert machine.heartbeat("other", 1, a, None, 1) is ErrorCode.unknown_member_id
    sync = machine.sync("g", 7, a, None, None, None, {}, 1)
    assert sync == SyncResult(ErrorCode.illegal_generation)
    assert machine.validate_commit("g", 0, a, None) is ErrorCode.illegal_generation
    assert machine.validate_commit("g", 1, "nobody", None) is ErrorCode.unknown_member_id
    assert machine.validate_commit("g", 1, a, None) is ErrorCode.none
    # Simple (generation -1) commits are only allowed while the group is empty.
    assert machine.validate_commit("g", -1, "", None) is ErrorCode.unknown_member_id
    assert machine.validate_commit("simple", -1, "", None) is ErrorCode.none
    assert machine.groups["simple"].state is GroupState.EMPTY


def test_leave_triggers_rebalance_and_empty_group(machine: GroupStateMachine) -> None:
    a, b = form_group(machine, "a", "b")
    machine.drain_effects()
    assert machine.leave("g", [(b, None)], 10) == [ErrorCode.none]
    assert machine.leave("g", [(b, None)], 11) == [ErrorCode.unknown_member_id]
    group = machine.groups["g"]
    assert group.state is GroupState.PREPARING_REBALANCE
    join(machine, a, now=12)
    assert joins(machine)[a].generation_id == 3
    machine.drain_effects()
    assert machine.leave("g", [(a, None)], 13) == [ErrorCode.none]
    effects = machine.drain_effects()
    # Everyone left: the join phase completes at once into an Empty group, which is stored.
    assert group.state is GroupState.EMPTY
    assert group.generation_id == 4
    assert effects.groups_to_store == {"g"}


def test_inconsistent_protocols_and_session_timeout_bounds(machine: GroupStateMachine) -> None:
    form_group(machine, "a")
    other = join(machine, protocols=(JoinProtocol("roundrobin", b""),))
    assert isinstance(other, JoinResult)
    assert other.error is ErrorCode.inconsistent_group_protocol
    wrong_type = join(machine, protocol_type="connect")
    assert isinstance(wrong_type, JoinResult)
    assert wrong_type.error is ErrorCode.inconsistent_group_protocol
    too_short = join(machine, group="h", session=10)
    assert isinstance(too_short, JoinResult)
    assert too_short.error is ErrorCode.invalid_session_timeout
    no_protocols = join(machine, group="nothing", protocols=())
    assert isinstance(no_protocols, JoinResult)
    assert no_protocols.error is ErrorCode.inconsistent_group_protocol
    assert set(machine.groups) == {"g"}  # failed joins leave no phantom groups behind


def test_protocol_selection_by_vote(machine: GroupStateMachine) -> None:
    both_rr_first = (JoinProtocol("roundrobin", b"x"), JoinProtocol("range", b"y"))
    both_range_first = (JoinProtocol("range", b"y"), JoinProtocol("roundrobin", b"x"))
    a = join(machine, client="a", protocols=both_rr_first)
    assert isinstance(a, PendingJoin)
    machine.drain_effects()
    b = join(machine, client="b", protocols=both_range_first)
    c = join(machine, client="c", protocols=both_range_first)
    assert isinstance(b, PendingJoin) and isinstance(c, PendingJoin)
    join(machine, a.member_id, protocols=both_rr_first)
    results = joins(machine)
    assert {r.protocol_name for r in results.values()} == {"range"}


def test_static_member_rejoin_keeps_generation_and_assignment(
    machine: GroupStateMachine,
) -> None:
    outcome = join(machine, client="c", instance="i1")
    assert isinstance(outcome, PendingJoin)
    old_id = outcome.member_id
    generation = joins(machine)[old_id].generation_id
    machine.sync("g", generation, old_id, "i1", None, None, {old_id: b"P0"}, 0)
    machine.drain_effects()
    # Restarted process: same instance id, no member id, same subscription.
    again = join(machine, client="c", instance="i1", now=100)
    assert isinstance(again, JoinResult)
    assert again.error is ErrorCode.none
    assert again.member_id != old_id
    assert again.generation_id == generation
    group = machine.groups["g"]
    assert group.state is GroupState.STABLE
    assert group.rebalances == 1
    assert machine.drain_effects().groups_to_store == {"g"}
    sync = machine.sync("g", generation, again.member_id, "i1", None, None, {}, 101)
    assert sync is not None and sync.assignment == b"P0"
    # The old incarnation is fenced everywhere.
    assert machine.heartbeat("g", generation, old_id, "i1", 102) is ErrorCode.fenced_instance_id
    assert machine.validate_commit("g", generation, old_id, "i1") is ErrorCode.fenced_instance_id


def test_static_member_with_changed_subscription_rebalances(machine: GroupStateMachine) -> None:
    outcome = join(machine, client="c", instance="i1")
    assert isinstance(outcome, PendingJoin)
    generation = joins(machine)[outcome.member_id].generation_id
    machine.sync("g", generation, outcome.member_id, "i1", None, None, {}, 0)
    machine.drain_effects()
    changed = join(machine, instance="i1", protocols=(JoinProtocol("range", b"new"),), now=5)
    assert isinstance(changed, PendingJoin)
    result = joins(machine)[changed.member_id]
    assert result.generation_id == generation + 1
    assert result.members[0].metadata == b"new"


def test_static_member_leave_by_instance_id(machine: GroupStateMachine) -> None:
    outcome = join(machine, instance="i1")
    assert isinstance(outcome, PendingJoin)
    machine.drain_effects()
    assert machine.leave("g", [("", "i1")], 1) == [ErrorCode.none]
    assert machine.groups["g"].state is GroupState.EMPTY
    assert machine.leave("g", [("", "i1")], 2) == [ErrorCode.unknown_member_id]


def test_leader_never_syncs_members_dropped_after_rebalance_timeout(
    machine: GroupStateMachine,
) -> None:
    a = join(machine, client="a")
    assert isinstance(a, PendingJoin)
    machine.drain_effects()
    b = join(machine, client="b")
    join(machine, a.member_id)
    assert isinstance(b, PendingJoin)
    results = joins(machine)
    follower = b.member_id if results[a.member_id].leader_id == a.member_id else a.member_id
    leader = results[follower].leader_id
    assert machine.sync("g", 2, follower, None, None, None, {}, 10) is None
    machine.heartbeat("g", 2, leader, None, REBALANCE - 1)  # alive, but never syncs
    machine.tick(REBALANCE)
    group = machine.groups["g"]
    assert leader not in group.members
    effects = machine.drain_effects()
    assert ("g", follower, SyncResult(ErrorCode.rebalance_in_progress)) in effects.sync_results


def test_delete_group_rules(machine: GroupStateMachine) -> None:
    form_group(machine, "a")
    assert machine.delete_group("g") is ErrorCode.non_empty_group
    assert machine.delete_group("missing") is ErrorCode.group_id_not_found
    machine.validate_commit("simple", -1, "", None)
    assert machine.delete_group("simple") is ErrorCode.none
    assert "simple" not in machine.groups


def _subscription(*topics: str) -> bytes:
    body = b"\x00\x01" + len(topics).to_bytes(4, "big")
    for topic in topics:
        body += len(topic).to_bytes(2, "big") + topic.encode()
    return body + b"\xff\xff\xff\xff" + b"\x00\x00\x00\x00"


def test_subscribed_topics_from_consumer_metadata(machine: GroupStateMachine) -> None:
    assert subscription_topics(_subscription("orders", "payments")) == ["orders", "payments"]
    assert subscription_topics(b"\x00") == []
    join(machine, protocols=(JoinProtocol("range", _subscription("orders")),))
    assert machine.subscribed_topics("g") == {"orders"}
    assert machine.subscribed_topics("missing") == set()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["join", "leave", "heartbeat", "tick", "sync"]),
                  st.integers(0, 3), st.integers(0, 40_000)),
        max_size=40,
    )
)
def test_random_operations_keep_invariants(ops: list[tuple[str, int, int]]) -> None:
    """Whatever clients do, the group stays internally consistent."""
    machine = GroupStateMachine(GroupLimits())
    clock = 0
    known: list[str] = []
    for op, who, delta in ops:
        clock += delta
        member = known[who % len(known)] if known else ""
        group = machine.groups.get("g")
        generation = group.generation_id if group else 0
        if op == "join":
            outcome = join(machine, member if who % 2 else "", now=clock)
            if isinstance(outcome, PendingJoin) and outcome.member_id not in known:
                known.append(outcome.member_id)
        elif op == "leave" and member:
            machine.leave("g", [(member, None)], clock)
        elif op == "heartbeat" and member:
            machine.heartbeat("g", generation, member, None, clock)
        elif op == "sync" and member:
            machine.sync("g", generation, member, None, None, None, {member: b"x"}, clock)
        else:
            machine.tick(clock)
        effects = machine.drain_effects()
        group = machine.groups.get("g")
        if group is None:
            continue
        if group.state is GroupState.EMPTY:
            assert not group.members
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            assert group.leader_id in group.members
            assert group.protocol_name is not None
        for _, _, join_result in effects.join_results:
            if join_result.error is ErrorCode.none:
                assert join_result.generation_id == group.generation_id or (
                    group.state is not GroupState.COMPLETING_REBALANCE
                )
        deadline = machine.next_deadline_ms()
        assert deadline is None or deadline >= 0


def test_offset_retention_rules(machine: GroupStateMachine) -> None:
    from headrace.groups.model import CommittedOffset
    from headrace.groups.offsets import expired_offsets

    day = 86_400_000
    machine.validate_commit("simple", -1, "", None)
    machine.apply_offset("simple", "t", 0, CommittedOffset(1, -1, "", 1 * day))
    machine.apply_offset("simple", "t", 1, CommittedOffset(2, -1, "", 5 * day))
    simple = machine.groups["simple"]
    # Offsets-only groups: each offset on its own commit time.
    assert expired_offsets(simple, None, 7 * day, 7 * day) == []
    assert expired_offsets(simple, None, 8 * day, 7 * day) == [("t", 0)]
    assert expired_offsets(simple, None, 12 * day, 7 * day) == [("t", 0), ("t", 1)]

    (member,) = form_group(machine, "a")
    machine.apply_offset("g", "t", 0, CommittedOffset(1, -1, "", 0))
    group = machine.groups["g"]
    # A group with members keeps its offsets however old they are.
    assert expired_offsets(group, None, 100 * day, 7 * day) == []
    machine.leave("g", [(member, None)], 1)
    assert group.state is GroupState.EMPTY
    # Once Empty, everything goes when the group has been empty for the retention time.
    assert expired_offsets(group, 10 * day, 16 * day, 7 * day) == []
    assert expired_offsets(group, 10 * day, 17 * day, 7 * day) == [("t", 0)]
    assert expired_offsets(group, None, 17 * day, 7 * day) == []  # unknown: keep
