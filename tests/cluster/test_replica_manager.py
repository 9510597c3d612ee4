"""The clustered leader's ISR upkeep on a real log, driven by plain metadata (no etcd)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from headrace.cluster.model import PartitionState
from headrace.cluster.replica_manager import ClusteredReplicaManager
from headrace.storage import LogManager
from tests.support.batches import make_batch

TOPIC = "t"
LEADER, FOLLOWER, STALLED = 1, 2, 3


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[ClusteredReplicaManager]:
    logs = LogManager(tmp_path)
    logs.create_topic(TOPIC, 1)
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
