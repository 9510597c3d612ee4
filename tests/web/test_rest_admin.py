"""REST admin resources and the error contract: every bad input is a 4xx naming the problem,
with nothing written."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.brokers import RunningBroker


async def _call(running: RunningBroker, method: str, path: str, **kwargs: Any
                ) -> tuple[int, Any]:
    url = path if path.startswith("http") else running.cluster_url + path
    async with running.session.request(method, url, **kwargs) as response:
        if response.status == 204:
            return 204, None
        assert response.headers["Content-Type"].startswith("application/json"), response.headers
        return response.status, await response.json()


async def test_topic_lifecycle(running: RunningBroker) -> None:
    status, created = await _call(running, "POST", "/topics", json={
        "topic_name": "life", "partitions_count": 4,
        "configs": [{"name": "retention.ms", "value": "60000"}]})
    assert status == 201 and created["partitions_count"] == 4
    status, topics = await _call(running, "GET", "/topics")
    assert [t["topic_name"] for t in topics["data"]] == ["life"]  # internal topics hidden
    status, topics = await _call(running, "GET", "/topics?include_internal=true")
    assert "__consumer_offsets" in {t["topic_name"] for t in topics["data"]}
    status, duplicate = await _call(running, "POST", "/topics", json={"topic_name": "life"})
    assert status == 409 and duplicate["error_code"] == 40901
    assert "TOPIC_ALREADY_EXISTS" in duplicate["message"]

    status, partitions = await _call(running, "GET", "/topics/life/partitions")
    assert [p["partition_id"] for p in partitions["data"]] == [0, 1, 2, 3]
    assert partitions["data"][0]["leader"]["broker_id"] == running.broker.config.node_id

    status, configs = await _call(running, "GET", "/topics/life/configs")
    by_name = {c["name"]: c for c in configs["data"]}
    assert by_name["retention.ms"]["value"] == "60000" and not by_name["retention.ms"]["is_default"]
    assert by_name["segment.bytes"]["is_default"]
    assert (await _call(running, "PUT", "/topics/life/configs/segment.bytes",
                        json={"value": "1048576"}))[0] == 204
    assert (await _call(running, "POST", "/topics/life/configs:alter", json={"data": [
        {"name": "retention.ms", "operation": "DELETE"},
        {"name": "cleanup.policy", "value": "delete"}]}))[0] == 204
    status, config = await _call(running, "GET", "/topics/life/configs/segment.bytes")
    assert config["value"] == "1048576" and not config["is_default"]
    status, config = await _call(running, "GET", "/topics/life/configs/retention.ms")
    assert config["is_default"]
    assert (await _call(running, "DELETE", "/topics/life/configs/segment.bytes"))[0] == 204
    status, config = await _call(running, "GET", "/topics/life/configs/segment.bytes")
    assert config["is_default"]

    assert (await _call(running, "DELETE", "/topics/life"))[0] == 204
    status, missing = await _call(running, "GET", "/topics/life")
    assert status == 404 and missing["error_code"] == 40401


async def test_cluster_and_brokers(running: RunningBroker) -> None:
    status, clusters = await _call(running, "GET", running.base_url + "/v3/clusters")
    assert clusters["data"][0]["cluster_id"] == running.broker.cluster_id
    status, again = await _call(running, "GET", running.base_url + "/v3/clusters")
    assert again["data"][0]["cluster_id"] == clusters["data"][0]["cluster_id"]  # stable
    status, brokers = await _call(running, "GET", "/brokers")
    assert brokers["data"][0]["port"] == running.broker.kafka_port
    status, unknown = await _call(running, "GET", running.base_url + "/v3/clusters/nope/topics")
    assert status == 404 and unknown["error_code"] == 40404


@pytest.mark.parametrize(("kwargs", "status", "code", "names"), [
    ({"data": b"{not json"}, 400, 40001, "malformed JSON"),
    ({"data": b'{"value": {"type": "STRING", "data": "x"}'}, 400, 40001, "JSON"),
    ({"json": {"value": {"type": "BINARY", "data": "@@@"}}}, 400, 40002, "value.data"),
    ({"json": {"value": {"type": "STRING", "data": 12}}}, 400, 40002, "value.data"),
    ({"json": {"partition_id": "zero"}}, 400, 40002, "partition_id"),
    ({"json": {"partition_id": 7}}, 404, 40402, "partition 7"),
    ({"json": {"headers": [{"name": "h", "value": "!"}]}}, 400, 40002, "headers[0]"),
    ({"json": {"key": {"type": "AVRO", "data": 1}}}, 400, 40002, "key.type"),
    ({"json": {"timestamp": 10**15, "value": {"data": 1}}}, 400, 40002, "timestamp"),
    ({"json": [1, 2]}, 400, 40002, "JSON object"),
    ({"data": b"x" * (64 * 1024 + 10)}, 413, 41301, "limit"),
])
async def test_bad_produce_requests_write_nothing(running: RunningBroker, kwargs: dict[str, Any],
                                                  status: int, code: int, names: str) -> None:
    await running.create_topic("strict", partitions=2)
    got_status, body = await _call(running, "POST", "/topics/strict/records", **kwargs)
    assert (got_status, body["error_code"]) == (status, code), body
    assert names in body["message"]
    assert set(body) == {"error_code", "message"}
    assert [running.broker.offsets("strict", p)[1] for p in (0, 1)] == [0, 0]


async def test_unknown_resources_and_bad_admin_input(running: RunningBroker) -> None:
    await running.create_topic("known")
    cases = [
        ("POST", "/topics/ghost/records", {"json": {"value": {"data": 1}}}, 404, 40401),
        ("GET", "/topics/known/partitions/3", {}, 404, 40402),
        ("GET", "/topics/known/partitions/x", {}, 400, 40002),
        ("GET", "/topics/known/configs/no.such", {}, 404, 40406),
        ("PUT", "/topics/known/configs/retention.ms", {"json": {"value": 5}}, 400, 40002),
        ("PUT", "/topics/known/configs/retention.ms", {"json": {"value": "soon"}}, 400, 40003),
        ("POST", "/topics", {"json": {"topic_name": "bad name!"}}, 400, 40003),
        ("POST", "/topics", {"json": {"topic_name": "p", "partitions_count": 0}}, 400, 40003),
        ("POST", "/topics", {"json": {"topic_name": "p", "partitions_count": "3"}}, 400, 40002),
        ("POST", "/topics", {"data": b""}, 400, 40001),
        ("GET", "/consumer-groups/none", {}, 404, 40405),
        ("DELETE", "/topics", {}, 405, 40500),
        ("POST", "/topics/__consumer_offsets/records", {"json": {"value": {"data": 1}}}, 403,
         40301),
        ("DELETE", "/topics/__consumer_offsets", {}, 403, 40301),
    ]
    for method, path, kwargs, status, code in cases:
        got_status, body = await _call(running, method, path, **kwargs)
        assert (got_status, body["error_code"]) == (status, code), (method, path, body)
        assert body["message"]
    assert running.broker.logs is not None and "p" not in running.broker.logs.topics()


async def test_readiness_follows_extra_checks(running: RunningBroker) -> None:
    url = running.base_url + "/readyz"
    status, body = await _call(running, "GET", url)
    assert status == 200 and body["checks"] == {"storage": True, "kafka_listener": True,
                                                "started": True}
    caught_up = {"value": False}
    running.broker.add_readiness_check("replicas_caught_up", lambda: caught_up["value"])
    status, body = await _call(running, "GET", url)
    assert status == 503 and body["checks"]["replicas_caught_up"] is False
    caught_up["value"] = True
    status, body = await _call(running, "GET", url)
    assert status == 200 and body["status"] == "ready"

    def broken() -> bool:
        raise RuntimeError("cannot tell")

    running.broker.add_readiness_check("broken", broken)  # not ready, not a 500
    status, body = await _call(running, "GET", url)
    assert status == 503 and body["checks"]["broken"] is False
    status, body = await _call(running, "GET", running.base_url + "/healthz")
    assert (status, body) == (200, {"status": "ok"})
