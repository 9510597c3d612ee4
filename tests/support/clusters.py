"""Clusters for tests: a real etcd on loopback ports, metadata stores over it, and the
process-level helpers of the replication and fault-injection tests (an etcd plus N ``headrace
broker`` children is ``headrace.cluster.devcluster.DevCluster``; the ``cluster`` fixture runs
three).

The helpers read a cluster the way clients do, through one broker's Kafka answers, so they
work whichever broker is asked and whatever it knows so far; waits on them go through
:func:`tests.support.waiting.eventually`, which retries while a broker is mid-failover.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from headrace.cluster.etcd_launcher import EtcdProcess
from headrace.cluster.model import KeySpace
from headrace.cluster.store import EtcdMetadataStore
from tests.support.clients import confluent_admin, confluent_consumer, confluent_producer
from tests.support.waiting import eventually


@contextlib.contextmanager
def running_etcd(data_dir: Path, *extra_args: str) -> Iterator[EtcdProcess]:
    """A real etcd on loopback ports for the duration of the block."""
    process = EtcdProcess(data_dir, extra_args=extra_args)
    process.start()
    try:
        yield process
    finally:
        process.stop()


class StoreFactory:
    """Creates stores against one etcd and key root, and closes them all at the end."""

    def __init__(self, etcd: EtcdProcess, keys: KeySpace) -> None:
        self.etcd = etcd
        self.keys = keys
        self.stores: list[EtcdMetadataStore] = []

    async def __call__(self, *, lease_ttl: int = 3, start: bool = True) -> EtcdMetadataStore:
        store = EtcdMetadataStore(
            [("127.0.0.1", self.etcd.client_port)], keys=self.keys, lease_ttl=lease_ttl
        )
        self.stores.append(store)
        if start:
            await store.start()
        return store

    async def close(self) -> None:
        for store in self.stores:
            await store.close()


# -- process-level helpers for the replication and fault-injection tests -----------------------

#: Broker flags that make failure detection quick enough for bounded tests.
FAST_FLAGS = (
    "--session-ttl", "3",
    "--replica-lag-time-max-ms", "2500",
    "--offsets-topic-partitions", "3",
    "--controlled-shutdown-timeout", "10",
    "--log-level", "info",
)


def admin(bootstrap: str) -> AdminClient:
    """An admin client that gives up on an unresponsive broker after 5 s."""
    return confluent_admin(bootstrap, {"socket.timeout.ms": 5000})


PartitionView = tuple[int, tuple[int, ...], tuple[int, ...]]
Seen = dict[int, list[tuple[int, bytes]]]


def partition_states(bootstrap: str, topic: str) -> dict[int, PartitionView]:
    """partition -> (leader, replicas, isr) as one broker's Metadata answer reports it."""
    metadata = admin(bootstrap).list_topics(topic, timeout=5)
    described = metadata.topics[topic]
    if described.error is not None:
        raise RuntimeError(str(described.error))
    return {
        p.id: (p.leader, tuple(p.replicas), tuple(p.isrs)) for p in described.partitions.values()
    }


def all_led(bootstrap: str, topic: str, partitions: int) -> bool:
    states = partition_states(bootstrap, topic)
    return len(states) == partitions and all(leader >= 0 for leader, _, _ in states.values())


@dataclass
class Acked:
    partition: int
    offset: int
    value: bytes


@dataclass
class ProducerLoad:
    """Idempotent acks=all production from a thread; records every acknowledged record."""

    bootstrap: str
    topic: str
    partitions: int
    acked: list[Acked] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sent: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> ProducerLoad:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        producer = confluent_producer(self.bootstrap, {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "message.timeout.ms": 60000,
            "topic.metadata.refresh.interval.ms": 1000,
        })

        def delivered(error: KafkaError | None, message: Any) -> None:
            if error is not None:
                with self._lock:
                    self.errors.append(str(error))
                return
            with self._lock:
                self.acked.append(Acked(message.partition(), message.offset(), message.value()))

        sequence = 0
        while not self._stop.is_set():
            partition = sequence % self.partitions
            try:
                producer.produce(self.topic, value=b"%08d" % sequence, partition=partition,
                                 on_delivery=delivered)
                sequence += 1
            except BufferError:
                producer.poll(0.05)
                continue
            producer.poll(0)
            if sequence % 50 == 0:
                time.sleep(0.01)  # a steady stream, not a flood that starves the brokers
        producer.flush(60)
        self.sent = sequence

    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(90)


def consume_partitions(
    bootstrap: str, topic: str, partitions: int, until: Callable[[Seen], bool], timeout: float
) -> Seen:
    """Read every partition from the beginning (assign, no group) until ``until`` holds."""
    consumer = confluent_consumer(bootstrap, {
        "group.id": "verifier",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "topic.metadata.refresh.interval.ms": 1000,
    })
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen: Seen = {p: [] for p in range(partitions)}

    def read_enough() -> bool:
        message = consumer.poll(0.2)
        if message is not None and not message.error():
            seen[message.partition()].append((message.offset(), message.value()))
        return until(seen)

    try:
        if not until(seen):
            eventually(read_enough, timeout=timeout, interval=0,
                       message=lambda: f"records of {topic} ({sum(map(len, seen.values()))} read)")
    finally:
        consumer.close()
    return seen


def check_no_loss_no_duplicates(acked: list[Acked], seen: Seen) -> None:
    """Every acknowledged record is there at its acknowledged offset; no value appears twice."""
    by_offset = {p: dict(records) for p, records in seen.items()}
    for record in acked:
        assert by_offset[record.partition].get(record.offset) == record.value, (
            f"acked record {record} missing or different"
        )
    for partition, records in seen.items():
        offsets = [offset for offset, _ in records]
        assert offsets == sorted(offsets), f"partition {partition} out of order"
        values = [value for _, value in records]
        assert len(values) == len(set(values)), f"duplicate records in partition {partition}"
        # Idempotent producer, one partition per sequence class: values must increase.
        assert values == sorted(values), f"producer order broken in partition {partition}"
