"""confluent-kafka (librdkafka) against a real ``headrace broker`` subprocess."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from tests.support.brokers import BrokerProcess
from tests.support.clients import (
    SHORT_TIMEOUTS,
    confluent_admin,
    confluent_consumer,
    confluent_producer,
)
from tests.support.waiting import eventually

BASE_TS = 1_700_000_000_000


def _admin(bootstrap: str) -> AdminClient:
    return confluent_admin(bootstrap, SHORT_TIMEOUTS)


def _producer(bootstrap: str, **extra: Any) -> Producer:
    return confluent_producer(bootstrap, {
        **SHORT_TIMEOUTS,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 20_000,
        **extra,
    })


def _error_code(future: Any) -> int:
    try:
        future.result(timeout=15)
    except KafkaException as error:
        return int(error.args[0].code())
    return 0


def consume_assigned(
    bootstrap: str, topic: str, partitions: int, expected: int, timeout: float = 20.0
) -> list[Any]:
    consumer = confluent_consumer(bootstrap, {**SHORT_TIMEOUTS, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    messages: list[Any] = []

    def all_read() -> bool:
        message = consumer.poll(0.2)
        if message is not None:
            assert message.error() is None, message.error()
            messages.append(message)
        return len(messages) >= expected

    try:
        if expected:
            eventually(all_read, timeout=timeout, interval=0,
                       message=lambda: f"{expected} records ({len(messages)} read)")
        # Nothing beyond what was produced.
        extra = consumer.poll(0.3)
        assert extra is None or extra.error() is not None, "unexpected extra record"
    finally:
        consumer.close()
    assert len(messages) == expected, f"consumed {len(messages)} of {expected}"
    return messages


def test_admin_topics_and_configs(broker: BrokerProcess) -> None:
    admin = _admin(broker.bootstrap)
    name = f"admin-{uuid.uuid4().hex[:8]}"
    created = admin.create_topics(
        [NewTopic(name, 3, 1, config={"retention.ms": "3600000", "cleanup.policy": "delete"})],
        operation_timeout=10,
    )
    assert _error_code(created[name]) == 0
    described = admin.list_topics(name, timeout=10).topics[name]
    assert described.error is None
    assert sorted(described.partitions) == [0, 1, 2]
    assert {p.leader for p in described.partitions.values()} == {1}

    duplicate = admin.create_topics([NewTopic(name, 1, 1)])
    assert _error_code(duplicate[name]) == KafkaError.TOPIC_ALREADY_EXISTS
    too_many_replicas = admin.create_topics([NewTopic(f"{name}-rf", 1, 3)])
    assert _error_code(too_many_replicas[f"{name}-rf"]) == KafkaError.INVALID_REPLICATION_FACTOR
    bad_name = admin.create_topics([NewTopic("bad/name", 1, 1)])
    assert _error_code(bad_name["bad/name"]) == KafkaError.TOPIC_EXCEPTION
    bad_config = admin.create_topics([NewTopic(f"{name}-cfg", 1, 1, config={"retention.ms": "x"})])
    assert _error_code(bad_config[f"{name}-cfg"]) == KafkaError.INVALID_CONFIG
    validated = admin.create_topics([NewTopic(f"{name}-dry", 2, 1)], validate_only=True)
    assert _error_code(validated[f"{name}-dry"]) == 0
    assert f"{name}-dry" not in admin.list_topics(timeout=10).topics

    resource = ConfigResource("topic", name)
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["retention.ms"].value == "3600000"
    assert not configs["retention.ms"].is_default
    assert configs["segment.bytes"].is_default

    change = ConfigResource(
        "topic", name,
        incremental_configs=[ConfigEntry("max.message.bytes", "2000000",
                                         incremental_operation=AlterConfigOpType.SET)],
    )
    admin.incremental_alter_configs([change])[change].result(timeout=10)
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["max.message.bytes"].value == "2000000"
    assert configs["retention.ms"].value == "3600000"  # incremental keeps other overrides

    replace = ConfigResource("topic", name, set_config={"retention.ms": "7200000"})
    admin.alter_configs([replace])[replace].result(timeout=10)  # replaces every override
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["retention.ms"].value == "7200000"
    assert configs["max.message.bytes"].is_default
    delete = ConfigResource(
        "topic", name,
        incremental_configs=[ConfigEntry("retention.ms", None,
                                         incremental_operation=AlterConfigOpType.DELETE)],
    )
    admin.incremental_alter_configs([delete])[delete].result(timeout=10)
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["retention.ms"].is_default
    assert configs["retention.ms"].value == str(7 * 24 * 3600 * 1000)

    invalid = ConfigResource(
        "topic", name,
        incremental_configs=[ConfigEntry("retention.ms", "soon",
                                         incremental_operation=AlterConfigOpType.SET)],
    )
    with pytest.raises(KafkaException) as failure:
        admin.incremental_alter_configs([invalid])[invalid].result(timeout=10)
    assert failure.value.args[0].code() == KafkaError.INVALID_CONFIG

    cluster = admin.describe_cluster(request_timeout=10).result(timeout=15)
    assert cluster.controller.id == 1
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(1, "127.0.0.1", broker.kafka_port)]

    broker_resource = ConfigResource("broker", "1")
    broker_configs = admin.describe_configs([broker_resource])[broker_resource].result(timeout=10)
    assert broker_configs["broker.id"].value == "1"

    grown = admin.create_partitions([NewPartitions(name, 5)])
    assert _error_code(grown[name]) == 0
    shrunk = admin.create_partitions([NewPartitions(name, 2)])
    assert _error_code(shrunk[name]) == KafkaError.INVALID_PARTITIONS
    assert len(admin.list_topics(name, timeout=10).topics[name].partitions) == 5

    deleted = admin.delete_topics([name], operation_timeout=10)
    assert _error_code(deleted[name]) == 0
    assert name not in admin.list_topics(timeout=10).topics
    again = admin.delete_topics([name])
    assert _error_code(again[name]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def _produce_keyed(
    bootstrap: str, topic: str, count: int, keys: int
) -> list[tuple[int, int, bytes, bytes, int]]:
    producer = _producer(bootstrap)
    acked: list[tuple[int, int, bytes, bytes, int]] = []
    errors: list[Any] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            errors.append(error)
        else:
            acked.append((message.partition(), message.offset(), message.key(),
                          message.value(), message.timestamp()[1]))

    for i in range(count):
        producer.produce(
            topic, key=f"key-{i % keys}".encode(), value=f"value-{i}".encode(),
            headers=[("seq", str(i).encode()), ("origin", b"test")],
            timestamp=BASE_TS + i, on_delivery=delivered,
        )
        producer.poll(0)
    assert producer.flush(20) == 0
    assert not errors, errors
    return acked


def test_idempotent_producer_keys_headers_timestamps(broker: BrokerProcess) -> None:
    admin = _admin(broker.bootstrap)
    topic = f"keyed-{uuid.uuid4().hex[:8]}"
    _error_code(admin.create_topics([NewTopic(topic, 3, 1)])[topic])
    acked = _produce_keyed(broker.bootstrap, topic, 300, keys=7)
    assert len(acked) == 300
    messages = consume_assigned(broker.bootstrap, topic, 3, 300)

    partition_of_key: dict[bytes, set[int]] = defaultdict(set)
    per_key: dict[bytes, list[int]] = defaultdict(list)
    seen = set()
    for message in messages:
        key, value = message.key(), message.value()
        index = int(value.decode().split("-")[1])
        assert key == f"key-{index % 7}".encode()
        assert message.headers() == [("seq", str(index).encode()), ("origin", b"test")]
        assert message.timestamp() == (1, BASE_TS + index)  # 1 = CreateTime
        partition_of_key[key].add(message.partition())
        per_key[key].append(index)
        seen.add((message.partition(), message.offset(), key, value))
    assert all(len(parts) == 1 for parts in partition_of_key.values())
    assert all(indexes == sorted(indexes) for indexes in per_key.values())
    assert seen == {(p, o, k, v) for p, o, k, v, _ in acked}


def test_offsets_for_times_finds_exact_records(broker: BrokerProcess) -> None:
    admin = _admin(broker.bootstrap)
    topic = f"times-{uuid.uuid4().hex[:8]}"
    _error_code(admin.create_topics([NewTopic(topic, 1, 1)])[topic])
    acked = _produce_keyed(broker.bootstrap, topic, 50, keys=1)
    offset_of = {ts: offset for _, offset, _, _, ts in acked}
    consumer = confluent_consumer(broker.bootstrap, {**SHORT_TIMEOUTS, "group.id": "times"})
    try:
        for target in (BASE_TS, BASE_TS + 17, BASE_TS + 49):
            [found] = consumer.offsets_for_times([TopicPartition(topic, 0, target)], timeout=10)
            assert found.offset == offset_of[target]
        [after] = consumer.offsets_for_times([TopicPartition(topic, 0, BASE_TS + 50)], timeout=10)
        assert after.offset == -1  # no record that new: end
        [seek_to] = consumer.offsets_for_times([TopicPartition(topic, 0, BASE_TS + 40)], timeout=10)
        consumer.assign([seek_to])
        first = eventually(lambda: consumer.poll(0.2), timeout=10, interval=0,
                           message="the record the timestamp found")
        assert first.error() is None
        assert first.value() == b"value-40"
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        assert (low, high) == (0, 50)
    finally:
        consumer.close()


def test_consumption_continues_after_graceful_restart(fresh_broker: BrokerProcess) -> None:
    topic = "restart"
    first = _produce_keyed(fresh_broker.bootstrap, topic, 40, keys=3)
    assert sorted(o for _, o, *_ in first) == list(range(40))
    assert fresh_broker.stop() == 0
    assert (fresh_broker.data_dir / ".clean-shutdown").exists()  # SIGTERM closed storage cleanly
    fresh_broker.start()
    second = _produce_keyed(fresh_broker.bootstrap, topic, 40, keys=3)
    assert sorted(o for _, o, *_ in second) == list(range(40, 80))
    messages = consume_assigned(fresh_broker.bootstrap, topic, 1, 80)
    assert [m.offset() for m in messages] == list(range(80))
    assert [m.value() for m in messages] == [f"value-{i}".encode() for i in range(40)] * 2


def test_sigkill_during_acks_all_production_loses_nothing_acknowledged(
    fresh_broker: BrokerProcess,
) -> None:
    topic = "crash"
    admin = _admin(fresh_broker.bootstrap)
    _error_code(admin.create_topics([NewTopic(topic, 2, 1)])[topic])
    acked: list[tuple[int, int, bytes]] = []
    lock = threading.Lock()
    producer = _producer(fresh_broker.bootstrap, **{"message.timeout.ms": 3000})

    def delivered(error: Any, message: Any) -> None:
        if error is None:
            with lock:
                acked.append((message.partition(), message.offset(), message.value()))

    sent = 0

    def produce_until(condition: Callable[[], bool], what: str) -> None:
        def produced_enough() -> bool:
            nonlocal sent
            if condition():
                return True
            try:
                producer.produce(topic, key=str(sent % 5).encode(),
                                 value=f"m-{sent}".encode(), on_delivery=delivered)
                sent += 1
            except BufferError:
                pass
            producer.poll(0.001)
            return False

        eventually(produced_enough, timeout=20, interval=0, message=what)

    produce_until(lambda: len(acked) >= 2000, "2000 acknowledged records")
    fresh_broker.kill()
    # More in flight towards a dead broker.
    produce_until(lambda: sent >= len(acked) + 5000, "5000 records past the acknowledged")
    producer.flush(5)
    with lock:
        acknowledged = list(acked)
    assert len(acknowledged) >= 2000
    fresh_broker.start()
    high = {}
    consumer = confluent_consumer(fresh_broker.bootstrap, {**SHORT_TIMEOUTS, "group.id": "crash"})
    for partition in (0, 1):
        high[partition] = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=10)[1]
    consumer.close()
    messages = consume_assigned(fresh_broker.bootstrap, topic, 2, sum(high.values()))
    stored = {(m.partition(), m.offset()): m.value() for m in messages}
    for partition, offset, value in acknowledged:
        assert stored.get((partition, offset)) == value
