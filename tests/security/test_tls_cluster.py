"""A three-broker etcd cluster whose inter-broker listener is SSL with client certificates
required: replication (min.insync.replicas=3, so every follower must fetch), group
coordination and client answers all go over SSL. The PLAINTEXT listener is advertised where
nothing listens, so anything a broker sent another over it would fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka.admin import NewTopic

from headrace.cluster.devcluster import DevCluster
from tests.security.pki import make_pki
from tests.security.test_tls_clients import librdkafka_ssl
from tests.support.clients import confluent_admin, confluent_consumer, confluent_producer
from tests.support.clusters import FAST_FLAGS
from tests.support.waiting import eventually


@pytest.mark.timeout(240)
def test_a_cluster_replicates_over_an_ssl_inter_broker_listener(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    flags = (*FAST_FLAGS, "--listener", "SSL=SSL://127.0.0.1:0", "--inter-broker-listener", "SSL",
             *pki.broker_flags("required"),
             "--advertised-listener", "PLAINTEXT=127.0.0.1:1")
    cluster = DevCluster(tmp_path / "cluster", 3, extra_args=flags)
    try:
        cluster.start()
        ssl_ports = {
            broker.broker_id: json.loads(broker.ready_path.read_text())["listeners"]["SSL"]
            for broker in cluster.brokers
        }
        bootstrap = ",".join(f"127.0.0.1:{port}" for port in ssl_ports.values())
        settings = {**librdkafka_ssl(pki), "socket.timeout.ms": 10_000}
        admin = confluent_admin(bootstrap, settings)
        eventually(lambda: len(admin.list_topics(timeout=5).brokers) == 3, timeout=30,
                   message=lambda: cluster.brokers[0].log_tail())
        metadata = admin.list_topics(timeout=5)
        assert {b.id: b.port for b in metadata.brokers.values()} == ssl_ports
        topic = "replicated-over-tls"
        futures = admin.create_topics([NewTopic(
            topic, 3, 3, config={"min.insync.replicas": "3"})], request_timeout=15)
        futures[topic].result(30)

        def fully_in_sync() -> bool:
            partitions = admin.list_topics(topic, timeout=5).topics[topic].partitions
            return len(partitions) == 3 and all(
                p.leader >= 0 and len(p.isrs) == 3 for p in partitions.values())

        eventually(fully_in_sync, timeout=60, message=lambda: cluster.brokers[0].log_tail())
        producer = confluent_producer(bootstrap, {**settings, "acks": "all",
                                                  "enable.idempotence": True})
        for index in range(300):
            producer.produce(topic, value=b"%d" % index, partition=index % 3)
        assert producer.flush(60) == 0  # acks=all with min ISR 3: every follower replicated
        consumer = confluent_consumer(bootstrap, {**settings, "auto.offset.reset": "earliest"})
        consumer.subscribe([topic])
        values: set[bytes] = set()

        def read_all() -> bool:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.add(message.value())
            return len(values) == 300

        try:
            eventually(read_all, timeout=60, interval=0, message=lambda: f"{len(values)} read")
        finally:
            consumer.close()
        assert fully_in_sync()
    finally:
        cluster.kill()
