"""Properties of zone-aware placement and reassignment, checked with hypothesis."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, milp

from headrace.placement import (
    BrokerSlot,
    PlacementError,
    count_moves,
    load_of,
    place_new_partitions,
    plan_reassignment,
)

# Derandomized so CI sees the same examples every run; PLACEMENT_EXAMPLES=2000 digs deeper.
settings.register_profile("headrace", deadline=None, derandomize=True,
                          max_examples=int(os.environ.get("PLACEMENT_EXAMPLES", "60")))
settings.load_profile("headrace")


def _brokers(zones: int, per_zone: Sequence[int]) -> list[BrokerSlot]:
    """Brokers numbered zone index * 1000 + ordinal; zones == 0 means zone-less brokers."""
    if zones == 0:
        return [BrokerSlot(b, None) for b in range(per_zone[0])]
    return [BrokerSlot(z * 1000 + o, f"zone-{z}") for z in range(zones)
            for o in range(per_zone[z])]


@st.composite
def equal_clusters(draw: st.DrawFn, min_brokers: int = 1) -> list[BrokerSlot]:
    zones = draw(st.integers(0, 4))
    size = draw(st.integers(1, 4 if zones else 9))
    brokers = _brokers(zones, [size] * max(zones, 1))
    if len(brokers) < min_brokers:
        brokers = _brokers(0, [min_brokers])
    return brokers


@st.composite
def uneven_clusters(draw: st.DrawFn) -> list[BrokerSlot]:
    zones = draw(st.integers(1, 4))
    return _brokers(zones, draw(st.lists(st.integers(1, 4), min_size=zones, max_size=zones)))


def _zones(brokers: Sequence[BrokerSlot]) -> dict[int, str]:
    return {b.broker_id: b.zone or f"solo-{b.broker_id}" for b in brokers}


def _assert_valid(brokers: Sequence[BrokerSlot], assignment: Mapping[int, Sequence[int]],
                  replication_factor: int | None = None) -> None:
    zone_of = _zones(brokers)
    zone_count = len(set(zone_of.values()))
    for partition, replicas in assignment.items():
        if replication_factor is not None:
            assert len(replicas) == replication_factor, (partition, replicas)
        assert len(set(replicas)) == len(replicas), (partition, replicas)
        assert set(replicas) <= set(zone_of), (partition, replicas)
        if len(replicas) <= zone_count:
            zones = [zone_of[b] for b in replicas]
            assert len(set(zones)) == len(zones), (partition, replicas)


def _spread(brokers: Sequence[BrokerSlot], counts: Mapping[int, int]) -> int:
    values = [counts.get(b.broker_id, 0) for b in brokers]
    return max(values) - min(values)


def _assert_balanced(brokers: Sequence[BrokerSlot],
                     *assignments: Mapping[int, Sequence[int]]) -> None:
    replicas, leaders = load_of(assignments)
    assert _spread(brokers, replicas) <= 1, replicas
    assert _spread(brokers, leaders) <= 1, leaders


def _assert_minimal_moves(brokers: Sequence[BrokerSlot], current: Mapping[int, Sequence[int]],
                          target: Mapping[int, Sequence[int]], replication_factor: int) -> None:
    moves = count_moves(current, target)
    fewest = fewest_moves(brokers, current, replication_factor)
    if all(b.zone is None for b in brokers):
        assert moves == fewest
    else:
        # Greedy placement under the zone rule occasionally needs one move more than the optimum.
        assert fewest <= moves <= fewest + 1


def fewest_moves(brokers: Sequence[BrokerSlot], current: Mapping[int, Sequence[int]],
                 replication_factor: int) -> int:
    """The exact fewest replica copies into any balanced, zone-valid target (an integer program).

    Variables x[p, b] = 1 when broker b holds partition p; each partition has the replication
    factor, at most the zone cap per zone, and each broker holds floor or ceil of the average.
    Maximising the replicas left in place minimises the copies.
    """
    ids = [b.broker_id for b in brokers]
    zone_of = _zones(brokers)
    partitions = sorted(current)
    column = {(p, b): i for i, (p, b) in enumerate((p, b) for p in partitions for b in ids)}
    keep_reward = np.zeros(len(column))
    for p in partitions:
        for b in current[p]:
            if b in zone_of:
                keep_reward[column[p, b]] = -1
    zone_sizes = Counter(zone_of.values())
    cap = 1
    while sum(min(size, cap) for size in zone_sizes.values()) < replication_factor:
        cap += 1
    rows: list[np.ndarray[Any, Any]] = []
    lower: list[int] = []
    upper: list[int] = []

    def constrain(cells: list[int], low: int, high: int) -> None:
        row = np.zeros(len(column))
        row[cells] = 1
        rows.append(row)
        lower.append(low)
        upper.append(high)

    for p in partitions:
        constrain([column[p, b] for b in ids], replication_factor, replication_factor)
        for zone in zone_sizes:
            constrain([column[p, b] for b in ids if zone_of[b] == zone], 0, cap)
    base, extra = divmod(len(partitions) * replication_factor, len(ids))
    for b in ids:
        constrain([column[p, b] for p in partitions], base, base + (1 if extra else 0))
    result = milp(keep_reward, constraints=LinearConstraint(np.array(rows), lower, upper),
                  integrality=np.ones(len(column)), bounds=Bounds(0, 1))
    assert result.success, result.message
    return len(partitions) * replication_factor + round(float(result.fun))


@given(equal_clusters(), st.integers(0, 40), st.data())
def test_new_partitions_are_spread_over_zones_and_balanced(
        brokers: list[BrokerSlot], partitions: int, data: st.DataObject) -> None:
    rf = data.draw(st.integers(1, min(len(brokers), 4)))
    assignment = place_new_partitions(brokers, partitions, rf)
    assert sorted(assignment) == list(range(partitions))
    _assert_valid(brokers, assignment, rf)
    _assert_balanced(brokers, assignment)


@given(uneven_clusters(), st.integers(1, 30), st.data())
def test_zones_stay_distinct_with_uneven_zones(
        brokers: list[BrokerSlot], partitions: int, data: st.DataObject) -> None:
    rf = data.draw(st.integers(1, min(len(brokers), 5)))
    _assert_valid(brokers, place_new_partitions(brokers, partitions, rf), rf)


@given(equal_clusters(), st.integers(1, 20), st.integers(1, 20), st.data())
def test_growing_a_topic_keeps_existing_partitions_and_balance(
        brokers: list[BrokerSlot], first: int, more: int, data: st.DataObject) -> None:
    rf = data.draw(st.integers(1, min(len(brokers), 3)))
    existing = place_new_partitions(brokers, first, rf)
    grown = place_new_partitions(brokers, more, rf, existing=existing, first_partition=first)
    assert sorted(grown) == list(range(first, first + more))
    _assert_valid(brokers, grown, rf)
    replicas, leaders = load_of([existing, grown])
    assert _spread(brokers, replicas) <= 1, replicas
    # Existing partitions keep their leaders, so the new ones cannot always even them out.
    assert _spread(brokers, leaders) <= 2, leaders


@given(equal_clusters(), st.lists(st.integers(1, 12), min_size=2, max_size=5), st.data())
def test_load_of_other_topics_keeps_the_cluster_balanced(
        brokers: list[BrokerSlot], partition_counts: list[int], data: st.DataObject) -> None:
    topics: list[dict[int, list[int]]] = []
    for partitions in partition_counts:
        rf = data.draw(st.integers(1, min(len(brokers), 3)))
        load, leader_load = load_of(topics)
        topics.append(place_new_partitions(brokers, partitions, rf,
                                           load=load, leader_load=leader_load))
        _assert_valid(brokers, topics[-1], rf)
    replicas, leaders = load_of(topics)
    assert _spread(brokers, replicas) <= 1, replicas
    # Each topic is placed once, so leaders of earlier topics cannot be evened out later;
    # counting them keeps the cluster-wide leader spread small (best effort), not within one.
    assert _spread(brokers, leaders) <= 3, leaders


@given(equal_clusters(), st.integers(1, 30), st.data())
def test_a_balanced_assignment_is_left_alone(
        brokers: list[BrokerSlot], partitions: int, data: st.DataObject) -> None:
    rf = data.draw(st.integers(1, min(len(brokers), 4)))
    current = place_new_partitions(brokers, partitions, rf)
    assert plan_reassignment(brokers, current) == current


@given(st.integers(0, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 16), st.data())
def test_scale_up_moves_only_what_balance_needs(
        zones: int, before: int, added: int, partitions: int, data: st.DataObject) -> None:
    old = _brokers(zones, [before] * max(zones, 1))
    new = _brokers(zones, [before + added] * max(zones, 1))
    rf = data.draw(st.integers(1, min(len(old), 3)))
    current = place_new_partitions(old, partitions, rf)
    target = plan_reassignment(new, current)
    _assert_valid(new, target, rf)
    _assert_balanced(new, target)
    _assert_minimal_moves(new, current, target, rf)


@given(st.integers(0, 3), st.integers(2, 4), st.integers(1, 16), st.data())
def test_scale_down_drains_removed_brokers(
        zones: int, before: int, partitions: int, data: st.DataObject) -> None:
    old = _brokers(zones, [before] * max(zones, 1))
    after = data.draw(st.integers(1, before - 1))
    remaining = _brokers(zones, [after] * max(zones, 1))
    rf = data.draw(st.integers(1, min(len(remaining), 3)))
    current = place_new_partitions(old, partitions, rf)
    target = plan_reassignment(remaining, current)
    _assert_valid(remaining, target, rf)
    _assert_balanced(remaining, target)
    _assert_minimal_moves(remaining, current, target, rf)


@given(uneven_clusters(), st.integers(1, 20), st.data())
def test_reassignment_repairs_zone_violations(
        brokers: list[BrokerSlot], partitions: int, data: st.DataObject) -> None:
    rf = data.draw(st.integers(1, min(len(brokers), 3)))
    ids = [b.broker_id for b in brokers]
    # An arbitrary assignment that ignores zones entirely.
    current = {p: data.draw(st.permutations(ids))[:rf] for p in range(partitions)}
    _assert_valid(brokers, plan_reassignment(brokers, current), rf)


def test_replication_factor_change_adds_and_removes_replicas() -> None:
    brokers = _brokers(3, [2, 2, 2])
    current = place_new_partitions(brokers, 6, 2)
    raised = plan_reassignment(brokers, current, replication_factor=3)
    _assert_valid(brokers, raised, 3)
    assert all(set(current[p]) <= set(raised[p]) for p in current)
    lowered = plan_reassignment(brokers, raised, replication_factor=1)
    _assert_valid(brokers, lowered, 1)
    _assert_balanced(brokers, lowered)


def test_errors_are_placement_errors() -> None:
    brokers = _brokers(0, [2])
    with pytest.raises(PlacementError, match="exceeds"):
        place_new_partitions(brokers, 1, 3)
    with pytest.raises(PlacementError):
        place_new_partitions(brokers, 1, 0)
    with pytest.raises(PlacementError):
        place_new_partitions([], 1, 1)
    with pytest.raises(PlacementError, match="already exist"):
        place_new_partitions(brokers, 2, 1, existing={0: [0]})
    with pytest.raises(PlacementError, match="exceeds"):
        plan_reassignment(brokers[:1], {0: [0, 1]})
    assert issubclass(PlacementError, ValueError)


def test_preferred_leaders_rotate_over_brokers() -> None:
    brokers = _brokers(3, [1, 1, 1])
    assignment = place_new_partitions(brokers, 3, 3)
    assert sorted(r[0] for r in assignment.values()) == [0, 1000, 2000]
