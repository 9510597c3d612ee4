"""The clustered leader's ISR upkeep and its replication figures on a real log, driven by plain
metadata (no etcd)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from headrace.cluster.model import PartitionState
from headrace.cluster.replica_manager import ClusteredReplicaManager
from headrace.storage import LogManager
from tests.support.batches import make_batch

TOPIC = "t"
STRICT = "strict"  # min.insync.replicas=3
LEADER, FOLLOWER, STALLED = 1, 2, 3
REPLICAS = (LEADER, FOLLOWER, STALLED)
EPOCHS = {LEADER: 7, FOLLOWER: 8, STALLED: 9}


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[ClusteredReplicaManager]:
    logs = LogManager(tmp_path)
    logs.create_topic(TOPIC, 1)
    logs.create_topic(STRICT, 1, {"min.insync.replicas": "3"})
    replicas = ClusteredReplicaManager(logs, LEADER)
    yield replicas
    logs.close()


def lead_without_the_stalled_follower(
    manager: ClusteredReplicaManager, isr_candidates: frozenset[int]
) -> list[PartitionState]:
    proposals: list[PartitionState] = []
    manager.propose_isr = proposals.append
    replicas = (LEADER, FOLLOWER, STALLED)
    state = PartitionState(TOPIC, 0, replicas, LEADER, 3, (LEADER, FOLLOWER), 9, 7)
    epochs = {LEADER: 7, FOLLOWER: 8, STALLED: 9}
    manager.apply_states({(TOPIC, 0): state}, 7, epochs, isr_candidates)
    return proposals


def test_caught_up_follower_rejoins_the_isr(manager: ClusteredReplicaManager) -> None:
    proposals = lead_without_the_stalled_follower(manager, frozenset({LEADER, FOLLOWER, STALLED}))
    manager.log(TOPIC, 0).append(make_batch([b"a", b"b"]), leader_epoch=3)
    manager.record_follower_fetch(TOPIC, 0, FOLLOWER, 2)
    manager.record_follower_fetch(TOPIC, 0, STALLED, 2)
    assert [p.isr for p in proposals] == [(LEADER, FOLLOWER, STALLED)]


def test_fenced_follower_is_not_readmitted_even_when_caught_up(
    manager: ClusteredReplicaManager,
) -> None:
    # STALLED's lease expired or it re-registered unseen: the controller is dropping it anyway.
    proposals = lead_without_the_stalled_follower(manager, frozenset({LEADER, FOLLOWER}))
    manager.log(TOPIC, 0).append(make_batch([b"a", b"b"]), leader_epoch=3)
    manager.record_follower_fetch(TOPIC, 0, FOLLOWER, 2)
    manager.record_follower_fetch(TOPIC, 0, STALLED, 2)
    assert proposals == []
    assert manager.high_watermark(TOPIC, 0) == 2  # the ISR members still commit


class RecordedIsrChanges:
    """An ISR change observer that remembers what it was told."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, str, int]] = []

    def on_isr_shrink(self, topic: str, partition: int) -> None:
        self.changes.append(("shrink", topic, partition))

    def on_isr_expand(self, topic: str, partition: int) -> None:
        self.changes.append(("expand", topic, partition))


def led(topic: str, isr: tuple[int, ...], leader_epoch: int = 3) -> PartitionState:
    return PartitionState(topic, 0, REPLICAS, LEADER, leader_epoch, isr, 9, 7)


def test_isr_changes_that_reach_the_leader_are_reported(manager: ClusteredReplicaManager) -> None:
    observer = RecordedIsrChanges()
    manager.isr_observer = observer

    def apply(state: PartitionState) -> None:
        manager.apply_states({(TOPIC, 0): state}, 7, EPOCHS, frozenset(REPLICAS))

    apply(led(TOPIC, REPLICAS))  # becoming leader changes no ISR
    apply(led(TOPIC, REPLICAS))  # nor does the same state seen again
    apply(led(TOPIC, (LEADER,)))  # two followers leave at once: one shrink of the partition
    apply(led(TOPIC, (LEADER, FOLLOWER)))
    apply(led(TOPIC, REPLICAS))
    assert observer.changes == [("shrink", TOPIC, 0), ("expand", TOPIC, 0), ("expand", TOPIC, 0)]
    observer.changes.clear()
    # A completed reassignment drops a replica from the replica set and the ISR: no shrink.
    apply(PartitionState(TOPIC, 0, (LEADER, FOLLOWER), LEADER, 3, (LEADER, FOLLOWER), 10, 7))
    # A new leader epoch is a new leadership, not an ISR change of the old one.
    apply(led(TOPIC, (LEADER,), leader_epoch=4))
    assert observer.changes == []


def test_replication_health_counts_led_partitions(manager: ClusteredReplicaManager) -> None:
    def apply(isr: tuple[int, ...], strict_isr: tuple[int, ...]) -> tuple[int, int]:
        manager.apply_states({(TOPIC, 0): led(TOPIC, isr), (STRICT, 0): led(STRICT, strict_isr)},
                             7, EPOCHS, frozenset(REPLICAS))
        return manager.replication_health()

    assert apply(REPLICAS, REPLICAS) == (0, 0)
    assert apply((LEADER, FOLLOWER), REPLICAS) == (1, 0)  # min.insync.replicas=1 still met
    assert apply((LEADER, FOLLOWER), (LEADER, FOLLOWER)) == (2, 1)
    # Partitions led elsewhere are that leader's to count.
    following = PartitionState(STRICT, 0, REPLICAS, FOLLOWER, 3, (FOLLOWER,), 9, 8)
    manager.apply_states({(STRICT, 0): following}, 7, EPOCHS, frozenset(REPLICAS))
    assert manager.replication_health() == (0, 0)
