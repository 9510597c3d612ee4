"""Internal topics are their coordinators' alone: real clients cannot write ``__consumer_offsets``
or change the configs its coordinator registered, while the coordinator's own commits go on."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from headrace.core.broker import Broker
from headrace.core.topics import TopicSpec

OFFSETS = "__consumer_offsets"


def _produce_error(bootstrap: str) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "message.send.max.retries": 0,
                         "message.timeout.ms": 10_000})
    errors: list[int] = []
    producer.produce(OFFSETS, b"forged", partition=0,
                     on_delivery=lambda error, _m: errors.append(error.code() if error else 0))
    producer.flush(15)
    return errors[0]


async def test_clients_cannot_write_an_internal_topic(broker: Broker) -> None:
    bootstrap = f"127.0.0.1:{broker.kafka_port}"
    end_before = broker.offsets(OFFSETS, 0)[1]
    code = await asyncio.to_thread(_produce_error, bootstrap)
    assert code == KafkaError.TOPIC_EXCEPTION  # INVALID_TOPIC_EXCEPTION (17), as Kafka
    assert broker.offsets(OFFSETS, 0)[1] == end_before  # nothing appended


def _alter(bootstrap: str, incremental: bool, entries: dict[str, str]) -> KafkaException | None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if incremental:
        resource = ConfigResource(ResourceType.TOPIC, OFFSETS, incremental_configs=[
            ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
            for key, value in entries.items()])
        future = admin.incremental_alter_configs([resource])[resource]
    else:
        resource = ConfigResource(ResourceType.TOPIC, OFFSETS, set_config=entries)
        future = admin.alter_configs([resource])[resource]
    try:
        future.result(timeout=15)
    except KafkaException as error:
        return error
    return None


@pytest.mark.parametrize(("incremental", "entries"), [
    (True, {"cleanup.policy": "delete"}),
    (False, {"retention.ms": "1"}),  # replaces every override: compaction would go
])
async def test_configs_an_internal_topic_needs_cannot_be_changed(
    broker: Broker, incremental: bool, entries: dict[str, str]
) -> None:
    bootstrap = f"127.0.0.1:{broker.kafka_port}"
    error = await asyncio.to_thread(_alter, bootstrap, incremental, entries)
    assert error is not None
    assert error.args[0].code() == KafkaError.INVALID_CONFIG
    assert broker.describe_topic_configs(OFFSETS)["cleanup.policy"][0] == "compact"
    # A change that keeps compaction is allowed.
    allowed = {"cleanup.policy": "compact", "segment.bytes": "1048576"}
    assert await asyncio.to_thread(_alter, bootstrap, False, allowed) is None


def _commit_and_read(bootstrap: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "protected",
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition("data", 0, 7)], asynchronous=False)
        return int(consumer.committed([TopicPartition("data", 0)], timeout=10)[0].offset)
    finally:
        consumer.close()


async def test_the_coordinator_still_writes_its_topic(broker: Broker) -> None:
    broker.create_topic(TopicSpec("data", 1))
    committed = await asyncio.to_thread(_commit_and_read, f"127.0.0.1:{broker.kafka_port}")
    assert committed == 7
