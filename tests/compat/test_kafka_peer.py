"""The real Apache Kafka broker (KRaft, one node) runs here as a peer: the proof that
``tests.peers.kafka.start_kraft_broker`` gives the benchmarks a working Kafka to compare with."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from tests.peers.kafka import kafka_missing_reason, kafka_version, start_kraft_broker

MISSING = kafka_missing_reason()
pytestmark = [pytest.mark.skipif(MISSING is not None, reason=str(MISSING)), pytest.mark.slow]


def test_apache_kafka_kraft_broker_round_trip(tmp_path: Path) -> None:
    peer = start_kraft_broker(tmp_path)
    try:
        print(f"Apache Kafka {kafka_version()} ready in {peer.ready_seconds:.2f}s")
        admin = AdminClient({"bootstrap.servers": peer.bootstrap})
        metadata = admin.list_topics(timeout=10)
        assert set(metadata.brokers) == {peer.node_id}
        assert metadata.cluster_id == peer.cluster_id
        admin.create_topics([NewTopic("peer-round-trip", 3, 1)])["peer-round-trip"].result(15)

        records = {f"key-{index}".encode(): f"value-{index}".encode() for index in range(50)}
        producer = Producer({"bootstrap.servers": peer.bootstrap, "acks": "all"})
        for key, value in records.items():
            producer.produce("peer-round-trip", key=key, value=value)
        assert producer.flush(20) == 0

        consumer = Consumer({
            "bootstrap.servers": peer.bootstrap,
            "group.id": "peer-round-trip",
            "auto.offset.reset": "earliest",
        })
        consumer.subscribe(["peer-round-trip"])
        received: dict[bytes, bytes] = {}
        partitions: set[int] = set()
        deadline = time.monotonic() + 30
        try:
            while len(received) < len(records) and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None or message.error() is not None:
                    continue
                key, value = message.key(), message.value()
                assert key is not None and value is not None
                received[key] = value
                partitions.add(message.partition())
        finally:
            consumer.close()
        assert received == records
        assert partitions == {0, 1, 2}
    finally:
        code = peer.stop()
    assert code in (0, 143), peer.log()
