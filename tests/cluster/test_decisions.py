"""The controller's election and ISR rules, on plain values (no etcd)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from headrace.cluster.decisions import (
    ReassignmentError,
    broker_health,
    cancel_reassignment,
    expand_isr,
    initial_states,
    isr_candidates,
    offline,
    preferred_leader_elections,
    reconcile,
    round_robin_assignment,
    shrink_isr,
    start_reassignment,
    unclean_leader_elections,
    under_min_isr,
    under_replicated,
)
from headrace.cluster.model import (
    NO_LEADER,
    BrokerRegistration,
    ClusterSnapshot,
    PartitionState,
    SeenBroker,
    TopicRecord,
)


def reg(broker_id: int, epoch: int, *, log_dir: str | None = None, rack: str | None = None,
        shutting_down: bool = False) -> BrokerRegistration:
    return BrokerRegistration(
        broker_id=broker_id,
        host="127.0.0.1",
        port=9000 + broker_id,
        rack=rack,
        log_dir_id=log_dir or f"dir-{broker_id}",
        incarnation=f"inc-{broker_id}-{epoch}",
        broker_epoch=epoch,
        shutting_down=shutting_down,
    )


def snapshot(
    brokers: Iterable[BrokerRegistration],
    states: Iterable[PartitionState],
    seen: dict[int, SeenBroker] | None = None,
    configs: dict[str, str] | None = None,
) -> ClusterSnapshot:
    state_list = list(states)
    topics = {
        s.topic: TopicRecord(s.topic, "id", {s.partition: s.replicas}, configs or {})
        for s in state_list
    }
    registrations = {b.broker_id: b for b in brokers}
    if seen is None:
        seen = {
            b.broker_id: SeenBroker(b.broker_epoch, b.log_dir_id) for b in registrations.values()
        }
    return ClusterSnapshot(
        brokers=registrations,
        controller=None,
        topics=topics,
        partitions={(s.topic, s.partition): s for s in state_list},
        seen=seen,
    )


def state(leader: int = 1, isr: tuple[int, ...] = (1, 2, 3), epoch: int = 5,
          leader_broker_epoch: int = 10) -> PartitionState:
    return PartitionState("t", 0, (1, 2, 3), leader, epoch, isr, 7, leader_broker_epoch)


def test_steady_state_needs_no_change() -> None:
    snap = snapshot([reg(1, 10), reg(2, 20), reg(3, 30)], [state()])
    assert not reconcile(snap)


def test_leader_loss_elects_next_isr_member_and_bumps_epochs() -> None:
    snap = snapshot([reg(2, 20), reg(3, 30)], [state()])
    [new] = reconcile(snap).partitions
    assert (new.leader, new.leader_epoch, new.isr) == (2, 6, (2, 3))
    assert new.leader_broker_epoch == 20
    assert new.partition_epoch == 8


def test_follower_loss_only_shrinks_isr() -> None:
    snap = snapshot([reg(1, 10), reg(3, 30)], [state()])
    [new] = reconcile(snap).partitions
    assert (new.leader, new.leader_epoch, new.isr) == (1, 5, (1, 3))


def test_last_isr_member_is_kept_and_partition_goes_offline() -> None:
    snap = snapshot([reg(2, 20), reg(3, 30)], [state(isr=(1,))])
    [new] = reconcile(snap).partitions
    assert new.leader == NO_LEADER
    assert new.isr == (1,)  # so broker 1 can take over cleanly when it returns
    assert new.leader_epoch == 6


def test_returning_last_isr_member_with_same_disk_is_re_elected() -> None:
    offline = PartitionState("t", 0, (1, 2, 3), NO_LEADER, 6, (1,), 8, -1)
    seen = {1: SeenBroker(10, "dir-1"), 2: SeenBroker(20, "dir-2"), 3: SeenBroker(30, "dir-3")}
    snap = snapshot([reg(1, 99), reg(2, 20), reg(3, 30)], [offline], seen)
    plan = reconcile(snap)
    [new] = plan.partitions
    assert (new.leader, new.leader_epoch, new.leader_broker_epoch) == (1, 7, 99)
    assert plan.seen == {1: SeenBroker(99, "dir-1")}


def test_unclean_election_only_when_the_topic_allows_it() -> None:
    offline = PartitionState("t", 0, (1, 2, 3), NO_LEADER, 6, (1,), 8, -1)
    brokers = [reg(2, 20), reg(3, 30)]
    assert reconcile(snapshot(brokers, [offline])).partitions == []
    unclean = snapshot(brokers, [offline], configs={"unclean.leader.election.enable": "true"})
    [new] = reconcile(unclean).partitions
    assert (new.leader, new.isr, new.leader_epoch) == (2, (2,), 7)


def test_restarted_leader_is_fenced_and_replaced() -> None:
    # Broker 1 restarted (broker epoch 10 -> 11) before its lease expired was noticed.
    seen = {1: SeenBroker(10, "dir-1"), 2: SeenBroker(20, "dir-2"), 3: SeenBroker(30, "dir-3")}
    snap = snapshot([reg(1, 11), reg(2, 20), reg(3, 30)], [state()], seen)
    [new] = reconcile(snap).partitions
    assert (new.leader, new.isr, new.leader_epoch) == (2, (2, 3), 6)


def test_wiped_broker_leaves_isr_even_as_last_member() -> None:
    seen = {1: SeenBroker(10, "dir-1"), 2: SeenBroker(20, "dir-2"), 3: SeenBroker(30, "dir-3")}
    wiped = reg(1, 11, log_dir="new-dir")
    snap = snapshot([wiped, reg(2, 20), reg(3, 30)], [state(isr=(1,))], seen)
    [new] = reconcile(snap).partitions
    assert new.leader == NO_LEADER
    assert 1 not in new.isr


def test_shutting_down_leader_hands_over() -> None:
    snap = snapshot([reg(1, 10, shutting_down=True), reg(2, 20), reg(3, 30)], [state()])
    [new] = reconcile(snap).partitions
    assert (new.leader, new.isr) == (2, (2, 3))


def test_shutting_down_sole_isr_member_keeps_leading() -> None:
    snap = snapshot([reg(1, 10, shutting_down=True), reg(2, 20)], [state(isr=(1,))])
    assert reconcile(snap).partitions == []


def test_preferred_leader_election_moves_back_to_first_replica() -> None:
    moved = PartitionState("t", 0, (1, 2, 3), 2, 6, (1, 2, 3), 8, 20)
    snap = snapshot([reg(1, 10), reg(2, 20), reg(3, 30)], [moved])
    [new] = preferred_leader_elections(snap)
    assert (new.leader, new.leader_epoch, new.leader_broker_epoch) == (1, 7, 10)
    out_of_sync = PartitionState("t", 0, (1, 2, 3), 2, 6, (2, 3), 8, 20)
    assert preferred_leader_elections(snapshot([reg(1, 10), reg(2, 20)], [out_of_sync])) == []


def test_isr_shrink_and_expand() -> None:
    current = state()
    shrunk = shrink_isr(current, [3, 1])
    assert shrunk is not None and shrunk.isr == (1, 2) and shrunk.partition_epoch == 8
    assert shrink_isr(current, []) is None
    expanded = expand_isr(shrunk, 3)
    assert expanded is not None and expanded.isr == (1, 2, 3)
    assert expand_isr(expanded, 3) is None
    assert expand_isr(expanded, 9) is None  # not a replica


def test_replication_health_rules() -> None:
    assert not under_replicated(state())
    assert under_replicated(state(isr=(1, 2)))
    # A replica a reassignment is still adding is not missing yet; an original one is.
    moving = start_reassignment(state(), [1, 2, 4], live=[1, 2, 3, 4])
    assert moving is not None and moving.adding == (4,) and not under_replicated(moving)
    assert under_replicated(shrink_isr(moving, [3]) or moving)
    assert under_min_isr(state(isr=(1, 2)), 3) and not under_min_isr(state(isr=(1, 2)), 2)
    live = {1: reg(1, 10), 2: reg(2, 20)}
    assert not offline(state(), live)
    assert offline(state(leader=3), live)  # the leader's lease is gone, no election yet
    assert offline(state(leader=NO_LEADER, isr=(3,)), live)


def test_initial_states_lead_with_first_live_replica() -> None:
    topic = TopicRecord("t", "id", {0: (1, 2, 3), 1: (2, 3, 1)})
    states = initial_states(topic, {2: reg(2, 20), 3: reg(3, 30)}, [0, 1])
    assert [(s.leader, s.isr, s.leader_broker_epoch) for s in states] == [
        (2, (2, 3), 20),
        (2, (2, 3), 20),
    ]


def test_round_robin_assignment_spreads_zones() -> None:
    brokers = [reg(i, i, rack=zone) for i, zone in zip(range(1, 7), "aabbcc", strict=True)]
    assignment = round_robin_assignment(brokers, partition_count=6, replication_factor=3)
    for replicas in assignment.values():
        zones = {brokers[b - 1].rack for b in replicas}
        assert len(zones) == 3
    leaders = [replicas[0] for replicas in assignment.values()]
    assert sorted(leaders) == [1, 2, 3, 4, 5, 6]


def test_health_flags() -> None:
    health = broker_health({1: reg(1, 11, log_dir="x")}, {1: SeenBroker(10, "dir-1")})
    assert health[1].restarted and health[1].wiped and health[1].must_leave_isr()


def test_isr_candidates_are_live_seen_and_not_leaving() -> None:
    brokers = {
        1: reg(1, 10),
        2: reg(2, 21),  # re-registered; the controller has not seen this incarnation yet
        3: reg(3, 30, shutting_down=True),
        5: reg(5, 50),  # brand new: nothing seen, nothing to fence
    }
    seen = {1: SeenBroker(10, "dir-1"), 2: SeenBroker(20, "dir-2"), 3: SeenBroker(30, "dir-3"),
            4: SeenBroker(40, "dir-4")}  # 4: lease expired, not registered
    assert isr_candidates(brokers, seen) == {1, 5}
    seen[2] = SeenBroker(21, "dir-2")  # the controller caught up with the restart
    assert isr_candidates(brokers, seen) == {1, 2, 5}


def test_reassignment_adds_first_then_removes_and_moves_leadership() -> None:
    current = PartitionState("t", 0, (1, 2), 1, 3, (1, 2), 5, 10)
    started = start_reassignment(current, [3, 2], live=[1, 2, 3])
    assert started is not None
    assert (started.replicas, started.adding, started.removing) == ((3, 2, 1), (3,), (1,))
    assert started.isr == (1, 2) and started.leader == 1
    brokers = [reg(1, 10), reg(2, 20), reg(3, 30)]
    # Not complete while the new replica is out of sync.
    assert reconcile(snapshot(brokers, [started])).partitions == []
    caught_up = expand_isr(started, 3)
    assert caught_up is not None
    [done] = reconcile(snapshot(brokers, [caught_up])).partitions
    assert (done.replicas, done.adding, done.removing) == ((3, 2), (), ())
    assert done.leader == 3 and done.isr == (3, 2) and done.leader_epoch == 4
    assert done.partition_epoch == caught_up.partition_epoch + 1


def test_reassignment_validation_and_cancel() -> None:
    current = PartitionState("t", 0, (1, 2), 1, 3, (1, 2))
    with pytest.raises(ReassignmentError):
        start_reassignment(current, [1, 1], live=[1, 2])
    with pytest.raises(ReassignmentError):
        start_reassignment(current, [1, 9], live=[1, 2])
    assert start_reassignment(current, [1, 2], live=[1, 2]) is None
    started = start_reassignment(current, [1, 3], live=[1, 2, 3])
    assert started is not None
    cancelled = cancel_reassignment(started)
    assert cancelled is not None
    assert (cancelled.replicas, cancelled.adding, cancelled.removing) == ((1, 2), (), ())
    assert cancel_reassignment(current) is None


def test_unclean_election_only_for_leaderless_partitions() -> None:
    offline = PartitionState("t", 0, (1, 2, 3), NO_LEADER, 6, (1,), 8, -1)
    led = PartitionState("u", 0, (1, 2, 3), 2, 6, (2,), 8, 20)
    snap = snapshot([reg(2, 20), reg(3, 30)], [offline, led])
    [elected] = unclean_leader_elections(snap)
    assert (elected.topic, elected.leader, elected.isr, elected.leader_epoch) == ("t", 2, (2,), 7)
    assert elected.leader_broker_epoch == 20
    assert unclean_leader_elections(snapshot([], [offline])) == []


def test_elections_consider_only_the_named_known_partitions() -> None:
    moved = [PartitionState(t, 0, (1, 2), 2, 6, (1, 2), 8, 20) for t in ("a", "b")]
    offline = [PartitionState(t, 0, (1, 2), NO_LEADER, 6, (1,), 8, -1) for t in ("c", "d")]
    snap = snapshot([reg(1, 10), reg(2, 20)], [*moved, *offline])
    named = [("b", 0), ("missing", 3), ("d", 0)]
    # a leaderless partition whose preferred replica is in sync gets it back too
    assert [s.topic for s in preferred_leader_elections(snap, named)] == ["b", "d"]
    assert [s.topic for s in unclean_leader_elections(snap, iter(named))] == ["d"]
    assert [s.topic for s in preferred_leader_elections(snap)] == ["a", "b", "c", "d"]
    assert [s.topic for s in unclean_leader_elections(snap)] == ["c", "d"]
