"""v2 consumer instances (real group members) and v3 group views with lag."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest

from tests.support.brokers import RunningBroker
from tests.support.waiting import eventually_async
from tests.web.test_rest_interop import produce_with_confluent


async def _json(running: RunningBroker, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with running.session.request(method, url, **kwargs) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None


async def test_subscribed_instance_consumes_commits_and_shows_lag(running: RunningBroker) -> None:
    await running.create_topic("events", partitions=2)
    base = f"{running.base_url}/consumers/http-group"
    status, created = await _json(running, "POST", base, json={
        "name": "one", "format": "json", "auto.offset.reset": "earliest",
        "auto.commit.enable": "false"})
    assert status == 200, created
    instance = created["base_uri"]
    assert instance.endswith("/consumers/http-group/instances/one")
    status, conflict = await _json(running, "POST", base, json={"name": "one"})
    assert status == 409 and conflict["error_code"] == 40902

    assert (await _json(running, "POST", instance + "/subscription",
                        json={"topics": ["events"]}))[0] == 204
    status, subscription = await _json(running, "GET", instance + "/subscription")
    assert subscription == {"topics": ["events"]}

    records = [(f"k{i}".encode(), json.dumps({"i": i}).encode()) for i in range(10)]
    await asyncio.to_thread(produce_with_confluent, running.bootstrap, "events", records)

    got: list[dict[str, Any]] = []

    async def fetch() -> bool:
        status, batch = await _json(running, "GET", instance + "/records?timeout=500")
        assert status == 200, batch
        got.extend(batch)
        return len(got) >= 10

    await eventually_async(fetch, timeout=30, message="the 10 records over HTTP")
    assert sorted(r["value"]["i"] for r in got) == list(range(10))
    assert {r["key"] for r in got} == {f"k{i}" for i in range(10)}  # JSON-ish keys as text

    # Commit everything fetched; the group then has zero lag on both partitions.
    assert (await _json(running, "POST", instance + "/offsets"))[0] == 204
    status, committed = await _json(running, "GET", instance + "/offsets")
    per_partition = {o["partition"]: o["offset"] for o in committed["offsets"]}
    ends = {p: running.broker.offsets("events", p)[1] for p in (0, 1)}
    assert per_partition == ends

    group_url = f"{running.cluster_url}/consumer-groups/http-group"
    status, group = await _json(running, "GET", group_url)
    assert status == 200 and group["state"] == "STABLE" and group["members_count"] == 1
    status, consumers = await _json(running, "GET", group_url + "/consumers")
    (member,) = consumers["data"]
    assert member["client_id"] == "headrace-http-one"
    assert sorted(a["partition_id"] for a in member["assignments"]) == [0, 1]
    status, lags = await _json(running, "GET", group_url + "/lags")
    assert {(lag["partition_id"], lag["lag"]) for lag in lags["data"]} == {(0, 0), (1, 0)}

    # Two more records: lag 2 in total, visible over REST and in /metrics.
    await asyncio.to_thread(produce_with_confluent, running.bootstrap, "events",
                            [(b"k0", b"{}"), (b"k0", b"{}")])
    status, summary = await _json(running, "GET", group_url + "/lag-summary")
    assert summary["total_lag"] == 2 and summary["max_lag"] == 2
    registry = running.metrics.registry
    partition_of_k0 = next(r["partition"] for r in got if r["key"] == "k0")
    # /metrics shows the lag the coordinator last computed (refreshed in the background).
    await eventually_async(
        lambda: registry.get_sample_value("headrace_consumer_group_lag", {
            "group": "http-group", "topic": "events", "partition": str(partition_of_k0)}) == 2,
        timeout=10, message="lag 2 in /metrics")
    assert registry.get_sample_value("headrace_consumer_group_lag_sum",
                                     {"group": "http-group"}) == 2
    assert registry.get_sample_value("headrace_consumer_group_members",
                                     {"group": "http-group"}) == 1
    rebalances = registry.get_sample_value("headrace_consumer_group_rebalances_total",
                                           {"group": "http-group"})
    assert rebalances is not None and rebalances >= 1

    assert (await _json(running, "DELETE", instance))[0] == 204
    status, gone = await _json(running, "GET", instance + "/records")
    assert status == 404 and gone["error_code"] == 40403


async def test_assigned_instance_seeks_and_reads_binary(running: RunningBroker) -> None:
    await running.create_topic("assigned", partitions=1)
    await asyncio.to_thread(produce_with_confluent, running.bootstrap, "assigned",
                            [(b"a", b"\x00\x01"), (b"b", b"\x02"), (b"c", b"\x03")])
    status, created = await _json(running, "POST", f"{running.base_url}/consumers/g2",
                                  json={"format": "binary"})
    instance = created["base_uri"]
    partitions = {"partitions": [{"topic": "assigned", "partition": 0}]}
    assert (await _json(running, "POST", instance + "/assignments", json=partitions))[0] == 204
    status, assignment = await _json(running, "GET", instance + "/assignments")
    assert assignment == partitions
    assert (await _json(running, "POST", instance + "/positions", json={
        "offsets": [{"topic": "assigned", "partition": 0, "offset": 1}]}))[0] == 204
    got: list[dict[str, Any]] = []

    async def fetch() -> bool:
        got.extend((await _json(running, "GET", instance + "/records?timeout=300"))[1])
        return len(got) >= 2

    await eventually_async(fetch, timeout=20, message="records 1 and 2")
    assert [(r["offset"], base64.b64decode(r["value"])) for r in got] == [(1, b"\x02"),
                                                                          (2, b"\x03")]
    # Back to the beginning, then read with a byte cap: nothing is skipped between polls.
    assert (await _json(running, "POST", instance + "/positions/beginning",
                        json=partitions))[0] == 204
    capped: list[dict[str, Any]] = []

    async def fetch_capped() -> bool:
        status, batch = await _json(running, "GET", instance + "/records?timeout=300&max_bytes=1")
        assert status == 200 and len(batch) <= 1
        capped.extend(batch)
        return len(capped) >= 3

    await eventually_async(fetch_capped, timeout=20, message="3 records, one per poll")
    assert [r["offset"] for r in capped] == [0, 1, 2]
    assert (await _json(running, "POST", instance + "/positions/end", json=partitions))[0] == 204
    status, bad = await _json(running, "POST", instance + "/assignments", json={
        "partitions": [{"topic": "assigned", "partition": 9}]})
    assert status == 404 and bad["error_code"] == 40402
    status, bad = await _json(running, "POST", instance + "/subscription", json={"topics": []})
    assert status == 400 and bad["error_code"] == 40002
    started = time.monotonic()
    status, empty = await _json(running, "GET", instance + "/records?timeout=200")
    assert status == 200 and empty == [] and time.monotonic() - started >= 0.15
    assert (await _json(running, "DELETE", instance))[0] == 204


async def test_stream_from_group_position(running: RunningBroker) -> None:
    await running.create_topic("stream-me", partitions=1)
    await asyncio.to_thread(produce_with_confluent, running.bootstrap, "stream-me",
                            [(f"k{i}".encode(), f"v{i}".encode()) for i in range(6)])
    _, created = await _json(running, "POST", f"{running.base_url}/consumers/sse-group",
                             json={"name": "c"})
    instance = created["base_uri"]
    await _json(running, "POST", instance + "/assignments",
                json={"partitions": [{"topic": "stream-me", "partition": 0}]})
    assert (await _json(running, "POST", instance + "/offsets", json={
        "offsets": [{"topic": "stream-me", "partition": 0, "offset": 4}]}))[0] == 204
    url = f"{running.cluster_url}/topics/stream-me/stream?group=sse-group&format=string&limit=2"
    async with running.session.get(url) as response:
        text = await response.text()
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert [(e["offset"], e["value"]) for e in events] == [(4, "v4"), (5, "v5")]
    await _json(running, "DELETE", instance)


async def test_idle_instances_expire(running: RunningBroker) -> None:
    from headrace.web.consumers import ConsumerInstances
    from headrace.web.errors import ApiError

    instances = ConsumerInstances(running.bootstrap, instance_timeout_seconds=0.05)
    try:
        await instances.create("idle-group", "sleepy", "json", {})
        assert instances.get("idle-group", "sleepy").name == "sleepy"

        async def expired() -> bool:
            await instances.expire_idle()
            return ("idle-group", "sleepy") not in instances.names()

        await eventually_async(expired, timeout=10, message="the idle instance to expire")
        with pytest.raises(ApiError) as raised:
            instances.get("idle-group", "sleepy")
        assert raised.value.error_code == 40403
    finally:
        await instances.close()
