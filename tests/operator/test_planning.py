"""The operator's pure decisions: scaling, draining, refusing, rolling, topics, conditions."""

from __future__ import annotations

from headrace.placement import BrokerSlot, place_new_partitions
from headrace_operator.model import TopicSpec, stable_zones, zone_groups
from headrace_operator.planning import (
    BrokerState,
    ObservedTopic,
    PartitionState,
    PodState,
    RollDecision,
    ScalePlan,
    cluster_conditions,
    describe_drift,
    plan_roll,
    plan_scale,
    plan_topic,
    set_condition,
    slots_of,
)

ZONES = ["a", "b", "c"]


def _state(groups_brokers: int, topics: dict[str, tuple[int, int]],
           live: set[int] | None = None, reassigning: bool = False) -> BrokerState:
    groups = zone_groups(groups_brokers, ZONES)
    slots = slots_of(groups)
    partitions = []
    for topic, (count, rf) in sorted(topics.items()):
        for p, replicas in place_new_partitions(slots, count, rf).items():
            partitions.append(PartitionState(topic, p, tuple(replicas), tuple(replicas),
                                             replicas[0]))
    ids = {s.broker_id for s in slots}
    return BrokerState(frozenset(ids if live is None else live), 0, tuple(partitions),
                       reassigning)


def _sizes(brokers: int) -> dict[int, int]:
    return {g.index: g.replicas for g in zone_groups(brokers, ZONES)}


def test_scale_up_grows_statefulsets_then_rebalances_onto_new_brokers() -> None:
    before = _state(3, {"orders": (6, 3)})
    grow = plan_scale(zone_groups(6, ZONES), _sizes(3), before)
    assert (grow.phase, grow.replicas, grow.reassignments) == ("ScalingUp", _sizes(6), {})
    # New brokers registered: the planner moves replicas onto them, zones kept distinct.
    live = BrokerState(frozenset(s.broker_id for s in slots_of(zone_groups(6, ZONES))), 0,
                       before.partitions)
    rebalance = plan_scale(zone_groups(6, ZONES), _sizes(6), live)
    assert rebalance.phase == "Rebalancing"
    moved = {b for a in rebalance.reassignments.values() for r in a.values() for b in r}
    assert {1, 1001, 2001} <= moved
    for assignment in rebalance.reassignments.values():
        for replicas in assignment.values():
            assert sorted(b // 1000 for b in replicas) == [0, 1, 2]


def test_scale_down_drains_before_shrinking() -> None:
    state = _state(6, {"orders": (6, 3)})
    drain = plan_scale(zone_groups(3, ZONES), _sizes(6), state)
    assert drain.phase == "Draining"
    assert drain.replicas == _sizes(6)  # nothing shrinks yet
    assert drain.removing == (1, 1001, 2001)
    targets = drain.reassignments["orders"]
    assert all(set(r).isdisjoint(drain.removing) for r in targets.values())
    # Reassignment running: wait.
    busy = BrokerState(state.live_brokers, 0, state.partitions, reassigning=True)
    assert plan_scale(zone_groups(3, ZONES), _sizes(6), busy).reassignments == {}
    # Drained: shrink.
    drained = BrokerState(state.live_brokers, 0, tuple(
        PartitionState("orders", p, tuple(r), tuple(r), r[0]) for p, r in targets.items()))
    shrink = plan_scale(zone_groups(3, ZONES), _sizes(6), drained)
    assert (shrink.phase, shrink.replicas) == ("ScalingDown", _sizes(3))


def test_scale_down_refused_when_replication_factor_cannot_fit() -> None:
    state = _state(3, {"orders": (3, 3)})
    refused = plan_scale(zone_groups(2, ZONES), _sizes(3), state)
    assert refused.phase == "Refused"
    assert refused.replicas == _sizes(3)
    assert refused.refused is not None and "replication factor 3" in refused.refused
    assert refused.reassignments == {}


def test_scale_down_to_fewer_brokers_than_zones_keeps_fitting_topics() -> None:
    # 6 -> 2 brokers empties zone c; RF 3 cannot fit, RF 2 can (two zones remain).
    assert plan_scale(zone_groups(2, ZONES), _sizes(6),
                      _state(6, {"orders": (3, 3)})).phase == "Refused"
    drain = plan_scale(zone_groups(2, ZONES), _sizes(6), _state(6, {"orders": (3, 2)}))
    assert drain.phase == "Draining"
    for replicas in drain.reassignments["orders"].values():
        assert sorted(b // 1000 for b in replicas) == [0, 1]


def test_unreachable_brokers_block_scale_down_but_not_scale_up() -> None:
    waiting = plan_scale(zone_groups(3, ZONES), _sizes(6), None)
    assert (waiting.phase, waiting.replicas) == ("Draining", _sizes(6))
    assert plan_scale(zone_groups(6, ZONES), _sizes(3), None).replicas == _sizes(6)


def _partition(topic: str, p: int, replicas: list[int], isr: list[int]) -> PartitionState:
    return PartitionState(topic, p, tuple(replicas), tuple(isr), isr[0] if isr else None)


def test_roll_restarts_one_outdated_pod_at_a_time_controller_last() -> None:
    pods = [PodState("c-a-0", 0, "old", True), PodState("c-b-0", 1000, "old", True),
            PodState("c-c-0", 2000, "old", True)]
    partitions = [_partition("t", 0, [0, 1000, 2000], [0, 1000, 2000])]
    decision = plan_roll(pods, "new", partitions, default_min_isr=2, controller_id=0)
    assert decision == RollDecision("restart", "c-b-0", "outdated revision")
    # The restarted pod is back but not ready yet: wait.
    pods[1] = PodState("c-b-0", 1000, "new", False)
    assert plan_roll(pods, "new", partitions, default_min_isr=2).action == "wait"
    pods[1] = PodState("c-b-0", 1000, "new", True)
    assert plan_roll(pods, "new", partitions, default_min_isr=2, controller_id=0).pod == "c-c-0"
    assert plan_roll([PodState("x", 0, "new", True)], "new", partitions).action == "done"


def test_roll_never_takes_a_partition_below_min_insync() -> None:
    pods = [PodState("c-a-0", 0, "old", True), PodState("c-b-0", 1000, "old", True)]
    at_minimum = [_partition("t", 0, [0, 1000, 2000], [0, 1000])]
    decision = plan_roll(pods, "new", at_minimum, default_min_isr=2)
    assert decision.action == "wait"
    assert "t-0" in decision.reason
    # Per-topic min.insync.replicas is honoured.
    assert plan_roll(pods, "new", at_minimum, {"t": 1}, default_min_isr=2).action == "restart"
    # A partition with RF <= min ISR can never survive a restart, so it does not block.
    rf_one = [_partition("solo", 0, [0], [0])]
    assert plan_roll(pods, "new", rf_one, default_min_isr=1).action == "restart"


def test_roll_restarts_broken_pods_first_and_waits_when_brokers_unreachable() -> None:
    pods = [PodState("c-a-0", 0, "old", True), PodState("c-b-0", 1000, "old", False)]
    assert plan_roll(pods, "new", None).pod == "c-b-0"
    healthy = [PodState("c-a-0", 0, "old", True)]
    assert plan_roll(healthy, "new", None).action == "wait"
    terminating = [PodState("c-a-0", 0, "old", True, terminating=True)]
    assert plan_roll(terminating, "new", []).action == "wait"
    # A deleted pod its StatefulSet has not recreated yet is as good as not ready.
    missing = plan_roll(healthy, "new", [], expected_pods=2)
    assert missing.action == "wait" and "recreated" in missing.reason


BROKERS = [BrokerSlot(0, "a"), BrokerSlot(1000, "b"), BrokerSlot(2000, "c")]


def test_topic_created_with_zone_aware_assignment_and_config() -> None:
    spec = TopicSpec.parse("orders", {"clusterRef": "c", "partitions": 3,
                                      "config": {"retention.ms": "1000"}})
    plan = plan_topic(spec, None, BROKERS)
    assert plan.create is not None and sorted(plan.create) == [0, 1, 2]
    assert all(sorted(r) == [0, 1000, 2000] for r in plan.create.values())
    assert sorted(r[0] for r in plan.create.values()) == [0, 1000, 2000]
    assert plan.config_set == {"retention.ms": "1000"}


def test_topic_grows_never_shrinks_and_fixes_config_drift() -> None:
    current = {0: [0, 1000], 1: [1000, 2000]}
    observed = ObservedTopic(current, {"retention.ms": "5", "cleanup.policy": "compact"})
    grow = plan_topic(TopicSpec.parse("t", {"clusterRef": "c", "partitions": 4,
                                            "replicationFactor": 2,
                                            "config": {"retention.ms": "10"}}),
                      observed, BROKERS)
    assert grow.new_partitions is not None and sorted(grow.new_partitions) == [2, 3]
    assert grow.config_set == {"retention.ms": "10"}
    assert grow.config_reset == ("cleanup.policy",)
    # retention.ms was applied as "10" before: Kafka changed it. cleanup.policy never applied.
    drift = describe_drift(grow, observed, True, {"retention.ms": "10"})
    assert any("retention.ms" in d for d in drift) and any("cleanup.policy" in d for d in drift)
    # The same differences right after a spec change are the change, not drift.
    assert describe_drift(grow, observed, True, {"retention.ms": "5",
                                                  "cleanup.policy": "compact"}) == []
    shrink = plan_topic(TopicSpec.parse("t", {"clusterRef": "c", "partitions": 1,
                                              "replicationFactor": 2}),
                        ObservedTopic(current, {}), BROKERS)
    assert shrink.new_partitions is None
    assert shrink.problems[0][0] == "PartitionDecreaseRefused"


def test_topic_replication_factor_too_large_and_missing_topic_drift() -> None:
    spec = TopicSpec.parse("t", {"clusterRef": "c", "replicationFactor": 4})
    plan = plan_topic(spec, None, BROKERS)
    assert plan.create is None and plan.problems[0][0] == "ReplicationFactorTooLarge"
    recreate = plan_topic(TopicSpec.parse("t", {"clusterRef": "c"}), None, BROKERS)
    assert describe_drift(recreate, None, True, {})[0].startswith("topic was missing")
    assert describe_drift(recreate, None, False, {}) == []


def test_topic_replication_factor_change_is_a_reassignment() -> None:
    observed = ObservedTopic({0: [0], 1: [1000]}, {})
    plan = plan_topic(TopicSpec.parse("t", {"clusterRef": "c", "partitions": 2,
                                            "replicationFactor": 2}), observed, BROKERS)
    assert plan.reassignment is not None
    assert all(len(r) == 2 for r in plan.reassignment.values())


def test_conditions_keep_transition_time_until_status_changes() -> None:
    first = set_condition([], "Ready", False, "Starting", "m", "t1", 1)
    same = set_condition(first, "Ready", False, "Still", "m2", "t2", 2)
    assert same[0]["lastTransitionTime"] == "t1" and same[0]["observedGeneration"] == 2
    flipped = set_condition(same, "Ready", True, "Ok", "m3", "t3")
    assert flipped[0]["lastTransitionTime"] == "t3"


def test_cluster_conditions_report_refusal_and_health() -> None:
    refused = ScalePlan("Refused", {0: 3}, refused="cannot remove brokers")
    conditions = cluster_conditions([], refused, RollDecision("done"), 3, 3,
                                    BrokerState(frozenset({0}), 0, ()), "now", 4)
    by_type = {c["type"]: c for c in conditions}
    assert by_type["Ready"]["status"] == "False"
    assert by_type["Degraded"]["reason"] == "ScaleRefused"
    healthy = cluster_conditions([], ScalePlan("Steady", {0: 3}), RollDecision("done"), 3, 3,
                                 BrokerState(frozenset({0}), 0, ()), "now", 4)
    by_type = {c["type"]: c for c in healthy}
    assert (by_type["Ready"]["status"], by_type["Degraded"]["status"],
            by_type["Progressing"]["status"]) == ("True", "False", "False")
    unreachable = cluster_conditions([], ScalePlan("Steady", {0: 3}), RollDecision("done"),
                                     3, 3, None, "now", 4)
    assert {c["type"]: c for c in unreachable}["Degraded"]["reason"] == "BrokersUnreachable"


def test_zones_keep_their_places_once_a_cluster_has_run() -> None:
    # A new cluster takes the zones as found (named, or sorted when discovered).
    assert stable_zones([], ["b", "a"], named=True) == (["b", "a"], None)
    # Discovered: a new zone joins at the end whatever its name; a vanished one stays.
    assert stable_zones(["east", "west"], ["central", "east", "west"], named=False) == (
        ["east", "west", "central"], None)
    assert stable_zones(["east", "west"], ["west"], named=False) == (["east", "west"], None)
    # Named: appending is fine; dropping or reordering is refused and the recorded kept.
    assert stable_zones(["a", "b"], ["a", "b", "c"], named=True) == (["a", "b", "c"], None)
    for wanted in (["a", "c"], ["b", "a"], ["a"]):
        zones, refused = stable_zones(["a", "b", "c"], wanted, named=True)
        assert zones == ["a", "b", "c"] and refused is not None
