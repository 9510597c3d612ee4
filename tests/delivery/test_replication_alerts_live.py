"""The replication alerts against reality: three real brokers, a real fault, a real Prometheus.

A local cluster (etcd and three ``headrace broker`` processes, ``headrace dev``'s DevCluster)
holds a topic every broker leads partitions of (RF 3, min.insync.replicas 3) and one with a
single replica per partition. Debian's ``prometheus`` scrapes each broker every second with the
labels the chart's PodMonitor gives (``namespace``, ``pod``) and evaluates the chart's alert rules
every second. While the cluster is healthy the replication alerts' expressions are false; a
SIGSTOPped broker loses its lease and the ISRs it followed shrink, which makes the ISR-shrink,
under-replicated and under-min-ISR expressions true for exactly the pods that lead them, and the
offline one true for its single-replica partitions; the rules go pending. SIGCONT brings it
back: the ISRs expand and the gauges' alerts go quiet again.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from headrace.cluster.devcluster import DevCluster, zone_name
from tests.delivery.prometheus import (
    Prometheus,
    alert_rules,
    prometheus_binary,
    start_prometheus,
    stop,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.timeout(240)

NAMESPACE = "headrace-test"
TOPIC = "replicated"
SINGLE = "single-replica"
#: Quick failure detection (a 3 s lease); the default replica lag keeps a slow start from
#: shrinking ISRs before the fault.
BROKER_FLAGS = ("--session-ttl", "3", "--offsets-topic-partitions", "3",
                "--controlled-shutdown-timeout", "10", "--log-level", "warning")
ISR_SHRINKING = "HeadraceIsrShrinking"
UNDER_REPLICATED = "HeadraceUnderReplicatedPartitions"
UNDER_MIN_ISR = "HeadraceUnderMinIsrPartitions"
OFFLINE = "HeadraceOfflinePartitions"
REPLICATION_ALERTS = (ISR_SHRINKING, UNDER_REPLICATED, UNDER_MIN_ISR, OFFLINE)
EXPANDED = "sum by (namespace, pod) (increase(headrace_isr_expands_total[5m])) > 0"


def pod(broker_id: int) -> str:
    """The pod name the operator gives broker ``broker_id`` of a cluster named ``events``."""
    return f"events-{zone_name(broker_id - 1)}-0"


@dataclass
class Partition:
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


def partitions(bootstrap: str, topic: str) -> list[Partition]:
    described = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=5)
    return [Partition(p.leader, tuple(p.replicas), tuple(p.isrs))
            for p in described.topics[topic].partitions.values()]


def healthy(bootstrap: str) -> bool:
    try:
        states = partitions(bootstrap, TOPIC) + partitions(bootstrap, SINGLE)
    except Exception:  # topics still being created
        return False
    return len(states) == 9 and all(
        p.leader >= 0 and sorted(p.isr) == sorted(p.replicas) for p in states)


@dataclass
class Setup:
    cluster: DevCluster
    prometheus: Prometheus


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    binary = prometheus_binary()
    cluster = DevCluster(tmp_path / "cluster", 3, extra_args=BROKER_FLAGS)
    server: subprocess.Popen[bytes] | None = None
    try:
        cluster.start()
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        topics = [NewTopic(TOPIC, 6, 3, config={"min.insync.replicas": "3"}),
                  NewTopic(SINGLE, 3, 1)]
        for future in admin.create_topics(topics, request_timeout=15).values():
            future.result(20)
        wait_until("every partition led with a full ISR",
                   lambda: healthy(cluster.bootstrap), timeout=60)
        scrape_configs: list[dict[str, Any]] = [{
            "job_name": "headrace-broker",
            "static_configs": [
                {"targets": [f"{b.host}:{b.http_port}"],
                 "labels": {"namespace": NAMESPACE, "pod": pod(b.broker_id)}}
                for b in cluster.brokers],
        }]
        config = write_config(tmp_path, scrape_configs)
        server, client = start_prometheus(binary, config, tmp_path / "tsdb")
        wait_until("3 scrapes of every broker", lambda: len(client.query(
            'count_over_time(up{job="headrace-broker"}[1m]) >= 3')) == 3, timeout=60)
        yield Setup(cluster, client)
    except BaseException:
        for broker in cluster.brokers:
            print(f"broker {broker.broker_id} log ends with:\n{broker.log_tail()}")
        raise
    finally:
        if server is not None:
            stop(server)
        cluster.kill()


def pods_where(prometheus: Prometheus, expr: str) -> set[str]:
    """The pods an alert expression is true for (empty: false everywhere)."""
    return {sample["metric"].get("pod", "") for sample in prometheus.query(expr)}


def is_false(prometheus: Prometheus, expr: str) -> bool:
    return prometheus.query(expr) == []


def test_a_stalled_broker_makes_the_replication_alerts_true(setup: Setup) -> None:
    cluster, prometheus = setup.cluster, setup.prometheus
    rules = alert_rules()
    expression = {name: str(rules[name]["expr"]) for name in REPLICATION_ALERTS}

    def states() -> dict[str, str] | None:
        return prometheus.rule_states()

    # Healthy: every replication expression false, every replication rule inactive.
    before = wait_until("every rule evaluated", states, timeout=30)
    assert {name: before[name] for name in REPLICATION_ALERTS} == dict.fromkeys(
        REPLICATION_ALERTS, "inactive")
    for name in REPLICATION_ALERTS:
        assert is_false(prometheus, expression[name]), name

    layout = partitions(cluster.bootstrap, TOPIC)
    victim = cluster.broker(next(p.replicas[0] for p in partitions(cluster.bootstrap, SINGLE)))
    # Leaders that keep leading and see the victim leave their ISRs.
    shrinking = {pod(p.leader) for p in layout if p.leader != victim.broker_id}
    assert len(shrinking) == 2, layout  # placement gives every broker partitions to lead
    survivors = {pod(b.broker_id) for b in cluster.brokers if b is not victim}
    offline = sum(p.replicas == (victim.broker_id,) for p in partitions(cluster.bootstrap, SINGLE))

    victim.pause()
    try:
        wait_until("the ISR-shrink expression to turn true", lambda: pods_where(
            prometheus, expression[ISR_SHRINKING]) == shrinking, timeout=60)
        # Partitions the victim led moved to survivors with it out of the ISR as well.
        wait_until("the under-replicated expression to turn true", lambda: shrinking <= pods_where(
            prometheus, expression[UNDER_REPLICATED]) <= survivors, timeout=60)
        wait_until("the under-min-ISR expression to turn true", lambda: shrinking <= pods_where(
            prometheus, expression[UNDER_MIN_ISR]) <= survivors, timeout=60)
        [lost] = wait_until("the offline expression to turn true",
                            lambda: prometheus.query(expression[OFFLINE]), timeout=60)
        assert float(lost["value"][1]) == offline
        wait_until("the replication rules to go pending", lambda: all(
            (states() or {}).get(name) in ("pending", "firing") for name in REPLICATION_ALERTS),
            timeout=30)
    finally:
        victim.resume()
    wait_until("the ISRs to expand again", lambda: shrinking <= pods_where(prometheus, EXPANDED),
               timeout=90)
    for name in (UNDER_REPLICATED, UNDER_MIN_ISR, OFFLINE):
        wait_until(f"{name}'s expression to turn false again",
                   functools.partial(is_false, prometheus, expression[name]), timeout=90)
