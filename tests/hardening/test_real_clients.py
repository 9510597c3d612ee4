"""Real clients still produce and consume normally through the record-by-record checks:
librdkafka (confluent-kafka) with every codec, aiokafka with snappy (Xerial-framed), lz4 and
zstd, kafka-python with gzip (its snappy, lz4 and zstd need libraries this project does not
use), headers, compacted topics, and a CreateTime timestamp outside the topic's window refused
with INVALID_TIMESTAMP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from headrace.record import codec_of, whole_batches
from headrace.record.compression import CODEC_NAMES
from tests.support.brokers import InProcessBroker, in_process_broker
from tests.support.clients import (
    aiokafka_consumer,
    aiokafka_producer,
    confluent_producer,
    consume_all,
    create_topic,
    kafka_python_consumer,
    kafka_python_producer,
)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[InProcessBroker]:
    async with in_process_broker(tmp_path / "data") as started:
        yield started


def _produce_confluent(bootstrap: str, topic: str, compression: str, count: int) -> list[str]:
    producer = confluent_producer(bootstrap, {"compression.type": compression, "linger.ms": 5})
    failures: list[str] = []
    for i in range(count):
        producer.produce(topic, key=b"k%d" % (i % 10), value=b"value %d" % i,
                         headers=[("n", str(i).encode())],
                         on_delivery=lambda err, _: failures.append(str(err)) if err else None)
    assert producer.flush(20) == 0
    return failures


def _stored_codecs(running: InProcessBroker, topic: str) -> set[str]:
    """The codecs of the batches the log of ``topic``-0 holds (the checks opened them all)."""
    log = running.broker.replicas.log(topic, 0)
    with log.read(0, 1 << 24) as read:
        data = read.to_bytes()
    return {CODEC_NAMES[codec_of(header.attributes)] for header, _ in whole_batches(data)}


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
async def test_confluent_kafka_produces_and_consumes(running: InProcessBroker,
                                                      compression: str) -> None:
    topic = f"librdkafka-{compression}"
    await asyncio.to_thread(create_topic, running.bootstrap, topic, 1, 1,
                            {"cleanup.policy": "compact"})
    assert await asyncio.to_thread(_produce_confluent, running.bootstrap, topic,
                                   compression, 500) == []
    messages = await asyncio.to_thread(consume_all, running.bootstrap, topic, 1, 500)
    assert [m.value() for m in messages] == [b"value %d" % i for i in range(500)]
    assert messages[7].headers() == [("n", b"7")]
    assert _stored_codecs(running, topic) == {compression}


@pytest.mark.parametrize("compression", ["snappy", "lz4", "zstd"])
async def test_aiokafka_produces_and_consumes(running: InProcessBroker, compression: str) -> None:
    topic = f"aiokafka-{compression}"
    producer = aiokafka_producer(running.bootstrap, compression_type=compression, linger_ms=5)
    await producer.start()
    try:
        sent = [await producer.send(topic, key=b"k%d" % (i % 10), value=b"aio %d" % i * 20,
                                    headers=[("n", str(i).encode())]) for i in range(300)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    consumer = aiokafka_consumer(running.bootstrap, topic, auto_offset_reset="earliest")
    await consumer.start()
    try:
        values: list[bytes] = []
        while len(values) < 300:
            batches = await consumer.getmany(timeout_ms=5000)
            assert batches, f"only {len(values)} of 300 records consumed"
            values += [m.value for ms in batches.values() for m in ms if m.value is not None]
    finally:
        await consumer.stop()
    assert values == [b"aio %d" % i * 20 for i in range(300)]
    assert _stored_codecs(running, topic) == {compression}


def _kafka_python_round_trip(bootstrap: str, topic: str) -> list[bytes]:
    producer = kafka_python_producer(bootstrap, compression_type="gzip", linger_ms=5)
    for i in range(200):
        producer.send(topic, key=b"k", value=b"kp %d" % i, headers=[("h", b"x")])
    producer.flush(20)
    producer.close()
    consumer = kafka_python_consumer(bootstrap, topic, auto_offset_reset="earliest",
                                     consumer_timeout_ms=5000)
    values = [message.value for message in consumer]
    consumer.close()
    return values


async def test_kafka_python_produces_and_consumes_gzip(running: InProcessBroker) -> None:
    values = await asyncio.to_thread(_kafka_python_round_trip, running.bootstrap, "kafka-python")
    assert values == [b"kp %d" % i for i in range(200)]


def _produce_at(bootstrap: str, topic: str, timestamp_ms: int) -> KafkaError | None:
    producer = confluent_producer(bootstrap, {"retries": 0})
    outcome: list[KafkaError | None] = []
    producer.produce(topic, value=b"v", timestamp=timestamp_ms,
                     on_delivery=lambda err, _: outcome.append(err))
    producer.flush(20)
    return outcome[0]


async def test_a_timestamp_beyond_the_window_is_refused(running: InProcessBroker) -> None:
    await asyncio.to_thread(create_topic, running.bootstrap, "window", 1, 1,
                            {"message.timestamp.after.max.ms": "60000"})
    future = int(time.time() * 1000) + 3_600_000
    error = await asyncio.to_thread(_produce_at, running.bootstrap, "window", future)
    assert error is not None and error.code() == KafkaError.INVALID_TIMESTAMP
    assert await asyncio.to_thread(_produce_at, running.bootstrap, "window",
                                   int(time.time() * 1000)) is None
