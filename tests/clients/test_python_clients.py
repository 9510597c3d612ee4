"""kafka-python (with its defaults: idempotent, acks=all) and aiokafka against a real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import pytest
from aiokafka.structs import TopicPartition as AioTopicPartition
from kafka import TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from tests.support.brokers import BrokerProcess
from tests.support.clients import (
    aiokafka_consumer,
    aiokafka_producer,
    kafka_python_admin,
    kafka_python_consumer,
    kafka_python_producer,
)
from tests.support.waiting import eventually

BASE_TS = 1_650_000_000_000


def test_kafka_python_default_producer_and_assigned_consumer(broker: BrokerProcess) -> None:
    topic = f"kp-{uuid.uuid4().hex[:8]}"
    admin = kafka_python_admin(broker.bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    # kafka-python asks for the newest versions (CreateTopics v7): error answers must encode too.
    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.delete_topics([f"{topic}-missing"])
    admin.close()
    producer = kafka_python_producer(broker.bootstrap)
    assert producer.config["enable_idempotence"] and producer.config["acks"] == -1
    futures = [
        producer.send(
            topic, key=f"k{i % 3}".encode(), value=f"v{i}".encode(),
            headers=[("n", str(i).encode())], timestamp_ms=BASE_TS + i,
        )
        for i in range(60)
    ]
    producer.flush(15)
    metadata = [future.get(timeout=10) for future in futures]
    producer.close()
    partition_of: dict[bytes, set[int]] = defaultdict(set)
    for i, record in enumerate(metadata):
        partition_of[f"k{i % 3}".encode()].add(record.partition)
    assert all(len(parts) == 1 for parts in partition_of.values())

    consumer = kafka_python_consumer(broker.bootstrap)
    partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    # Poll until everything arrived (not "until idle for N s", which ends early under load).
    records: list[ConsumerRecord] = []

    def all_read() -> bool:
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
        return len(records) >= 60

    try:
        eventually(all_read, timeout=30, interval=0, message=lambda: f"60 records ({len(records)})")
    finally:
        consumer.close()
    assert len(records) == 60
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for record in records:
        i = int(record.value.decode()[1:])
        assert record.key == f"k{i % 3}".encode()
        assert record.headers == [("n", str(i).encode())]
        assert record.timestamp == BASE_TS + i
        assert (record.partition, record.offset) == (metadata[i].partition, metadata[i].offset)
        by_key[record.key].append(i)
    assert all(values == sorted(values) for values in by_key.values())


def test_aiokafka_produce_and_seek(broker: BrokerProcess) -> None:
    topic = f"aio-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        producer = aiokafka_producer(broker.bootstrap)
        await producer.start()
        try:
            sent = [
                await producer.send_and_wait(
                    topic, key=b"same", value=f"a{i}".encode(),
                    headers=[("h", b"x")], timestamp_ms=BASE_TS + i,
                )
                for i in range(20)
            ]
        finally:
            await producer.stop()
        assert [r.offset for r in sent] == list(range(20))
        assert {r.partition for r in sent} == {0}

        consumer = aiokafka_consumer(broker.bootstrap)
        await consumer.start()
        try:
            tp = AioTopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 5)
            got = []
            while len(got) < 15:
                record = await asyncio.wait_for(consumer.getone(), 10)
                got.append(record)
            assert [r.offset for r in got] == list(range(5, 20))
            assert [r.value for r in got] == [f"a{i}".encode() for i in range(5, 20)]
            assert all(r.key == b"same" and r.headers == (("h", b"x"),) for r in got)
            assert [r.timestamp for r in got] == [BASE_TS + i for i in range(5, 20)]
            offsets = await consumer.offsets_for_times({tp: BASE_TS + 12})
            assert offsets[tp].offset == 12
            assert (await consumer.end_offsets([tp]))[tp] == 20
        finally:
            await consumer.stop()

    asyncio.run(scenario())
