"""Every broker's HTTP API serves the whole cluster (issue 15): on a real three-broker cluster
(etcd), each route family answers the same from each broker, whichever broker leads the
partitions or coordinates the group.

One cluster for the module (CPU is scarce); each test uses topics and groups of its own.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from headrace.cluster.devcluster import BrokerProcess, DevCluster
from tests.support.clients import confluent_consumer
from tests.support.clusters import FAST_FLAGS, all_led, partition_states
from tests.support.kip848_consumer import Kip848Consumer
from tests.support.waiting import eventually

PARTITIONS = 6


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    root: Path = tmp_path_factory.mktemp("http-cluster")
    local = DevCluster(root / "cluster", 3, extra_args=FAST_FLAGS)
    try:
        local.start()
        yield local
    finally:
        local.stop()


def _call(broker: BrokerProcess, method: str, path: str, body: Any = None,
          timeout: float = 30) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{broker.http_port}{path}", data=data, method=method,
        headers={"Content-Type": "application/json"} if data is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    text = raw.decode()
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def _cluster_path(cluster: DevCluster) -> str:
    status, clusters = _call(cluster.brokers[0], "GET", "/v3/clusters")
    assert status == 200, clusters
    return f"/v3/clusters/{clusters['data'][0]['cluster_id']}"


def _create_topic(cluster: DevCluster, name: str) -> None:
    status, created = _call(cluster.brokers[0], "POST", _cluster_path(cluster) + "/topics",
                            {"topic_name": name, "partitions_count": PARTITIONS,
                             "replication_factor": 3})
    assert status == 201, created
    # A broker asked before the topic reached its metadata answers UNKNOWN_TOPIC: ask again.
    eventually(lambda: all_led(cluster.bootstrap, name, PARTITIONS), timeout=30,
               message=f"leaders for every partition of {name}", retry_on=(RuntimeError,))


def _leaders(cluster: DevCluster, topic: str) -> dict[int, int]:
    return {p: leader for p, (leader, _, _) in partition_states(cluster.bootstrap, topic).items()}


def _produce(broker: BrokerProcess, base: str, topic: str, partition: int, value: str
             ) -> dict[str, Any]:
    status, result = _call(broker, "POST", f"{base}/topics/{topic}/records", {
        "partition_id": partition, "value": {"type": "STRING", "data": value}})
    assert status == 200, (broker.broker_id, partition, result)
    return dict(result)


def test_topics_and_partitions_are_listed_from_each_broker(cluster: DevCluster) -> None:
    base = _cluster_path(cluster)
    _create_topic(cluster, "listed")
    leaders = _leaders(cluster, "listed")
    assert len(set(leaders.values())) > 1, "partitions should be led by several brokers"
    for broker in cluster.brokers:
        status, topics = _call(broker, "GET", base + "/topics")
        assert status == 200 and "listed" in {t["topic_name"] for t in topics["data"]}
        status, listing = _call(broker, "GET", base + "/topics/listed/partitions")
        assert status == 200, (broker.broker_id, listing)
        assert [p["partition_id"] for p in listing["data"]] == list(range(PARTITIONS))
        for entry in listing["data"]:
            partition = entry["partition_id"]
            assert entry["leader"]["broker_id"] == leaders[partition]
            assert sorted(r["broker_id"] for r in entry["replicas"]) == [1, 2, 3]
            assert entry["earliest_offset"] == 0 and entry["latest_offset"] == 0
        status, one = _call(broker, "GET", base + "/topics/listed/partitions/5")
        assert status == 200 and one["latest_offset"] == 0, one


def test_produce_and_offsets_from_each_broker(cluster: DevCluster) -> None:
    base = _cluster_path(cluster)
    _create_topic(cluster, "written")
    for broker in cluster.brokers:  # every broker writes every partition, led here or not
        for partition in range(PARTITIONS):
            result = _produce(broker, base, "written", partition, f"b{broker.broker_id}")
            assert result["partition_id"] == partition
            assert result["offset"] == broker.broker_id - 1
    for broker in cluster.brokers:
        status, listing = _call(broker, "GET", base + "/topics/written/partitions")
        assert status == 200
        assert [p["latest_offset"] for p in listing["data"]] == [3] * PARTITIONS


def _sse_events(broker: BrokerProcess, path: str) -> list[dict[str, Any]]:
    status, text = _call(broker, "GET", path)
    assert status == 200, text
    return [json.loads(line[len("data: "):]) for line in str(text).splitlines()
            if line.startswith("data: ")]


def test_record_stream_from_each_broker(cluster: DevCluster) -> None:
    base = _cluster_path(cluster)
    _create_topic(cluster, "streamed")
    for partition in range(PARTITIONS):
        _produce(cluster.brokers[0], base, "streamed", partition, f"p{partition}")
    for broker in cluster.brokers:
        events = _sse_events(broker, f"{base}/topics/streamed/stream?from=beginning"
                                     f"&limit={PARTITIONS}&keepalive_ms=500")
        assert sorted((e["partition"], e["value"]) for e in events) == [
            (p, f"p{p}") for p in range(PARTITIONS)]
        # One partition from an offset, and from a timestamp.
        events = _sse_events(broker, f"{base}/topics/streamed/stream?partition=4&offset=0"
                                     "&limit=1")
        assert [(e["partition"], e["offset"]) for e in events] == [(4, 0)]
        events = _sse_events(broker, f"{base}/topics/streamed/stream?timestamp=0&limit=2")
        assert len(events) == 2


def _read_all_through(broker: BrokerProcess, topic: str) -> None:
    """A v2 consumer instance on ``broker`` reads every partition of ``topic`` and commits."""
    group = f"v2-group-{broker.broker_id}"
    status, created = _call(broker, "POST", f"/consumers/{group}", {
        "name": "one", "format": "json", "auto.offset.reset": "earliest"})
    assert status == 200, created
    instance = f"/consumers/{group}/instances/one"
    try:
        status, _ = _call(broker, "POST", instance + "/assignments", {"partitions": [
            {"topic": topic, "partition": p} for p in range(PARTITIONS)]})
        assert status == 204
        got: list[dict[str, Any]] = []

        def read_all() -> bool:
            status, batch = _call(broker, "GET", instance + "/records?timeout=500")
            assert status == 200, batch
            got.extend(batch)
            return len(got) >= PARTITIONS

        eventually(read_all, timeout=30, interval=0, message=f"records via {group}")
        assert sorted(r["partition"] for r in got) == list(range(PARTITIONS))
        status, _ = _call(broker, "POST", instance + "/offsets")
        assert status == 204
        status, committed = _call(broker, "GET", instance + "/offsets")
        assert status == 200
        assert {o["offset"] for o in committed["offsets"]} == {1}
    finally:
        _call(broker, "DELETE", instance)


def test_v2_consumer_instances_from_each_broker(cluster: DevCluster) -> None:
    base = _cluster_path(cluster)
    _create_topic(cluster, "instanced")
    for partition in range(PARTITIONS):
        _produce(cluster.brokers[0], base, "instanced", partition, f"v{partition}")
    for broker in cluster.brokers:
        _read_all_through(broker, "instanced")


def _metric(broker: BrokerProcess, name: str, labels: dict[str, str]) -> float | None:
    status, text = _call(broker, "GET", "/metrics")
    assert status == 200
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in str(text).splitlines():
        if line.startswith(f"{name}{{") and line.split("}")[0][len(name) + 1:] == wanted:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_consumer_groups_and_lag_from_each_broker(cluster: DevCluster) -> None:
    base = _cluster_path(cluster)
    _create_topic(cluster, "lagging")
    group = "lag-group"
    for partition in range(PARTITIONS):
        for index in range(3):
            _produce(cluster.brokers[partition % 3], base, "lagging", partition, f"r{index}")
    # The group commits offset 1 on every partition, then records keep coming: lag 2 + 4.
    consumer = confluent_consumer(cluster.bootstrap, {"group.id": group,
                                                      "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition("lagging", p, 1) for p in range(PARTITIONS)],
                        asynchronous=False)
    finally:
        consumer.close()
    for partition in range(PARTITIONS):
        for index in range(4):
            _produce(cluster.brokers[2], base, "lagging", partition, f"late{index}")
    expected = {p: 2 + 4 for p in range(PARTITIONS)}
    coordinators = set()
    for broker in cluster.brokers:
        status, listed = _call(broker, "GET", base + "/consumer-groups")
        assert status == 200, listed
        assert group in {g["consumer_group_id"] for g in listed["data"]}
        status, described = _call(broker, "GET", f"{base}/consumer-groups/{group}")
        assert status == 200 and described["state"] == "EMPTY", described
        coordinators.add(described["coordinator"]["broker_id"])
        status, lags = _call(broker, "GET", f"{base}/consumer-groups/{group}/lags")
        assert status == 200, lags
        assert {lag["partition_id"]: lag["lag"] for lag in lags["data"]} == expected
        assert {lag["current_offset"] for lag in lags["data"]} == {1}
        assert {lag["log_end_offset"] for lag in lags["data"]} == {7}
        status, summary = _call(broker, "GET", f"{base}/consumer-groups/{group}/lag-summary")
        assert status == 200 and summary["total_lag"] == sum(expected.values()), summary
        assert summary["max_lag"] == 6
        status, missing = _call(broker, "GET", f"{base}/consumer-groups/no-such-group")
        assert status == 404 and missing["error_code"] == 40405
    (coordinator_id,) = coordinators
    coordinator = cluster.broker(coordinator_id)
    # The coordinator exports the lag it computes in the background, for every partition.
    eventually(lambda: _metric(coordinator, "headrace_consumer_group_lag_sum",
                               {"group": group}) == sum(expected.values()),
               timeout=30, message="headrace_consumer_group_lag_sum on the coordinator")
    for partition in range(PARTITIONS):
        assert _metric(coordinator, "headrace_consumer_group_lag", {
            "group": group, "topic": "lagging", "partition": str(partition)}) == 6
    for broker in cluster.brokers:
        if broker is not coordinator:  # one broker exports a group's lag
            assert _metric(broker, "headrace_consumer_group_lag_sum", {"group": group}) is None


def test_a_crashed_leader_is_retried_then_a_clear_503(cluster: DevCluster) -> None:
    """Last in the module: it crashes a broker (and restarts it)."""
    base = _cluster_path(cluster)
    _create_topic(cluster, "moving")
    leaders = _leaders(cluster, "moving")
    victim = cluster.broker(leaders[0])
    survivor = next(b for b in cluster.brokers if b is not victim)
    victim.kill()
    try:
        # Right after the crash: the retry after the metadata moves succeeds, or the answer
        # is a 503 in the v3 error shape that names the partition; never a 500 or a hang.
        status, answer = _call(survivor, "POST", f"{base}/topics/moving/records", {
            "partition_id": 0, "value": {"type": "STRING", "data": "x"}})
        assert status == 200 or (status == 503 and answer["error_code"] == 50301
                                 and "moving-0" in answer["message"]), (status, answer)

        def writable() -> bool:
            status, _ = _call(survivor, "POST", f"{base}/topics/moving/records", {
                "partition_id": 0, "value": {"type": "STRING", "data": "y"}})
            return status == 200

        eventually(writable, timeout=30, message="moving-0 writable through a survivor")
        status, listing = _call(survivor, "GET", base + "/topics/moving/partitions")
        assert status == 200 and listing["data"][0]["leader"]["broker_id"] != victim.broker_id
    finally:
        victim.start()


def test_a_consumer_protocol_group_from_a_broker_not_coordinating_it(cluster: DevCluster
                                                                    ) -> None:
    base = _cluster_path(cluster)
    _create_topic(cluster, "kip848-lagging")
    group = "kip848-cluster-group"
    for partition in range(PARTITIONS):
        _produce(cluster.brokers[0], base, "kip848-lagging", partition, "early")
    with Kip848Consumer(cluster.bootstrap, group, "kip848-lagging",
                        commit_after=PARTITIONS) as member:
        member.wait_committed()
        for partition in range(PARTITIONS):
            for index in range(2):
                _produce(cluster.brokers[1], base, "kip848-lagging", partition, f"late{index}")
        status, described = _call(cluster.brokers[0], "GET", f"{base}/consumer-groups/{group}")
        assert status == 200, described
        coordinator_id = described["coordinator"]["broker_id"]
        asked = next(b for b in cluster.brokers if b.broker_id != coordinator_id)

        def stable() -> bool:
            status, described = _call(asked, "GET", f"{base}/consumer-groups/{group}")
            assert status == 200, described
            return bool(described["state"] == "STABLE")

        eventually(stable, timeout=30, message="the group Stable from a non-coordinator")
        status, consumers = _call(asked, "GET", f"{base}/consumer-groups/{group}/consumers")
        assert status == 200, consumers
        (consumer,) = consumers["data"]
        assert sorted(a["partition_id"] for a in consumer["assignments"]) == list(
            range(PARTITIONS))
        status, lags = _call(asked, "GET", f"{base}/consumer-groups/{group}/lags")
        assert status == 200, lags
        assert {lag["partition_id"]: (lag["current_offset"], lag["lag"], lag["consumer_id"])
                for lag in lags["data"]} == {
            p: (1, 2, consumer["consumer_id"]) for p in range(PARTITIONS)}
        status, summary = _call(asked, "GET", f"{base}/consumer-groups/{group}/lag-summary")
        assert status == 200 and summary["total_lag"] == 2 * PARTITIONS, summary
        coordinator = cluster.broker(coordinator_id)
        eventually(lambda: _metric(coordinator, "headrace_consumer_group_lag_sum",
                                   {"group": group}) == 2 * PARTITIONS,
                   timeout=30, message="the coordinator's lag metric for the KIP-848 group")
