"""Partition reassignment (KIP-455) through kafka-python's admin client, with a throttle."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import TopicPartition as KafkaPythonPartition

from headrace.cluster.devcluster import DevCluster
from tests.support.clients import confluent_producer, create_topic, kafka_python_admin
from tests.support.clusters import FAST_FLAGS, all_led, consume_partitions, partition_states
from tests.support.waiting import eventually

THROTTLE = 150_000  # bytes/s for replicas added by a reassignment
RECORDS = 3000


@pytest.fixture
def throttled_cluster(tmp_path: Path) -> Iterator[DevCluster]:
    local = DevCluster(
        tmp_path / "cluster", 3,
        extra_args=(*FAST_FLAGS, "--reassignment-throttle-bytes-per-sec", str(THROTTLE)),
    )
    try:
        local.start()
        yield local
    finally:
        local.kill()


def test_reassignment_copies_data_under_the_throttle_then_drops_old_replica(
    throttled_cluster: DevCluster,
) -> None:
    cluster = throttled_cluster
    create_topic(cluster.bootstrap, "moving", 1, 2)
    eventually(lambda: all_led(cluster.bootstrap, "moving", 1), timeout=20, message="leader",
               retry_on=(Exception,))
    producer = confluent_producer(cluster.bootstrap, {"acks": "all", "linger.ms": 5})
    for index in range(RECORDS):
        producer.produce("moving", b"%0100d" % index, partition=0)
    assert producer.flush(30) == 0
    leader, replicas, _ = partition_states(cluster.bootstrap, "moving")[0]
    newcomer = next(b.broker_id for b in cluster.brokers if b.broker_id not in replicas)
    kept = leader
    target = [newcomer, kept]
    client = kafka_python_admin(cluster.bootstrap, request_timeout_ms=20000)
    try:
        started = time.monotonic()
        result = client.alter_partition_reassignments({KafkaPythonPartition("moving", 0): target})
        assert result[KafkaPythonPartition("moving", 0)] is None
        ongoing = client.list_partition_reassignments()
        entry = ongoing.get(KafkaPythonPartition("moving", 0))
        assert entry is not None, ongoing
        assert entry["adding_replicas"] == [newcomer]
        assert sorted(entry["removing_replicas"]) == sorted(set(replicas) - set(target))
        eventually(
            lambda: sorted(partition_states(cluster.bootstrap, "moving")[0][1]) == sorted(target),
            timeout=60, message="the reassignment to complete", retry_on=(Exception,),
        )
        elapsed = time.monotonic() - started
        assert client.list_partition_reassignments() == {}
    finally:
        client.close()
    # About 330 KB had to cross at 150 KB/s: well over a second even with generous slack.
    assert elapsed > 1.0, elapsed
    isr = partition_states(cluster.bootstrap, "moving")[0][2]
    assert sorted(isr) == sorted(target)
    # The newcomer really holds the data: make it the only ISR member left and read from it.
    cluster.broker(kept).kill()
    eventually(lambda: partition_states(cluster.broker(newcomer).bootstrap, "moving")[0][0]
               == newcomer, timeout=30, message="the newcomer leading", retry_on=(Exception,))
    seen = consume_partitions(
        cluster.broker(newcomer).bootstrap, "moving", 1, lambda s: len(s[0]) >= RECORDS, 30
    )
    assert [value for _, value in seen[0]] == [b"%0100d" % i for i in range(RECORDS)]
