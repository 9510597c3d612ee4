"""Kafka's group.initial.rebalance.delay.ms in the pure state machine (time passed in).

The first rebalance of an Empty group waits for the delay, each member joining meanwhile earns
one more window of at most the delay, the whole wait is capped by the rebalance timeout, and a
delay of 0 answers exactly as before.
"""

from __future__ import annotations

import itertools

import pytest
from kio.schema.errors import ErrorCode

from headrace.groups.model import GroupState, JoinProtocol, JoinRequest, JoinResult, PendingJoin
from headrace.groups.state import GroupLimits, GroupStateMachine

SESSION = 10_000
RANGE = (JoinProtocol("range", b"r-meta"),)


def make_machine(delay_ms: int) -> GroupStateMachine:
    counter = itertools.count(1)
    return GroupStateMachine(
        GroupLimits(initial_rebalance_delay_ms=delay_ms),
        member_id_factory=lambda prefix: f"{prefix}-{next(counter)}",
    )


def join(
    machine: GroupStateMachine,
    now: int,
    member_id: str = "",
    *,
    client: str = "c",
    rebalance_ms: int = 30_000,
    v4: bool = False,
) -> JoinResult | PendingJoin:
    request = JoinRequest("g", member_id, None, client, "127.0.0.1", SESSION, rebalance_ms,
                          "consumer", RANGE, v4)
    return machine.join(request, now)


def completed_joins(machine: GroupStateMachine) -> dict[str, JoinResult]:
    return {member: result for _, member, result in machine.drain_effects().join_results}


def pending_id(outcome: JoinResult | PendingJoin) -> str:
    assert isinstance(outcome, PendingJoin), outcome
    return outcome.member_id


def test_first_join_waits_for_the_delay() -> None:
    machine = make_machine(3_000)
    member = pending_id(join(machine, now=0))
    assert machine.groups["g"].state is GroupState.PREPARING_REBALANCE
    assert machine.next_deadline_ms() == 3_000
    machine.tick(2_999)
    assert completed_joins(machine) == {}
    machine.tick(3_000)
    results = completed_joins(machine)
    assert list(results) == [member]
    assert results[member].generation_id == 1
    assert results[member].leader_id == member
    assert machine.groups["g"].state is GroupState.COMPLETING_REBALANCE


def test_members_joining_during_the_delay_share_one_generation() -> None:
    machine = make_machine(3_000)
    first = pending_id(join(machine, now=0, client="a"))
    second = pending_id(join(machine, now=1_000, client="b"))
    # The second joiner earns one more window, counted from the end of the first one.
    machine.tick(3_000)
    assert completed_joins(machine) == {}
    assert machine.next_deadline_ms() == 6_000
    machine.tick(5_999)
    assert completed_joins(machine) == {}
    machine.tick(6_000)
    results = completed_joins(machine)
    assert set(results) == {first, second}
    assert {r.generation_id for r in results.values()} == {1}
    assert machine.groups["g"].rebalances == 1
    leader = results[first].leader_id
    assert {m.member_id for m in results[leader].members} == {first, second}


def test_no_extension_without_a_new_member() -> None:
    machine = make_machine(3_000)
    member = pending_id(join(machine, now=0))
    machine.tick(1_000)
    # A retried JoinGroup of the same member is not a new member.
    assert isinstance(join(machine, now=2_000, member_id=member), PendingJoin)
    machine.tick(3_000)
    assert set(completed_joins(machine)) == {member}


def test_extensions_are_capped_by_the_rebalance_timeout() -> None:
    machine = make_machine(3_000)
    # Rebalance timeout 7 s: the first window (3 s) leaves 4 s for extensions: 3 s then 1 s.
    pending_id(join(machine, now=0, client="m0", rebalance_ms=7_000))
    now = 0
    completed_at = None
    for step in range(1, 20):
        now = step * 500
        join(machine, now=now, client=f"m{step}", rebalance_ms=7_000)
        machine.tick(now)
        if completed_joins(machine):
            completed_at = now
            break
    assert completed_at == 7_000
    group = machine.groups["g"]
    assert group.generation_id == 1
    assert group.state is GroupState.COMPLETING_REBALANCE


def test_delay_longer_than_the_rebalance_timeout_is_one_window() -> None:
    machine = make_machine(3_000)
    first = pending_id(join(machine, now=0, client="a", rebalance_ms=2_000))
    second = pending_id(join(machine, now=1_000, client="b", rebalance_ms=2_000))
    machine.tick(3_000)
    assert set(completed_joins(machine)) == {first, second}


def test_zero_delay_completes_at_once() -> None:
    machine = make_machine(0)
    outcome = join(machine, now=0)
    member = pending_id(outcome)
    results = completed_joins(machine)
    assert results[member].generation_id == 1
    assert machine.groups["g"].state is GroupState.COMPLETING_REBALANCE


def test_zero_delay_matches_the_default_limits_step_by_step() -> None:
    """The same scripted run against GroupLimits() and a delay of 0 gives identical answers."""
    outcomes = []
    for machine in (make_machine(0), GroupStateMachine(
        GroupLimits(), member_id_factory=(lambda c: lambda p: f"{p}-{next(c)}")(itertools.count(1))
    )):
        first = pending_id(join(machine, now=0, client="a"))
        log: list[object] = [completed_joins(machine)]
        second = join(machine, now=10, client="b")
        log.append(second)
        log.append(completed_joins(machine))
        log.append(join(machine, now=20, member_id=first))
        log.append(completed_joins(machine))
        machine.tick(31_000)
        log.append(completed_joins(machine))
        log.append(machine.groups["g"].state)
        outcomes.append(log)
    assert outcomes[0] == outcomes[1]


def test_delay_applies_again_when_a_group_becomes_empty() -> None:
    machine = make_machine(1_000)
    member = pending_id(join(machine, now=0))
    machine.tick(1_000)
    result = completed_joins(machine)[member]
    assert machine.sync("g", result.generation_id, member, None, None, None,
                        {member: b"a"}, 1_000) is None
    assert machine.leave("g", [(member, None)], 2_000) == [ErrorCode.none]
    assert machine.groups["g"].state is GroupState.EMPTY
    again = pending_id(join(machine, now=5_000))
    machine.tick(5_500)
    assert completed_joins(machine) == {}
    machine.tick(6_000)
    assert completed_joins(machine)[again].generation_id == 3


def test_rebalance_of_a_stable_group_is_not_delayed() -> None:
    machine = make_machine(3_000)
    first = pending_id(join(machine, now=0, client="a"))
    machine.tick(3_000)
    generation = completed_joins(machine)[first].generation_id
    machine.sync("g", generation, first, None, None, None, {first: b"x"}, 3_000)
    machine.drain_effects()
    assert machine.groups["g"].state is GroupState.STABLE
    second = pending_id(join(machine, now=4_000, client="b"))
    assert isinstance(join(machine, now=4_100, member_id=first), PendingJoin)
    results = completed_joins(machine)
    assert set(results) == {first, second}
    assert {r.generation_id for r in results.values()} == {generation + 1}


def test_member_id_required_joiners_are_waited_for_after_the_delay() -> None:
    machine = make_machine(1_000)
    first = pending_id(join(machine, now=0, client="a"))
    required = join(machine, now=900, client="b", v4=True)
    assert isinstance(required, JoinResult)
    assert required.error is ErrorCode.member_id_required
    machine.tick(1_000)
    # The delay is over, but a member id is outstanding: the join phase goes on.
    assert completed_joins(machine) == {}
    assert isinstance(join(machine, now=1_050, member_id=required.member_id, client="b"),
                      PendingJoin)
    results = completed_joins(machine)
    assert set(results) == {first, required.member_id}
    assert {r.generation_id for r in results.values()} == {1}


def test_broker_flag_and_env_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kafka's default of 3 s, the HEADRACE_ env mirror, and the flag winning over it."""
    import argparse

    from headrace.cli.broker import add_arguments

    def parsed(*argv: str) -> int:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        value: int = parser.parse_args(list(argv)).group_initial_rebalance_delay_ms
        return value

    monkeypatch.delenv("HEADRACE_GROUP_INITIAL_REBALANCE_DELAY_MS", raising=False)
    assert parsed() == 3_000
    monkeypatch.setenv("HEADRACE_GROUP_INITIAL_REBALANCE_DELAY_MS", "250")
    assert parsed() == 250
    assert parsed("--group-initial-rebalance-delay-ms", "0") == 0
