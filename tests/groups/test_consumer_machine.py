"""The KIP-848 machine's rules, one by one: epochs, fencing, leaving, static members,
regex subscriptions, new topics, assignor choice, sessions and commit checks (pure)."""

from __future__ import annotations

from kio.schema.errors import ErrorCode

from headrace.groups.consumer import snapshot
from headrace.groups.consumer.machine import (
    ConsumerGroupMachine,
    ConsumerGroupSettings,
    HeartbeatRequest,
)
from headrace.groups.consumer.model import ConsumerGroupState
from tests.groups.kip848_support import FakeCatalog, ModelClient


def _settle(machine: ConsumerGroupMachine, catalog: FakeCatalog, *clients: ModelClient,
            now: int = 0) -> None:
    for _ in range(5):
        for client in clients:
            client.heartbeat(machine, catalog, now)


def test_a_lone_member_gets_everything_at_epoch_one() -> None:
    machine, catalog = ConsumerGroupMachine(), FakeCatalog(t=3)
    client = ModelClient("a", ("t",))
    result = client.heartbeat(machine, catalog, 0)
    assert result.error is ErrorCode.none and result.member_epoch == 1
    assert client.owned == {("t", 0), ("t", 1), ("t", 2)}
    assert result.heartbeat_interval_ms == 5000
    # A steady heartbeat carries no assignment.
    assert client.heartbeat(machine, catalog, 10).assignment is None
    assert machine.groups["g"].state is ConsumerGroupState.STABLE


def test_first_heartbeat_must_say_what_it_subscribes_to() -> None:
    result = ConsumerGroupMachine().heartbeat(
        HeartbeatRequest("g", "a", 0, rebalance_timeout_ms=1000), 0, FakeCatalog()
    )
    assert result.error is ErrorCode.invalid_request


def test_unknown_group_unknown_member_and_fenced_epochs() -> None:
    machine, catalog = ConsumerGroupMachine(), FakeCatalog(t=1)
    assert machine.heartbeat(HeartbeatRequest("nope", "a", 3), 0, catalog).error is (
        ErrorCode.group_id_not_found
    )
    client = ModelClient("a", ("t",))
    client.heartbeat(machine, catalog, 0)
    assert machine.heartbeat(HeartbeatRequest("g", "b", 1), 0, catalog).error is (
        ErrorCode.unknown_member_id
    )
    assert client.heartbeat(machine, catalog, 0, epoch=7).error is ErrorCode.fenced_member_epoch


def test_invalid_regex_and_unknown_assignor_are_refused() -> None:
    machine, catalog = ConsumerGroupMachine(), FakeCatalog()
    bad = ModelClient("a", regex="orders-(")
    assert bad.heartbeat(machine, catalog, 0).error is ErrorCode.invalid_regular_expression
    odd = ModelClient("b", ("t",), assignor="sticky")
    assert odd.heartbeat(machine, catalog, 0).error is ErrorCode.unsupported_assignor


def test_a_joiner_waits_for_the_old_owner_to_revoke() -> None:
    machine, catalog = ConsumerGroupMachine(), FakeCatalog(t=4)
    a, b = ModelClient("a", ("t",)), ModelClient("b", ("t",))
    a.heartbeat(machine, catalog, 0)
    b.heartbeat(machine, catalog, 0)
    assert b.owned == set() and b.epoch == 2  # at the new epoch, waiting for a's partitions
    a.heartbeat(machine, catalog, 0)  # told to revoke two: keeps epoch 1
    assert len(a.owned) == 2 and a.epoch == 1
    b.heartbeat(machine, catalog, 0)
    assert b.owned == set()  # a has not yet reported the revocation
    a.heartbeat(machine, catalog, 0)  # reports it: moves to epoch 2
    b.heartbeat(machine, catalog, 0)
    assert a.epoch == b.epoch == 2 and len(b.owned) == 2 and not (a.owned & b.owned)


def test_leaving_frees_partitions_and_bumps_the_group_epoch() -> None:
    machine, catalog = ConsumerGroupMachine(), FakeCatalog(t=2)
    a, b = ModelClient("a", ("t",)), ModelClient("b", ("t",))
    _settle(machine, catalog, a, b)
    epoch = machine.groups["g"].group_epoch
    assert a.heartbeat(machine, catalog, 0, epoch=-1).member_epoch == -1
    _settle(machine, catalog, b)
    assert machine.groups["g"].group_epoch == epoch + 1
    assert b.owned == {("t", 0), ("t", 1)}


def test_a_static_member_comes_back_to_its_partitions_without_a_rebalance() -> None:
    machine, catalog = ConsumerGroupMachine(), FakeCatalog(t=4)
    a = ModelClient("a", ("t",), instance_id="i-a")
    b = ModelClient("b", ("t",), instance_id="i-b")
    _settle(machine, catalog, a, b)
    group = machine.groups["g"]
    epoch, held = group.group_epoch, a.owned
    assert a.heartbeat(machine, catalog, 0, epoch=-2).member_epoch == -2
    # While it is away, nobody else takes its partitions; a second process is refused.
    twin = ModelClient("a-twin", ("t",), instance_id="i-b")
    assert twin.heartbeat(machine, catalog, 0).error is ErrorCode.unreleased_instance_id
    restarted = ModelClient("a2", ("t",), instance_id="i-a")
    restarted.heartbeat(machine, catalog, 0)
    assert restarted.owned == held and group.group_epoch == epoch
    assert "a" not in group.members and group.static_members["i-a"] == "a2"


def test_regex_subscriptions_pick_up_new_matching_topics() -> None:
    machine, catalog = ConsumerGroupMachine(), FakeCatalog(**{"orders-eu": 1, "audit": 1})
    client = ModelClient("a", regex="orders-.*")
    client.heartbeat(machine, catalog, 0)
    assert client.owned == {("orders-eu", 0)}
    catalog.add("orders-us", 2)
    catalog.add("__orders-internal", 1)
    client.heartbeat(machine, catalog, 10)
    assert client.owned == {("orders-eu", 0), ("orders-us", 0), ("orders-us", 1)}


def test_added_partitions_are_assigned() -> None:
    machine, catalog = ConsumerGroupMachine(), FakeCatalog(t=1)
    client = ModelClient("a", ("t",))
    client.heartbeat(machine, catalog, 0)
    catalog.add("t", 3)
    client.heartbeat(machine, catalog, 10)
    assert client.owned == {("t", 0), ("t", 1), ("t", 2)}


def test_the_most_requested_assignor_runs() -> None:
    machine, catalog = ConsumerGroupMachine(), FakeCatalog(t=2)
    ModelClient("a", ("t",), assignor="range").heartbeat(machine, catalog, 0)
    assert machine.groups["g"].assignor_name == "range"
    plain = ConsumerGroupMachine(ConsumerGroupSettings(assignors=("range", "uniform")))
    ModelClient("a", ("t",)).heartbeat(plain, catalog, 0)
    assert plain.groups["g"].assignor_name == "range"


def test_silent_members_expire_after_the_session_timeout() -> None:
    machine = ConsumerGroupMachine(ConsumerGroupSettings(session_timeout_ms=1000))
    catalog = FakeCatalog(t=1)
    ModelClient("a", ("t",)).heartbeat(machine, catalog, 0)
    assert machine.next_deadline_ms() == 1000
    machine.tick(999)
    assert "a" in machine.groups["g"].members
    machine.tick(1000)
    assert machine.groups["g"].state is ConsumerGroupState.EMPTY


def test_commits_carry_the_member_epoch() -> None:
    machine, catalog = ConsumerGroupMachine(), FakeCatalog(t=1)
    client = ModelClient("a", ("t",))
    client.heartbeat(machine, catalog, 0)
    assert machine.validate_commit("g", 1, "a") is ErrorCode.none
    assert machine.validate_commit("g", 0, "a") is ErrorCode.stale_member_epoch
    assert machine.validate_commit("g", 1, "zz") is ErrorCode.unknown_member_id
    assert machine.validate_commit("g", -1, "") is ErrorCode.unknown_member_id
    client.heartbeat(machine, catalog, 0, epoch=-1)
    assert machine.validate_commit("g", -1, "") is ErrorCode.none  # an empty group: admin


def test_the_stored_group_reads_back_the_same() -> None:
    machine, catalog = ConsumerGroupMachine(), FakeCatalog(t=4)
    a = ModelClient("a", ("t",), instance_id="i")
    b = ModelClient("b", regex="t")
    a.heartbeat(machine, catalog, 0)
    b.heartbeat(machine, catalog, 0)
    a.heartbeat(machine, catalog, 0)  # a is now revoking
    group = machine.groups["g"]
    restored = snapshot.decode("g", snapshot.encode(group))
    assert snapshot.encode(restored) == snapshot.encode(group)
    assert restored.members["a"].pending_revocation == group.members["a"].pending_revocation
    assert restored.static_members == {"i": "a"}
