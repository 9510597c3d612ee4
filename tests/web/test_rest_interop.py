"""HTTP produce and read interoperating with real Kafka clients on the same broker."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from headrace.web.records import choose_partition, parse_timestamp
from tests.support.brokers import RunningBroker
from tests.support.clients import confluent_producer, consume_all
from tests.support.waiting import eventually_async


async def test_http_produce_is_consumed_by_confluent_kafka(running: RunningBroker) -> None:
    await running.create_topic("orders", partitions=3)
    sent = []
    for index in range(12):
        body = {
            "key": {"type": "STRING", "data": f"customer-{index % 4}"},
            "value": {"type": "JSON", "data": {"n": index, "item": "é"}},
            "headers": [{"name": "source", "value": base64.b64encode(b"http").decode()}],
            "timestamp": 1_700_000_000_000 + index,
        }
        async with running.session.post(f"{running.cluster_url}/topics/orders/records",
                                        json=body) as response:
            assert response.status == 200, await response.text()
            result = await response.json()
        assert result["error_code"] == 200
        assert result["partition_id"] == choose_partition(f"customer-{index % 4}".encode(), 3, 0)
        sent.append((result["partition_id"], result["offset"], index))

    messages = await asyncio.to_thread(consume_all, running.bootstrap, "orders", 3, 12)
    got = {(m.partition(), m.offset()): m for m in messages}
    assert len(got) == 12
    for partition, offset, index in sent:
        message = got[(partition, offset)]
        assert message.key() == f"customer-{index % 4}".encode()
        assert json.loads(message.value()) == {"n": index, "item": "é"}
        assert message.headers() == [("source", b"http")]
        assert message.timestamp()[1] == 1_700_000_000_000 + index
    # Same key, same partition; per-key order preserved.
    by_key: dict[bytes, list[int]] = {}
    for message in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        by_key.setdefault(message.key(), []).append(json.loads(message.value())["n"])
        assert len({m.partition() for m in messages if m.key() == message.key()}) == 1
    assert all(values == sorted(values) for values in by_key.values())


def produce_with_confluent(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]
                           ) -> list[tuple[int, int]]:
    producer = confluent_producer(bootstrap, {"acks": "all", "linger.ms": 5})
    delivered: list[tuple[int, int]] = []
    for key, value in records:
        producer.produce(topic, key=key, value=value, headers=[("h", key)],
                         timestamp=1_600_000_000_000,
                         on_delivery=lambda err, msg: delivered.append(
                             (msg.partition(), msg.offset())) if err is None else None)
    assert producer.flush(20) == 0
    return delivered


async def sse_events(running: RunningBroker, query: str, count: int
                     ) -> AsyncIterator[dict[str, Any]]:
    url = f"{running.cluster_url}/topics/stream-me/stream?{query}"
    async with running.session.get(url) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        seen = 0
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                yield json.loads(line[6:])
                seen += 1
                if seen == count:
                    return


async def test_kafka_produce_is_read_over_http(running: RunningBroker) -> None:
    await running.create_topic("stream-me", partitions=1)
    records = [(f"k{i}".encode(), f"value {i}".encode()) for i in range(20)]
    delivered = await asyncio.to_thread(produce_with_confluent, running.bootstrap, "stream-me",
                                        records)
    assert sorted(delivered) == [(0, i) for i in range(20)]

    events = [e async for e in sse_events(running, "from=beginning&format=string&limit=20", 20)]
    assert [(e["key"], e["value"], e["offset"]) for e in events] == [
        (k.decode(), v.decode(), i) for i, (k, v) in enumerate(records)]
    assert events[3]["headers"] == [{"name": "h", "value": base64.b64encode(b"k3").decode()}]
    assert events[0]["timestamp"] == 1_600_000_000_000

    # From an offset, and from a timestamp (all records share one, so it starts at 0).
    events = [e async for e in sse_events(running, "offset=15&format=binary&limit=5", 5)]
    assert [e["offset"] for e in events] == [15, 16, 17, 18, 19]
    assert base64.b64decode(events[0]["value"]) == b"value 15"
    events = [e async for e in sse_events(running, "timestamp=1600000000000&limit=1", 1)]
    assert events[0]["offset"] == 0


async def test_live_stream_wakes_on_append(running: RunningBroker) -> None:
    await running.create_topic("stream-me", partitions=2)
    received: list[dict[str, Any]] = []

    async def listen() -> None:
        async for event in sse_events(running, "from=end&format=json&keepalive_ms=50", 3):
            received.append(event)

    listener = asyncio.create_task(listen())
    # Wait until the stream is parked on the purgatory, then append from a Kafka client.
    await _wait_for_waiting_fetch(running)
    started = time.monotonic()
    await asyncio.to_thread(produce_with_confluent, running.bootstrap, "stream-me",
                            [(b"a", b'{"x": 1}'), (b"b", b'{"x": 2}'), (b"c", b'{"x": 3}')])
    await asyncio.wait_for(listener, 20)
    assert sorted(e["value"]["x"] for e in received) == [1, 2, 3]
    assert time.monotonic() - started < 10


async def _wait_for_waiting_fetch(running: RunningBroker) -> None:
    await eventually_async(lambda: running.metrics.fetch_waiting >= 1, timeout=20,
                           message="a fetch parked in the purgatory")


async def test_streaming_produce_answers_each_record(running: RunningBroker) -> None:
    await running.create_topic("bulk", partitions=2)
    lines = [json.dumps({"partition_id": i % 2, "value": {"type": "STRING", "data": f"v{i}"}})
             for i in range(100)]
    lines.insert(50, json.dumps({"value": {"type": "BINARY", "data": "***"}}))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(lines), 7):  # objects split across chunk boundaries too
            text = "\n".join(lines[start:start + 7]) + "\n"
            yield text[:5].encode()
            yield text[5:].encode()

    async with running.session.post(f"{running.cluster_url}/topics/bulk/records",
                                    data=chunks()) as response:
        assert response.status == 200
        results = [json.loads(line) for line in (await response.text()).splitlines()]
    assert len(results) == 101
    assert results[50]["error_code"] == 40002 and "value.data" in results[50]["message"]
    good = results[:50] + results[51:]
    assert all(r["error_code"] == 200 for r in good)
    for partition in (0, 1):
        offsets = [r["offset"] for r in good if r["partition_id"] == partition]
        assert offsets == list(range(50))
    assert running.broker.offsets("bulk", 0)[1] == 50


async def test_several_objects_in_one_body_stream_results(running: RunningBroker) -> None:
    await running.create_topic("multi")
    body = "".join(json.dumps({"value": {"data": i}}) for i in range(3))
    async with running.session.post(f"{running.cluster_url}/topics/multi/records",
                                    data=body.encode()) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/x-ndjson")
        results = [json.loads(line) for line in (await response.text()).splitlines()]
    assert [r["offset"] for r in results] == [0, 1, 2]


async def test_a_whole_body_of_records_answers_each_and_writes_the_good_ones(
        running: RunningBroker) -> None:
    # The non-chunked body of the benchmark's shape (one object per line), with a bad record
    # and a record for a partition the topic lacks: the same per-record answers as streaming.
    await running.create_topic("whole", partitions=2)
    lines = [json.dumps({"partition_id": i % 2, "key": {"type": "STRING", "data": f"k{i}"},
                         "value": {"type": "JSON", "data": {"n": i}}}) for i in range(6)]
    lines[2] = json.dumps({"value": {"type": "BINARY", "data": "***"}})
    lines[4] = json.dumps({"partition_id": 9, "value": {"data": 1}})
    async with running.session.post(f"{running.cluster_url}/topics/whole/records",
                                    data="\n".join(lines).encode()) as response:
        assert response.status == 200
        results = [json.loads(line) for line in (await response.text()).splitlines()]
    assert [r["error_code"] for r in results] == [200, 200, 40002, 200, 40402, 200]
    assert "value.data" in results[2]["message"] and "partition 9" in results[4]["message"]
    assert [(r["partition_id"], r["offset"]) for r in results if r["error_code"] == 200] == [
        (0, 0), (1, 0), (1, 1), (1, 2)]
    assert results[0]["key"] == {"type": "STRING", "size": 2}
    assert results[0]["value"] == {"type": "JSON", "size": len('{"n":0}')}
    assert [running.broker.offsets("whole", p)[1] for p in (0, 1)] == [1, 3]


async def test_streamed_results_arrive_while_the_request_is_still_open(
        running: RunningBroker) -> None:
    await running.create_topic("live-produce")
    first_answered = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield json.dumps({"value": {"type": "STRING", "data": "one"}}).encode() + b"\n"
        await asyncio.wait_for(first_answered.wait(), 20)  # only after its result came back
        yield json.dumps({"value": {"type": "STRING", "data": "two"}}).encode() + b"\n"

    async with running.session.post(f"{running.cluster_url}/topics/live-produce/records",
                                    data=body()) as response:
        first = json.loads(await asyncio.wait_for(response.content.readline(), 20))
        assert first["offset"] == 0 and first["error_code"] == 200
        first_answered.set()
        second = json.loads(await asyncio.wait_for(response.content.readline(), 20))
        assert second["offset"] == 1


async def test_a_body_arriving_in_pieces_is_read_whole(running: RunningBroker) -> None:
    await running.create_topic("pieces")
    body = "\n".join(json.dumps({"value": {"type": "STRING", "data": f"record {i:04d}"}})
                     for i in range(300)).encode()
    path = f"/v3/clusters/{running.broker.cluster_id}/topics/pieces/records"
    reader, writer = await asyncio.open_connection("127.0.0.1", running.broker.http_port)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                 + body[:1000])
    await writer.drain()
    await asyncio.sleep(0.05)  # provokes a partial read; the assertions don't depend on it
    writer.write(body[1000:])
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    head, _, payload = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    results = [json.loads(line) for line in payload.decode().splitlines()]
    assert [r["offset"] for r in results] == list(range(300))


@pytest.mark.parametrize("timestamp_type", ["CreateTime", "LogAppendTime"])
async def test_answers_show_the_timestamp_the_log_keeps(running: RunningBroker,
                                                        timestamp_type: str) -> None:
    # Records with their own timestamps and without, alike and not (the answers of alike
    # records are rendered together): each answer shows the timestamp the record was stored
    # with, which is the log's when the topic says LogAppendTime.
    topic = f"stamped-{timestamp_type.lower()}"
    await running.create_topic(topic, message_timestamp_type=timestamp_type)
    own = [1_600_000_000_000 + n for n in range(3)]
    lines = [json.dumps({"partition_id": 0, "value": {"type": "STRING", "data": "same"},
                         "timestamp": stamp}) for stamp in own]
    lines += [json.dumps({"partition_id": 0, "value": {"type": "STRING", "data": "same"}})] * 2
    async with running.session.post(f"{running.cluster_url}/topics/{topic}/records",
                                    data="\n".join(lines).encode()) as response:
        assert response.status == 200
        results = [json.loads(line) for line in (await response.text()).splitlines()]
    assert [r["offset"] for r in results] == list(range(5))
    messages = await asyncio.to_thread(consume_all, running.bootstrap, topic, 1, 5)
    stored = [message.timestamp()[1] for message in sorted(messages, key=lambda m: m.offset())]
    assert [parse_timestamp("t", r["timestamp"]) for r in results] == stored
    # A record without a key has no "key" in its answer (the REST Proxy leaves it out).
    assert all("key" not in r and r["value"] == {"type": "STRING", "size": 4} for r in results)
    if timestamp_type == "LogAppendTime":
        assert len(set(stored)) == 1 and stored[0] not in own
    else:
        assert stored[:3] == own and stored[3] == stored[4] != own[0]
