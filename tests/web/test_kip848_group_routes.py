"""The HTTP API's consumer-group routes and the lag metric describe a KIP-848 group
(``group.protocol=consumer``) as they do a classic one: its state under Kafka's name, its member
with its partitions, committed offsets and lag."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.brokers import RunningBroker
from tests.support.clients import confluent_producer
from tests.support.kip848_consumer import Kip848Consumer
from tests.support.waiting import eventually_async

PARTITIONS = 3


def _produce(bootstrap: str, topic: str, per_partition: int) -> None:
    producer = confluent_producer(bootstrap, {"acks": "all"})
    for index in range(per_partition * PARTITIONS):
        producer.produce(topic, value=b"v%d" % index, partition=index % PARTITIONS)
    assert producer.flush(20) == 0


async def _get(running: RunningBroker, path: str) -> Any:
    async with running.session.get(running.cluster_url + path) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def _lag_metric(running: RunningBroker, group: str) -> dict[int, float]:
    async with running.session.get(running.base_url + "/metrics") as response:
        text = await response.text()
    return {int(s.labels["partition"]): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == "headrace_consumer_group_lag" and s.labels.get("group") == group}


async def test_a_consumer_protocol_group_is_described_with_members_and_lag(
        running: RunningBroker) -> None:
    topic, group = "kip848-http", "kip848-http-group"
    await running.create_topic(topic, partitions=PARTITIONS)
    await asyncio.to_thread(_produce, running.bootstrap, topic, 4)
    with Kip848Consumer(running.bootstrap, group, topic, commit_after=4 * PARTITIONS) as member:
        await asyncio.to_thread(member.wait_committed)

        async def stable() -> bool:
            described = await _get(running, f"/consumer-groups/{group}")
            return bool(described["state"] == "STABLE")

        await eventually_async(stable, timeout=30, message="the group Stable over HTTP")
        described = await _get(running, f"/consumer-groups/{group}")
        assert described["members_count"] == 1 and described["is_simple"] is False
        assert described["partition_assignor"] == "uniform"
        assert described["generation_id"] >= 1
        listed = await _get(running, "/consumer-groups")
        assert {g["consumer_group_id"]: g["state"] for g in listed["data"]}[group] == "STABLE"
        consumers = (await _get(running, f"/consumer-groups/{group}/consumers"))["data"]
        assert len(consumers) == 1
        (consumer,) = consumers
        assert sorted((a["topic_name"], a["partition_id"]) for a in consumer["assignments"]) == [
            (topic, p) for p in range(PARTITIONS)]

        await asyncio.to_thread(_produce, running.bootstrap, topic, 3)  # past the commits
        lags = (await _get(running, f"/consumer-groups/{group}/lags"))["data"]
        assert {lag["partition_id"]: (lag["current_offset"], lag["log_end_offset"], lag["lag"])
                for lag in lags} == {p: (4, 7, 3) for p in range(PARTITIONS)}
        assert {lag["consumer_id"] for lag in lags} == {consumer["consumer_id"]}
        summary = await _get(running, f"/consumer-groups/{group}/lag-summary")
        assert summary["total_lag"] == 3 * PARTITIONS and summary["max_lag"] == 3
        assert summary["max_lag_consumer_id"] == consumer["consumer_id"]

        async def metric_matches() -> bool:
            return await _lag_metric(running, group) == {p: 3.0 for p in range(PARTITIONS)}

        await eventually_async(metric_matches, timeout=30,
                               message="headrace_consumer_group_lag matching the HTTP lag")
