"""v2 produce (Confluent REST Proxy v2, Redpanda's proxy, Strimzi's bridge) against a real broker,
read back with confluent-kafka."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from headrace.web.records import choose_partition
from tests.support.brokers import RunningBroker
from tests.support.clients import consume_all

BINARY = "application/vnd.kafka.binary.v2+json"
JSON = "application/vnd.kafka.json.v2+json"
TEXT = "application/vnd.kafka.text.v2+json"


async def post(running: RunningBroker, path: str, body: Any, content_type: str
               ) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with running.session.post(f"{running.base_url}{path}", data=data,
                                    headers={"Content-Type": content_type}) as response:
        return response.status, await response.json(content_type=None)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_binary_records_land_where_kafka_would_put_them(running: RunningBroker) -> None:
    await running.create_topic("v2-binary", partitions=3)
    records = [{"key": b64(f"user-{n % 4}".encode()), "value": b64(bytes([n, 0, 255])),
                "headers": [{"key": "source", "value": b64(b"v2")}],
                "timestamp": 1_700_000_000_000 + n} for n in range(9)]
    records.append({"value": b64(b"pinned"), "partition": 2})
    status, answer = await post(running, "/topics/v2-binary", {"records": records}, BINARY)
    assert status == 200, answer
    offsets = answer["offsets"]
    assert len(offsets) == 10 and answer["key_schema_id"] is None
    for entry, record in zip(offsets[:9], records, strict=False):
        assert entry["error_code"] is None and entry["error"] is None
        assert entry["partition"] == choose_partition(base64.b64decode(record["key"]), 3, 0)
    assert offsets[9]["partition"] == 2
    messages = await asyncio.to_thread(consume_all, running.bootstrap, "v2-binary", 3, 10)
    by_value = {m.value(): m for m in messages}
    for entry, record in zip(offsets, records, strict=True):
        message = by_value[base64.b64decode(record["value"])]
        assert (message.partition(), message.offset()) == (entry["partition"], entry["offset"])
        if "key" in record:
            assert message.key() == base64.b64decode(record["key"])
            assert message.headers() == [("source", b"v2")]
            assert message.timestamp()[1] == record["timestamp"]
    # Same key, same partition, order kept.
    per_key: dict[bytes, list[int]] = {}
    for entry, record in zip(offsets[:9], records, strict=False):
        per_key.setdefault(base64.b64decode(record["key"]), []).append(entry["offset"])
    assert all(found == sorted(found) for found in per_key.values())


async def test_json_values_are_stored_as_their_json_text(running: RunningBroker) -> None:
    await running.create_topic("v2-json")
    big = 123456789012345678901234567890
    records = [{"key": "k", "value": {"n": big, "s": "é", "l": [1, 2]}},
               {"value": [True, None]}, {"key": {"id": 7}, "value": None}]
    status, answer = await post(running, "/topics/v2-json/partitions/0", {"records": records},
                                JSON)
    assert status == 200, answer
    assert [e["offset"] for e in answer["offsets"]] == [0, 1, 2]
    messages = await asyncio.to_thread(consume_all, running.bootstrap, "v2-json", 1, 3)
    assert [json.loads(m.key()) if m.key() is not None else None for m in messages] == [
        "k", None, {"id": 7}]
    assert json.loads(messages[0].value()) == {"n": big, "s": "é", "l": [1, 2]}
    assert json.loads(messages[1].value()) == [True, None]
    assert messages[2].value() is None  # a JSON null value is a tombstone


async def test_text_records(running: RunningBroker) -> None:
    await running.create_topic("v2-text")
    status, answer = await post(running, "/topics/v2-text",
                                {"records": [{"key": "a", "value": "héllo"}]}, TEXT)
    assert status == 200, answer
    (message,) = await asyncio.to_thread(consume_all, running.bootstrap, "v2-text", 1, 1)
    assert (message.key(), message.value()) == (b"a", "héllo".encode())


@pytest.mark.parametrize(("body", "content_type", "status", "code", "names"), [
    (b"{nope", BINARY, 400, 40001, "malformed JSON"),
    ({"records": [{"value": b64(b"ok")}, {"value": "%%%"}]}, BINARY, 422, 42201,
     "records[1].value"),
    ({"records": [{"value": 5}]}, BINARY, 422, 42201, "$.records[0].value"),
    ({"records": [{"value": "x", "partition": -1}]}, TEXT, 422, 42201, "$.records[0].partition"),
    ({"records": [{"value": "x", "colour": 1}]}, TEXT, 422, 42201, "colour"),
    ({"records": []}, JSON, 422, 42201, "empty"),
    ({"value_schema": "{}", "records": [{"value": 1}]}, JSON, 422, 42201, "value_schema"),
    ({"records": [{"value": 1}]}, "application/json", 415, 41500, "vnd.kafka.json.v2+json"),
])
async def test_bad_requests_write_nothing(running: RunningBroker, body: Any, content_type: str,
                                          status: int, code: int, names: str) -> None:
    await running.create_topic("v2-bad")
    found, answer = await post(running, "/topics/v2-bad", body, content_type)
    assert (found, answer["error_code"]) == (status, code), answer
    assert names in answer["message"]
    assert running.broker.offsets("v2-bad", 0) == (0, 0)


async def test_unknown_topic_partition_and_internal_topic(running: RunningBroker) -> None:
    await running.create_topic("v2-two", partitions=2)
    body = {"records": [{"value": "a"}]}
    assert (await post(running, "/topics/missing", body, TEXT))[1]["error_code"] == 40401
    assert (await post(running, "/topics/v2-two/partitions/5", body, TEXT))[1][
        "error_code"] == 40402
    status, answer = await post(running, "/topics/__consumer_offsets", body, TEXT)
    assert status in (403, 404), answer
    # A record naming a partition the topic lacks is answered in its own entry; the others land.
    status, answer = await post(running, "/topics/v2-two", {"records": [
        {"value": "good", "partition": 1}, {"value": "bad", "partition": 9}]}, TEXT)
    assert status == 200
    good, bad = answer["offsets"]
    assert (good["partition"], good["offset"], good["error_code"]) == (1, 0, None)
    assert bad["partition"] is None and bad["error_code"] == 40402 and "9" in bad["error"]
    assert running.broker.offsets("v2-two", 1) == (0, 1)
