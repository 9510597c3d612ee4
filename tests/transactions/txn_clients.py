"""What the transaction tests do with real clients: read a topic back under an isolation level,
produce a committed or an aborted transaction with confluent-kafka."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from tests.support.waiting import eventually


def read_values(bootstrap: str, topic: str, partitions: int, isolation: str,
                expected: int, *, settle: float = 1.0, timeout: float = 30.0) -> list[bytes]:
    """Every value of ``topic`` from offset 0 under ``isolation``: waits until ``expected``
    arrived, then reads ``settle`` seconds more so that extra (wrongly visible) records show."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}",
        "isolation.level": isolation, "enable.auto.commit": False,
    })
    values: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])

        def poll_until_expected() -> bool:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                values.append(message.value())
            return len(values) >= expected

        eventually(poll_until_expected, timeout=timeout, interval=0,
                   message=lambda: f"{expected} {isolation} values of {topic}: {values}")
        ends = time.monotonic() + settle
        while time.monotonic() < ends:
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                values.append(message.value())
        return values
    finally:
        consumer.close()


def transactional_producer(bootstrap: str, transactional_id: str, **config: object) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                         "socket.timeout.ms": 10_000, **config})
    producer.init_transactions(30)
    return producer


def produce_transaction(producer: Producer, topic: str, values: list[bytes], *,
                        commit: bool, partition: int | None = None) -> None:
    """One transaction of ``values``, sent (flushed) before it is committed or aborted, so an
    aborted one really is in the log."""
    producer.begin_transaction()
    for value in values:
        if partition is None:
            producer.produce(topic, value=value)
        else:
            producer.produce(topic, value=value, partition=partition)
    producer.flush(30)
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)
