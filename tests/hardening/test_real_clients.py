"""Real clients still produce and consume normally through the record-by-record checks:
librdkafka (confluent-kafka) and kafka-python, plain and gzip, headers, compacted topics, and
a CreateTime timestamp outside the topic's window refused with INVALID_TIMESTAMP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from tests.support.brokers import InProcessBroker, in_process_broker
from tests.support.clients import (
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


@pytest.mark.parametrize("compression", ["none", "gzip"])
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
