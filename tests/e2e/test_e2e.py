"""End to end on a real multi-zone Kubernetes (kind in CI: .github/workflows/e2e.yaml).

The tests run in file order as one story: install the chart, run a 3-zone Cluster and Topics,
produce and consume, lose a broker under load without losing acknowledged records, scale up and
down, roll a new image one broker at a time, and uninstall cleanly. They need ``HEADRACE_E2E=1``,
a kubeconfig pointing at the cluster, ``kubectl`` and ``helm``, the images loaded into the
cluster (``HEADRACE_E2E_REGISTRY``/``HEADRACE_E2E_TAG``), and root or sudo for ``/etc/hosts``.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from tests.e2e.kube import (
    ROOT,
    TRANSIENT,
    KafkaTunnel,
    apply,
    broker_pods,
    condition,
    helm,
    kubectl,
    kubectl_json,
    pod_ready,
    run,
)
from tests.support.clients import confluent_admin, confluent_consumer, confluent_producer
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

NAMESPACE = os.environ.get("HEADRACE_E2E_NAMESPACE", "headrace-e2e")
REGISTRY = os.environ.get("HEADRACE_E2E_REGISTRY", "ghcr.io/headrace")
TAG = os.environ.get("HEADRACE_E2E_TAG", "e2e")
RELEASE = "headrace"
CLUSTER = "events"
TOPIC = "orders"
ZONES = ["a", "b", "c"]
ZONE_LABEL = "topology.kubernetes.io/zone"


# --- helpers -------------------------------------------------------------------------------------

def cluster_resource() -> dict[str, Any]:
    return dict(kubectl_json("get", "clusters.headrace.io", CLUSTER, "-n", NAMESPACE))


def cluster_ready(brokers: int) -> bool:
    cluster = cluster_resource()
    status = cluster.get("status", {})
    return (status.get("readyBrokers") == brokers
            and status.get("observedGeneration") == cluster["metadata"]["generation"]
            and condition(cluster, "Ready") == "True")


def patch_cluster(spec: dict[str, Any]) -> None:
    kubectl("patch", "clusters.headrace.io", CLUSTER, "-n", NAMESPACE, "--type", "merge",
            "-p", json.dumps({"spec": spec}))


def topic_manifest(name: str, partitions: int, replication: int) -> dict[str, Any]:
    return {
        "apiVersion": "headrace.io/v1alpha1", "kind": "Topic",
        "metadata": {"name": name},
        "spec": {"clusterRef": CLUSTER, "partitions": partitions,
                 "replicationFactor": replication,
                 "config": {"min.insync.replicas": "2"}},
    }


def producer(tunnel: KafkaTunnel) -> Producer:
    return confluent_producer(tunnel.bootstrap_servers, {
        "acks": "all", "enable.idempotence": True, "linger.ms": 5,
        "message.timeout.ms": 120000, "reconnect.backoff.max.ms": 2000})


def produce(tunnel: KafkaTunnel, topic: str, values: list[str]) -> set[str]:
    """Produce ``values`` and return those the cluster acknowledged."""
    acknowledged: set[str] = set()

    def on_delivery(error: KafkaError | None, message: Any) -> None:
        if error is None:
            acknowledged.add(message.value().decode())

    client = producer(tunnel)
    for value in values:
        client.produce(topic, value=value.encode(), key=value.encode(), on_delivery=on_delivery)
        client.poll(0)
    assert client.flush(180) == 0
    return acknowledged


def consume_all(tunnel: KafkaTunnel, topic: str, expected: set[str],
                timeout: float = 180) -> set[str]:
    """Read ``topic`` from the beginning with a fresh group until ``expected`` is seen."""
    consumer = confluent_consumer(tunnel.bootstrap_servers, {
        "group.id": f"e2e-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest", "enable.auto.commit": True})
    consumer.subscribe([topic])
    seen: set[str] = set()

    def all_seen() -> bool:
        message = consumer.poll(1.0)
        if message is not None:
            if not message.error():
                seen.add(message.value().decode())
            elif not message.error().retriable() and message.error().code() not in (
                    KafkaError._PARTITION_EOF, KafkaError._TRANSPORT):
                raise KafkaException(message.error())
        return expected <= seen

    try:
        if not expected <= seen:
            eventually(all_seen, timeout=timeout, interval=0,
                       message=lambda: f"{len(expected - seen)} more records of {topic}")
    finally:
        consumer.close()
    return seen


def topic_metadata(tunnel: KafkaTunnel, topic: str) -> Any:
    admin = confluent_admin(tunnel.bootstrap_servers)
    return admin.list_topics(topic, timeout=20).topics[topic]


# --- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tunnel() -> Iterator[KafkaTunnel]:
    eventually(lambda: cluster_ready(3), timeout=600, interval=2.0, message="Cluster to be ready",
               retry_on=TRANSIENT)
    with KafkaTunnel(NAMESPACE, CLUSTER) as opened:
        eventually(lambda: opened.bootstrap_servers.count(",") == 2, timeout=120, interval=2.0,
                   message="all brokers reachable", retry_on=TRANSIENT)
        yield opened


# --- the story -----------------------------------------------------------------------------------

def test_helm_install() -> None:
    helm("upgrade", "--install", RELEASE, str(ROOT / "charts" / "headrace"),
         "--namespace", NAMESPACE, "--create-namespace", "--wait", "--timeout", "5m",
         "--set", f"operator.image.repository={REGISTRY}/headrace-operator",
         "--set", f"operator.image.tag={TAG}",
         "--set", "operator.image.pullPolicy=IfNotPresent",
         "--set", f"broker.image.repository={REGISTRY}/headrace",
         "--set", f"broker.image.tag={TAG}")
    for crd in ("clusters.headrace.io", "topics.headrace.io"):
        kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    deployment = kubectl_json("get", "deployment", f"{RELEASE}-operator", "-n", NAMESPACE)
    assert deployment["status"].get("availableReplicas") == 1
    # RBAC is least privilege: the operator may manage StatefulSets but not Secrets.
    account = f"system:serviceaccount:{NAMESPACE}:{RELEASE}-operator"
    can = run("kubectl", "auth", "can-i", "create", "statefulsets", "-n", "default",
              "--as", account, check=False)
    cannot = run("kubectl", "auth", "can-i", "get", "secrets", "-n", "default",
                 "--as", account, check=False)
    assert can.stdout.strip() == "yes" and cannot.stdout.strip() == "no"


def test_three_zone_cluster_spreads_brokers_over_zones() -> None:
    apply({
        "apiVersion": "headrace.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": CLUSTER},
        "spec": {"brokers": 3, "zones": {"names": ZONES},
                 "image": f"{REGISTRY}/headrace:{TAG}", "storage": {"size": "1Gi"},
                 "config": {"default.replication.factor": "3", "min.insync.replicas": "2"},
                 # As the chart's own Cluster: non-root, read-only root, writable data volume.
                 "podTemplate": {
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                         "fsGroup": 10001},
                     "containerSecurityContext": {"readOnlyRootFilesystem": True,
                                                  "allowPrivilegeEscalation": False,
                                                  "capabilities": {"drop": ["ALL"]}}}},
    }, NAMESPACE)
    eventually(lambda: cluster_ready(3), timeout=600, interval=2.0, message="3 ready brokers",
               retry_on=TRANSIENT)
    nodes = {node["metadata"]["name"]: node["metadata"]["labels"].get(ZONE_LABEL)
             for node in kubectl_json("get", "nodes")["items"]}
    pods = broker_pods(NAMESPACE, CLUSTER)
    assert len(pods) == 3 and all(pod_ready(pod) for pod in pods)
    assert sorted(nodes[pod["spec"]["nodeName"]] for pod in pods) == ZONES


def test_topics_are_created_with_replicas_in_every_zone(tunnel: KafkaTunnel) -> None:
    apply(topic_manifest(TOPIC, 6, 3), NAMESPACE)
    eventually(lambda: condition(
        kubectl_json("get", "topics.headrace.io", TOPIC, "-n", NAMESPACE), "Ready") == "True",
        timeout=300, interval=2.0, message="Topic Ready", retry_on=TRANSIENT)
    metadata = topic_metadata(tunnel, TOPIC)
    assert len(metadata.partitions) == 6
    for partition in metadata.partitions.values():
        assert len(set(partition.replicas)) == 3
        assert sorted(partition.isrs) == sorted(partition.replicas)


def test_produce_and_consume(tunnel: KafkaTunnel) -> None:
    values = [f"first-{index}" for index in range(2000)]
    acknowledged = produce(tunnel, TOPIC, values)
    assert acknowledged == set(values)
    assert consume_all(tunnel, TOPIC, acknowledged) >= acknowledged


def test_deleting_a_broker_under_load_loses_no_acknowledged_record(tunnel: KafkaTunnel) -> None:
    acknowledged: set[str] = set()
    failed: list[str] = []
    stop = threading.Event()

    def load() -> None:
        def on_delivery(error: KafkaError | None, message: Any) -> None:
            (failed.append(str(error)) if error else
             acknowledged.add(message.value().decode()))

        client = producer(tunnel)
        index = 0
        while not stop.is_set():
            value = f"load-{index}"
            try:
                client.produce(TOPIC, value=value.encode(), on_delivery=on_delivery)
                index += 1
            except BufferError:
                pass
            client.poll(0.01)
        client.flush(180)

    worker = threading.Thread(target=load, name="producer")
    worker.start()
    try:
        eventually(lambda: len(acknowledged) > 500, timeout=120, interval=0.5,
                   message="traffic before the failure", retry_on=TRANSIENT)
        victim = broker_pods(NAMESPACE, CLUSTER)[0]["metadata"]
        kubectl("delete", "pod", victim["name"], "-n", NAMESPACE, "--wait=false")
        eventually(lambda: any(
            pod["metadata"]["name"] == victim["name"] and pod["metadata"]["uid"] != victim["uid"]
            and pod_ready(pod) for pod in broker_pods(NAMESPACE, CLUSTER)),
            timeout=300, interval=2.0, message="the broker pod replaced", retry_on=TRANSIENT)
        during = len(acknowledged)
        eventually(lambda: len(acknowledged) > during + 500, timeout=120, interval=0.5,
                   message="traffic after recovery", retry_on=TRANSIENT)
    finally:
        stop.set()
        worker.join(timeout=240)
    eventually(lambda: cluster_ready(3), timeout=300, interval=2.0, message="3 ready brokers",
               retry_on=TRANSIENT)
    seen = consume_all(tunnel, TOPIC, acknowledged, timeout=300)
    lost = acknowledged - seen
    assert not lost, f"{len(lost)} acknowledged records lost, e.g. {sorted(lost)[:5]}"


def test_scale_up_and_down(tunnel: KafkaTunnel) -> None:
    patch_cluster({"brokers": 4})
    eventually(lambda: cluster_ready(4), timeout=600, interval=2.0, message="4 ready brokers",
               retry_on=TRANSIENT)
    eventually(lambda: len(
        confluent_admin(tunnel.bootstrap_servers).list_topics(timeout=20).brokers) == 4,
        timeout=120, interval=2.0, message="4 brokers in the metadata", retry_on=TRANSIENT)
    values = [f"scaled-{index}" for index in range(500)]
    acknowledged = produce(tunnel, TOPIC, values)

    patch_cluster({"brokers": 3})
    eventually(lambda: cluster_ready(3), timeout=600, interval=2.0,
               message="back to 3 ready brokers", retry_on=TRANSIENT)
    assert len(broker_pods(NAMESPACE, CLUSTER)) == 3
    metadata = topic_metadata(tunnel, TOPIC)
    assert all(len(partition.isrs) >= 2 for partition in metadata.partitions.values())
    assert consume_all(tunnel, TOPIC, acknowledged) >= acknowledged


def test_image_change_rolls_brokers_one_at_a_time(tunnel: KafkaTunnel) -> None:
    new_image = f"{REGISTRY}/headrace:{TAG}-next"
    most_unavailable = 0
    patch_cluster({"image": new_image})

    def rolled() -> bool:
        nonlocal most_unavailable
        pods = broker_pods(NAMESPACE, CLUSTER)
        unavailable = 3 - sum(pod_ready(pod) for pod in pods)
        most_unavailable = max(most_unavailable, unavailable)
        return len(pods) == 3 and all(
            pod_ready(pod) and pod["spec"]["containers"][0]["image"] == new_image
            for pod in pods)

    eventually(rolled, timeout=900, interval=0.5, message="every broker on the new image",
               retry_on=TRANSIENT)
    assert most_unavailable <= 1, f"{most_unavailable} brokers were down at once"
    eventually(lambda: cluster_ready(3), timeout=300, interval=2.0,
               message="Cluster ready after the roll", retry_on=TRANSIENT)
    values = [f"rolled-{index}" for index in range(200)]
    acknowledged = produce(tunnel, TOPIC, values)
    assert consume_all(tunnel, TOPIC, acknowledged) >= acknowledged


def test_uninstall_cleanly() -> None:
    kubectl("delete", "topics.headrace.io", "--all", "-n", NAMESPACE, "--timeout=180s")
    kubectl("delete", "clusters.headrace.io", CLUSTER, "-n", NAMESPACE, "--timeout=300s")
    eventually(lambda: not broker_pods(NAMESPACE, CLUSTER), timeout=300, interval=2.0,
               message="broker pods gone", retry_on=TRANSIENT)
    helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "5m")
    # Broker data volumes (PVCs) are not checked: keeping data after a delete is deliberate.
    for selector in ("app.kubernetes.io/managed-by=headrace-operator",  # the operator's
                     f"app.kubernetes.io/instance={RELEASE}"):  # the chart's
        leftovers = kubectl("get", "all,configmaps,poddisruptionbudgets,serviceaccounts",
                            "-n", NAMESPACE, "-l", selector, "-o", "name")
        assert leftovers.strip() == "", leftovers
    roles = kubectl("get", "clusterroles,clusterrolebindings", "-o", "name")
    assert f"{RELEASE}-operator" not in roles
    # Helm keeps CRDs (and so users' resources) on uninstall; removing them is explicit.
    kubectl("delete", "crd", "clusters.headrace.io", "topics.headrace.io", "--timeout=120s")
    kubectl("delete", "namespace", NAMESPACE, "--timeout=300s")
