"""The initial rebalance delay with real clients against a real ``headrace broker`` process.

Two confluent-kafka consumers subscribing together to an empty group must land in ONE
generation with a balanced assignment, each getting its partitions exactly once: without the
delay the first joiner completes a rebalance alone and the second forces another.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.support.brokers import BrokerProcess
from tests.support.clients import confluent_consumer, create_topic
from tests.support.waiting import eventually

DELAY_MS = 1000
PARTITIONS = 4


@pytest.fixture
def delayed_broker(start_broker: Callable[..., BrokerProcess]) -> BrokerProcess:
    return start_broker("--group-initial-rebalance-delay-ms", str(DELAY_MS))


def http_json(broker: BrokerProcess, path: str) -> Any:
    url = f"http://127.0.0.1:{broker.http_port}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def group_view(broker: BrokerProcess, group: str) -> dict[str, Any]:
    cluster_id = http_json(broker, "/v3/clusters")["data"][0]["cluster_id"]
    view: dict[str, Any] = http_json(
        broker, f"/v3/clusters/{cluster_id}/consumer-groups/{group}"
    )
    return view


def test_consumers_starting_together_share_one_generation(
    delayed_broker: BrokerProcess,
) -> None:
    bootstrap = delayed_broker.bootstrap
    topic, group = f"delay-{uuid.uuid4().hex[:8]}", f"delay-group-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, PARTITIONS)

    assignments: dict[int, list[set[int]]] = {0: [], 1: []}
    revocations: dict[int, int] = {0: 0, 1: 0}

    def callbacks(index: int) -> dict[str, Any]:
        def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            assignments[index].append({tp.partition for tp in partitions})

        def on_revoke(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            if partitions:
                revocations[index] += 1

        return {"on_assign": on_assign, "on_revoke": on_revoke}

    consumers = [
        confluent_consumer(bootstrap, {
            "group.id": group, "client.id": f"delay-{index}",
            "partition.assignment.strategy": "range", "session.timeout.ms": 10_000,
            "enable.auto.commit": False,
        })
        for index in range(2)
    ]
    try:
        started = time.monotonic()
        for index, consumer in enumerate(consumers):
            consumer.subscribe([topic], **callbacks(index))
        def both_assigned() -> bool:
            for consumer in consumers:
                consumer.poll(0.1)
            return bool(assignments[0] and assignments[1])

        eventually(both_assigned, timeout=60, interval=0,
                   message=lambda: f"an assignment for both: {assignments}")
        first_assignment_after = time.monotonic() - started
        # Poll a little longer so a second rebalance, had there been one, would show up.
        settle_until = time.monotonic() + 1.5
        while time.monotonic() < settle_until:
            for consumer in consumers:
                consumer.poll(0.1)

        view = group_view(delayed_broker, group)
        assert view["generation_id"] == 1, view
        assert view["state"] == "STABLE"
        assert view["members_count"] == 2
        assert first_assignment_after >= DELAY_MS / 1000
        assert revocations == {0: 0, 1: 0}
        assert [len(a) for a in assignments.values()] == [1, 1], assignments
        split = [assignments[0][0], assignments[1][0]]
        assert sorted(len(s) for s in split) == [2, 2]
        assert split[0] | split[1] == set(range(PARTITIONS))
    finally:
        for consumer in consumers:
            consumer.close()
