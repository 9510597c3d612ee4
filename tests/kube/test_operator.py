"""The operator against a real control plane, with its pods run by tests/peers/node_agent.py:
the manifests and the chart install it as documented, it runs under the chart's ServiceAccount
(a missing RBAC rule fails these tests), and it drives a three-zone cluster of real brokers
through topic changes, scaling, a rolling restart and a node drain while a producer with
``acks=all`` and a consumer run, and nothing acknowledged is lost.

One control plane, one node agent (three zones, two nodes each) and one operator serve the
module; the tests run in file order and later ones build on the cluster the earlier ones made.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from tests.peers.kube import ControlPlane, free_loopback_port
from tests.peers.node_agent import NodeAgent, wait_for
from tests.support.clients import confluent_consumer
from tests.support.clusters import (
    ProducerLoad,
    admin,
    check_no_loss_no_duplicates,
    partition_states,
    running_etcd,
)

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
CHART = ROOT / "charts" / "headrace"
GROUP_VERSION = "headrace.io/v1alpha1"
ZONES = ("zone-a", "zone-b", "zone-c")
BOOTSTRAP_ANNOTATION = "headrace.io/operator-bootstrap-servers"
CLUSTER = "events"
#: The operator's reconcile period here (15 s by default): waits stay short.
INTERVAL_S = 2

# About two and a half minutes in all on two busy cores (the first test also starts the
# control plane): slow, still part of .ci/run.
pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]


def apply(plane: ControlPlane, namespace: str, *docs: dict[str, Any]) -> None:
    plane.kubectl("apply", "-n", namespace, "-f", "-",
                  stdin="\n---\n".join(json.dumps(doc) for doc in docs))


def items(plane: ControlPlane, kind: str, namespace: str, *selector: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = plane.kubectl_json("get", kind, "-n", namespace,
                                                      *selector)["items"]
    return listed


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for found in ((obj or {}).get("status") or {}).get("conditions") or []:
        if found.get("type") == type_:
            return dict(found)
    return None


def get(plane: ControlPlane, path: str) -> dict[str, Any] | None:
    status, body = plane.request(path)
    return body if status == 200 else None


@pytest.fixture(scope="module")
def agent(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[NodeAgent]:
    with NodeAgent(control_plane, tmp_path_factory.mktemp("nodes"), zones=ZONES,
                   per_zone=2) as running:
        yield running
        if running.errors:
            print("node agent errors:", *running.errors[-20:], sep="\n")


@pytest.fixture(scope="module")
def crds(control_plane: ControlPlane) -> None:
    control_plane.kubectl("apply", "-f", str(MANIFESTS / "crds.yaml"))
    for doc in yaml.safe_load_all((MANIFESTS / "crds.yaml").read_text()):
        if doc:
            control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                                  f"crd/{doc['metadata']['name']}")


def operator_pods(plane: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    return items(plane, "pods", namespace, "-l", "app.kubernetes.io/component=operator")


def ready_pod(plane: ControlPlane, namespace: str, agent: NodeAgent) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        return next((p for p in operator_pods(plane, namespace)
                     if (condition(p, "Ready") or {}).get("status") == "True"), None)

    pod: dict[str, Any] = wait_for("the operator pod is ready", ready, 120,
                                   lambda: agent.logs() + "\n".join(agent.errors))
    return pod


def topic_status_written(plane: ControlPlane, namespace: str, name: str) -> bool:
    topic = get(plane, f"/apis/headrace.io/v1alpha1/namespaces/{namespace}/topics/{name}")
    return condition(topic, "Ready") is not None


def test_kubectl_apply_of_the_manifests_runs_the_operator_under_its_service_account(
    control_plane: ControlPlane, agent: NodeAgent, crds: None, namespace: str
) -> None:
    # As docs/kind-quickstart.md says: the CRDs and the operator, from manifests/.
    control_plane.kubectl("apply", "-f", str(MANIFESTS / "crds.yaml"),
                          "-f", str(MANIFESTS / "operator.yaml"))
    try:
        pod = ready_pod(control_plane, "headrace-system", agent)
        assert pod["spec"]["serviceAccountName"] == "headrace-operator"
        assert pod["spec"]["nodeName"] in agent.nodes
        # The operator acts with that account's permissions: a Topic of a missing Cluster
        # gets a status (reading Clusters, patching Topic status, posting Events).
        apply(control_plane, namespace, {
            "apiVersion": GROUP_VERSION, "kind": "Topic", "metadata": {"name": "orphan"},
            "spec": {"clusterRef": "absent", "partitions": 1}})
        wait_for("the operator reports on the Topic",
                 lambda: topic_status_written(control_plane, namespace, "orphan"), 90,
                 agent.logs)
        ready = condition(get(control_plane, f"/apis/headrace.io/v1alpha1/namespaces/"
                              f"{namespace}/topics/orphan"), "Ready")
        assert ready is not None and ready["status"] == "False", ready
    finally:
        control_plane.kubectl("delete", "-f", str(MANIFESTS / "operator.yaml"), "--wait=true",
                              "--timeout=120s", check=False)
    # A Topic with the operator's finalizer would hold its namespace: let the next operator
    # (the chart's) see it go.


OPERATOR_NAMESPACE = "headrace"


@pytest.fixture(scope="module")
def operator(control_plane: ControlPlane, helm: Path, agent: NodeAgent, crds: None
             ) -> Iterator[dict[str, Any]]:
    """The chart installed by ``helm install`` (its crds/ too: they exist, helm leaves them),
    reconciling every two seconds; its pod, once ready."""
    control_plane.helm(
        helm, "install", "hr", str(CHART), "-n", OPERATOR_NAMESPACE, "--create-namespace",
        "--set", f"operator.reconcileIntervalSeconds={INTERVAL_S}",
        "--set", f"operator.metricsPort={free_loopback_port()}",
        "--set", f"operator.healthPort={free_loopback_port()}",
        "--set-json", 'operator.extraEnv=[{"name":"HEADRACE_OPERATOR_ADMIN_TIMEOUT",'
                      '"value":"5"}]',
        "--wait=false")
    yield ready_pod(control_plane, OPERATOR_NAMESPACE, agent)
    # Topics of a namespace being deleted wait for the operator's finalizer: end them first.
    control_plane.kubectl("delete", "topics", "--all", "-A", "--wait=true", "--timeout=60s",
                          check=False)
    control_plane.helm(helm, "uninstall", "hr", "-n", OPERATOR_NAMESPACE, check=False)


def test_helm_install_runs_the_operator_under_the_charts_service_account(
    control_plane: ControlPlane, operator: dict[str, Any], helm: Path, agent: NodeAgent
) -> None:
    status = json.loads(control_plane.helm(helm, "status", "hr", "-n", OPERATOR_NAMESPACE,
                                           "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    account = operator["spec"]["serviceAccountName"]
    assert account == "hr-headrace-operator", account
    # The pod's credentials are a token of that account, not the admin's.
    kubeconfig = agent.kubeconfig_of(OPERATOR_NAMESPACE, operator["metadata"]["name"])
    whoami = json.loads(control_plane.kubectl("auth", "whoami", "-o", "json",
                                              kubeconfig=kubeconfig).stdout)
    assert whoami["status"]["userInfo"]["username"] == (
        f"system:serviceaccount:{OPERATOR_NAMESPACE}:{account}")


@dataclass
class Brokers:
    """The module's Cluster: its namespace, ports and where its pods listen."""

    namespace: str
    kafka_port: int
    agent: NodeAgent

    def address(self, pod: str) -> str:
        return f"{self.agent.pod_ip(self.namespace, pod)}:{self.kafka_port}"

    @property
    def bootstrap(self) -> str:
        """Every pod the Cluster may have (two per zone): clients use the ones that answer."""
        return ",".join(self.address(f"{CLUSTER}-{zone}-{i}") for i in range(2) for zone in ZONES)


def cluster_path(namespace: str, name: str = CLUSTER) -> str:
    return f"/apis/headrace.io/v1alpha1/namespaces/{namespace}/clusters/{name}"


def topic_path(namespace: str, name: str) -> str:
    return f"/apis/headrace.io/v1alpha1/namespaces/{namespace}/topics/{name}"


@pytest.fixture(scope="module")
def brokers(control_plane: ControlPlane, operator: dict[str, Any], agent: NodeAgent,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Brokers]:
    """A three-broker Cluster, its metadata in an etcd of its own (external mode: the agent
    runs no DNS for a managed etcd's Service names)."""
    namespace = "kafka"
    control_plane.kubectl("create", "namespace", namespace)
    with running_etcd(tmp_path_factory.mktemp("metadata")) as etcd:
        found = Brokers(namespace, free_loopback_port(), agent)
        cluster = {
            "apiVersion": GROUP_VERSION, "kind": "Cluster",
            "metadata": {"name": CLUSTER, "annotations": {BOOTSTRAP_ANNOTATION: found.bootstrap}},
            "spec": {
                "brokers": 3,
                "storage": {"size": "1Gi"},
                "listeners": {"kafka": {"port": found.kafka_port},
                              "http": {"port": free_loopback_port()}},
                "metadataStore": {"mode": "external", "endpoints": [etcd.endpoint]},
                "config": {"default.replication.factor": "3",
                           "offsets.topic.replication.factor": "3",
                           "group.initial.rebalance.delay.ms": "0"},
            },
        }
        apply(control_plane, namespace, cluster)
        yield found
        control_plane.kubectl("delete", "topics", "--all", "-n", namespace, "--wait=true",
                              "--timeout=60s", check=False)
        control_plane.kubectl("delete", "cluster", CLUSTER, "-n", namespace, "--wait=false",
                              check=False)
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def cluster_ready(plane: ControlPlane, namespace: str, brokers: int) -> dict[str, Any] | None:
    cluster = get(plane, cluster_path(namespace))
    ready = condition(cluster, "Ready")
    if cluster is None or ready is None or ready["status"] != "True":
        return None
    status = cluster["status"]
    if status.get("readyBrokers") != brokers or status.get("phase") != "Steady":
        return None
    if status.get("observedGeneration") != cluster["metadata"]["generation"]:
        return None
    return cluster


def diagnostics(plane: ControlPlane, agent: NodeAgent, namespace: str) -> Callable[[], str]:
    def report() -> str:
        cluster = get(plane, cluster_path(namespace))
        pods = plane.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
        return (f"cluster status: {json.dumps((cluster or {}).get('status'), indent=1)}\n"
                f"{pods}\nagent errors: {agent.errors[-10:]}\n{agent.logs()[-8000:]}")

    return report


def test_a_three_zone_cluster_becomes_ready_with_a_broker_in_each_zone(
    control_plane: ControlPlane, brokers: Brokers, agent: NodeAgent
) -> None:
    namespace = brokers.namespace
    cluster = wait_for("the Cluster is Ready", lambda: cluster_ready(control_plane, namespace, 3),
                       240, diagnostics(control_plane, agent, namespace))
    assert cluster["status"]["zones"] == list(ZONES)
    assert cluster["status"]["brokerIds"] == [0, 1000, 2000]
    pods = items(control_plane, "pods", namespace, "-l", "app.kubernetes.io/component=broker")
    zones = sorted(agent.zone_of(p["spec"]["nodeName"]) for p in pods)
    assert zones == list(ZONES)
    # The operator made every owned object; the StatefulSet controller and the scheduler did
    # the rest, and the PodDisruptionBudget controller counts the brokers.
    assert {s["metadata"]["name"] for s in items(control_plane, "statefulsets", namespace)} == {
        f"{CLUSTER}-{zone}" for zone in ZONES}
    pdb = control_plane.kubectl_json("get", "pdb", f"{CLUSTER}-brokers", "-n", namespace)
    wait_for("the PDB sees three healthy brokers", lambda: control_plane.kubectl_json(
        "get", "pdb", f"{CLUSTER}-brokers", "-n", namespace)["status"].get("currentHealthy") == 3)
    assert pdb["spec"]["maxUnavailable"] == 1
    # The brokers form one cluster, reachable where the pods listen.
    metadata = admin(brokers.bootstrap).list_topics(timeout=10)
    assert sorted(metadata.brokers) == [0, 1000, 2000]


def topic_config(bootstrap: str, topic: str, key: str) -> str | None:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    client = admin(bootstrap)  # the client must outlive its futures
    described = client.describe_configs([resource])[resource].result(timeout=10)
    entry = described.get(key)
    return None if entry is None else str(entry.value)


def kafka_topics(bootstrap: str) -> set[str]:
    return {t for t in admin(bootstrap).list_topics(timeout=10).topics if not t.startswith("__")}


def topic_reconciled(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    topic = get(plane, topic_path(namespace, name))
    ready = condition(topic, "Ready")
    if topic is None or ready is None or ready["status"] != "True":
        return None
    if topic["status"].get("observedGeneration") != topic["metadata"]["generation"]:
        return None
    return topic


def test_topics_are_created_altered_corrected_and_deleted(
    control_plane: ControlPlane, brokers: Brokers, agent: NodeAgent
) -> None:
    namespace, bootstrap = brokers.namespace, brokers.bootstrap
    wait_for("the Cluster is Ready", lambda: cluster_ready(control_plane, namespace, 3), 240,
             diagnostics(control_plane, agent, namespace))
    spec = {"clusterRef": CLUSTER, "partitions": 3, "replicationFactor": 3,
            "config": {"retention.ms": "3600000"}}
    apply(control_plane, namespace, {"apiVersion": GROUP_VERSION, "kind": "Topic",
                                     "metadata": {"name": "orders"}, "spec": spec})
    wait_for("the Topic is reconciled",
             lambda: topic_reconciled(control_plane, namespace, "orders"), 90,
             diagnostics(control_plane, agent, namespace))
    states = partition_states(bootstrap, "orders")
    assert len(states) == 3
    # Rack-aware placement: every partition has a replica in every zone.
    assert all(sorted(r // 1000 for r in replicas) == [0, 1, 2]
               for _, replicas, _ in states.values()), states
    assert topic_config(bootstrap, "orders", "retention.ms") == "3600000"

    # Altered in Kubernetes: more partitions, another retention.
    spec = {**spec, "partitions": 6, "config": {"retention.ms": "7200000"}}
    apply(control_plane, namespace, {"apiVersion": GROUP_VERSION, "kind": "Topic",
                                     "metadata": {"name": "orders"}, "spec": spec})
    wait_for("the alteration reaches Kafka",
             lambda: len(partition_states(bootstrap, "orders")) == 6
             and topic_config(bootstrap, "orders", "retention.ms") == "7200000", 90)
    topic = wait_for("the Topic is reconciled again",
                     lambda: topic_reconciled(control_plane, namespace, "orders"), 60)
    assert topic["status"]["partitionCount"] == 6
    # Fewer partitions: Kafka cannot remove any; refused with a condition, Kafka keeps six.
    apply(control_plane, namespace, {"apiVersion": GROUP_VERSION, "kind": "Topic",
                                     "metadata": {"name": "orders"},
                                     "spec": {**spec, "partitions": 2}})
    refused = wait_for("the decrease is refused", lambda: (
        c if (c := condition(get(control_plane, topic_path(namespace, "orders")), "Ready"))
        and c.get("reason") == "PartitionDecreaseRefused" else None), 60)
    assert refused["status"] == "False"
    assert len(partition_states(bootstrap, "orders")) == 6
    apply(control_plane, namespace, {"apiVersion": GROUP_VERSION, "kind": "Topic",
                                     "metadata": {"name": "orders"}, "spec": spec})

    # Drift: changed in Kafka behind Kubernetes' back, set back by the next periodic reconcile.
    resource = ConfigResource(ResourceType.TOPIC, "orders", incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    client = admin(bootstrap)
    client.incremental_alter_configs([resource])[resource].result(timeout=10)
    # (The operator may set it back before a read here could see it: the drift report below
    # is what shows Kafka held 1000.)
    wait_for("the operator corrects the drift",
             lambda: topic_config(bootstrap, "orders", "retention.ms") == "7200000", 60)
    drift = wait_for("the drift is reported", lambda: (get(
        control_plane, topic_path(namespace, "orders")) or {}).get("status", {}).get("drift"))
    assert any("retention.ms" in line and "'1000'" in line for line in drift), drift
    # Deleted in Kafka: recreated.
    client.delete_topics(["orders"])["orders"].result(timeout=10)
    wait_for("the operator recreates the topic",
             lambda: "orders" in kafka_topics(bootstrap)
             and len(partition_states(bootstrap, "orders")) == 6, 60)

    # Deleted in Kubernetes: deleted in Kafka (deletionPolicy delete), the finalizer released.
    control_plane.kubectl("delete", "topic", "orders", "-n", namespace, "--timeout=60s")
    wait_for("the Kafka topic is deleted", lambda: "orders" not in kafka_topics(bootstrap), 60)


LOAD_TOPIC = "load"
LOAD_PARTITIONS = 6


@pytest.fixture(scope="module")
def load_topic(control_plane: ControlPlane, brokers: Brokers, agent: NodeAgent) -> str:
    """A Topic every broker change below is made under: RF 3, min.insync.replicas 2."""
    namespace = brokers.namespace
    wait_for("the Cluster is Ready", lambda: cluster_ready(control_plane, namespace, 3), 240,
             diagnostics(control_plane, agent, namespace))
    apply(control_plane, namespace, {
        "apiVersion": GROUP_VERSION, "kind": "Topic", "metadata": {"name": LOAD_TOPIC},
        "spec": {"clusterRef": CLUSTER, "partitions": LOAD_PARTITIONS, "replicationFactor": 3,
                 "config": {"min.insync.replicas": "2"}}})
    wait_for("the load Topic is reconciled",
             lambda: topic_reconciled(control_plane, namespace, LOAD_TOPIC), 90)
    return LOAD_TOPIC


@contextlib.contextmanager
def under_load(brokers: Brokers, topic: str) -> Iterator[ProducerLoad]:
    """For the block, an idempotent acks=all producer and a consumer reading what it writes
    (from the offsets the topic had, so earlier blocks' records, which count from 0 again, stay
    out); afterwards the consumer reads on until it has every acknowledged offset, and each
    acknowledged record must be there, once, in order."""
    starts = end_offsets(brokers.bootstrap, topic)
    consumer = LiveConsumer(brokers.bootstrap, topic, starts).start()
    load = ProducerLoad(brokers.bootstrap, topic, LOAD_PARTITIONS).start()
    try:
        wait_for("the producer's first acknowledgements", lambda: load.acked_count() > 50, 60)
        before, read_before = load.acked_count(), consumer.count()
        yield load
        wait_for("acknowledgements after the change", lambda: load.acked_count() > before + 50,
                 60)
        wait_for("the consumer reads during the change", lambda: consumer.count() > read_before,
                 60)
    finally:
        load.stop()
        acked = list(load.acked)
        wanted = {p: max((a.offset for a in acked if a.partition == p), default=-1)
                  for p in range(LOAD_PARTITIONS)}
        try:
            wait_for("the consumer has every acknowledged offset",
                     lambda: consumer.reached(wanted), 90)
        finally:
            consumer.stop()
    check_no_loss_no_duplicates(acked, consumer.snapshot())


class LiveConsumer:
    """A consumer thread reading every partition from ``starts`` (assigned, no group)."""

    def __init__(self, bootstrap: str, topic: str, starts: dict[int, int]) -> None:
        self.bootstrap, self.topic, self.starts = bootstrap, topic, starts
        self.seen: dict[int, list[tuple[int, bytes]]] = {p: [] for p in starts}
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-consumer", daemon=True)

    def start(self) -> LiveConsumer:
        self._thread.start()
        return self

    def _run(self) -> None:
        consumer = confluent_consumer(self.bootstrap, {
            "enable.auto.commit": False, "topic.metadata.refresh.interval.ms": 1000})
        consumer.assign([TopicPartition(self.topic, p, offset)
                         for p, offset in self.starts.items()])
        try:
            while not self._stop.is_set():
                message = consumer.poll(0.2)
                if message is None:
                    continue
                if message.error():
                    self.errors.append(str(message.error()))
                    continue
                partition, offset = message.partition(), message.offset()
                assert partition is not None and offset is not None
                with self._lock:
                    self.seen[partition].append((offset, message.value() or b""))
        finally:
            consumer.close()

    def count(self) -> int:
        with self._lock:
            return sum(map(len, self.seen.values()))

    def reached(self, wanted: dict[int, int]) -> bool:
        with self._lock:
            return all((self.seen[p][-1][0] if self.seen[p] else -1) >= offset
                       for p, offset in wanted.items())

    def snapshot(self) -> dict[int, list[tuple[int, bytes]]]:
        with self._lock:
            return {p: list(records) for p, records in self.seen.items()}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = confluent_consumer(bootstrap, {"group.id": "offsets"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(LOAD_PARTITIONS)}
    finally:
        consumer.close()


def patch_cluster(plane: ControlPlane, namespace: str, spec: dict[str, Any]) -> None:
    plane.kubectl("patch", "cluster", CLUSTER, "-n", namespace, "--type=merge",
                  "-p", json.dumps({"spec": spec}))


def replicas_of(bootstrap: str, topic: str) -> set[int]:
    return {b for _, replicas, _ in partition_states(bootstrap, topic).values() for b in replicas}


def test_scale_up_rebalances_and_scale_down_drains_under_load(
    control_plane: ControlPlane, brokers: Brokers, agent: NodeAgent, load_topic: str
) -> None:
    namespace, bootstrap = brokers.namespace, brokers.bootstrap
    report = diagnostics(control_plane, agent, namespace)
    with under_load(brokers, load_topic):
        patch_cluster(control_plane, namespace, {"brokers": 6})
        wait_for("six ready brokers", lambda: cluster_ready(control_plane, namespace, 6), 240,
                 report)
        # The rebalance moved replicas onto the new brokers.
        wait_for("replicas on the new brokers",
                 lambda: {1, 1001, 2001} & replicas_of(bootstrap, load_topic), 120, report)
    assert sorted(admin(bootstrap).list_topics(timeout=10).brokers) == [
        0, 1, 1000, 1001, 2000, 2001]

    with under_load(brokers, load_topic):
        patch_cluster(control_plane, namespace, {"brokers": 3})
        wait_for("three ready brokers", lambda: cluster_ready(control_plane, namespace, 3), 240,
                 report)
        # Drained before removed: no partition names a removed broker, none lost a replica.
        states = partition_states(bootstrap, load_topic)
        assert replicas_of(bootstrap, load_topic) <= {0, 1000, 2000}, states
        assert all(len(replicas) == 3 for _, replicas, _ in states.values()), states
    pods = {p["metadata"]["name"] for p in items(control_plane, "pods", namespace, "-l",
                                                 "app.kubernetes.io/component=broker")}
    assert pods == {f"{CLUSTER}-{zone}-0" for zone in ZONES}

    # Below the replication factor: refused, nothing shrinks.
    patch_cluster(control_plane, namespace, {"brokers": 2})
    degraded = wait_for("the scale-down is refused", lambda: (
        c if (c := condition(get(control_plane, cluster_path(namespace)), "Degraded"))
        and c.get("reason") == "ScaleRefused" else None), 60, report)
    assert "replication factor 3" in degraded["message"]
    assert [s["spec"]["replicas"] for s in items(control_plane, "statefulsets", namespace)] == [
        1, 1, 1]
    patch_cluster(control_plane, namespace, {"brokers": 3})
    wait_for("the refusal clears", lambda: cluster_ready(control_plane, namespace, 3), 60, report)


def broker_pods(plane: ControlPlane, namespace: str) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in items(plane, "pods", namespace, "-l",
                                                     "app.kubernetes.io/component=broker")}


def test_a_rolling_restart_is_gated_on_in_sync_replicas_under_load(
    control_plane: ControlPlane, brokers: Brokers, agent: NodeAgent, load_topic: str
) -> None:
    namespace = brokers.namespace
    report = diagnostics(control_plane, agent, namespace)
    wait_for("three ready brokers", lambda: cluster_ready(control_plane, namespace, 3), 240,
             report)
    before = {name: pod["metadata"]["uid"]
              for name, pod in broker_pods(control_plane, namespace).items()}
    old_revision = (get(control_plane, cluster_path(namespace)) or {})["status"][
        "appliedRevision"]
    with under_load(brokers, load_topic):
        # A config change needs every broker restarted.
        patch_cluster(control_plane, namespace, {"config": {"replica.lag.time.max.ms": "20000"}})
        new_revision = wait_for("the new revision", lambda: (
            r if (r := (get(control_plane, cluster_path(namespace)) or {}).get("status", {}).get(
                "appliedRevision")) != old_revision else None), 60)

        unavailable: list[int] = []

        def rolled() -> bool:
            pods = broker_pods(control_plane, namespace)
            unavailable.append(3 - sum((condition(p, "Ready") or {}).get("status") == "True"
                                       and not p["metadata"].get("deletionTimestamp")
                                       for p in pods.values()))
            return len(pods) == 3 and all(
                pod["metadata"]["uid"] != before.get(name)
                and pod["metadata"]["annotations"].get("headrace.io/revision") == new_revision
                for name, pod in pods.items()) and bool(
                cluster_ready(control_plane, namespace, 3))

        wait_for("every broker restarted on the new revision", rolled, 300, report)
    # One broker at a time, the next only once the restarted one is back (ready: caught up).
    assert max(unavailable) <= 1, unavailable
    events = control_plane.kubectl_json("get", "events", "-n", namespace,
                                        "--field-selector", "reason=RollingRestart")["items"]
    assert len({e["message"] for e in events}) >= 3, [e["message"] for e in events]


def test_a_node_drain_honours_the_pod_disruption_budget_under_load(
    control_plane: ControlPlane, brokers: Brokers, agent: NodeAgent, load_topic: str
) -> None:
    namespace = brokers.namespace
    report = diagnostics(control_plane, agent, namespace)
    wait_for("three ready brokers", lambda: cluster_ready(control_plane, namespace, 3), 240,
             report)
    pods = broker_pods(control_plane, namespace)
    # Two brokers' nodes drained at once: the PDB (maxUnavailable 1) lets one go at a time.
    drained = sorted(pods[f"{CLUSTER}-{zone}-0"]["spec"]["nodeName"] for zone in ZONES[:2])
    with under_load(brokers, load_topic):
        done = control_plane.kubectl(
            "drain", *drained, "--ignore-daemonsets", "--delete-emptydir-data",
            "--timeout=240s", "--pod-selector=app.kubernetes.io/component=broker", timeout=300)
        assert "would violate the pod's disruption budget" in done.stdout + done.stderr, (
            done.stdout + done.stderr)
        wait_for("the brokers run again, on other nodes of their zones",
                 lambda: cluster_ready(control_plane, namespace, 3), 240, report)
    moved = broker_pods(control_plane, namespace)
    for zone in ZONES[:2]:
        node = moved[f"{CLUSTER}-{zone}-0"]["spec"]["nodeName"]
        assert node not in drained and agent.zone_of(node) == zone, node
    control_plane.kubectl("uncordon", *drained)


def test_deleting_the_cluster_garbage_collects_what_it_owns(
    control_plane: ControlPlane, brokers: Brokers, agent: NodeAgent
) -> None:
    namespace = brokers.namespace
    owned = ("statefulsets", "services", "configmaps", "poddisruptionbudgets")
    selector = f"app.kubernetes.io/instance={CLUSTER}"
    cluster = get(control_plane, cluster_path(namespace))
    assert cluster is not None
    for kind in owned:
        found = items(control_plane, kind, namespace, "-l", selector)
        assert found, kind
        assert all(ref["uid"] == cluster["metadata"]["uid"]
                   for obj in found for ref in obj["metadata"]["ownerReferences"]), kind
    control_plane.kubectl("delete", "topics", "--all", "-n", namespace, "--timeout=60s")
    control_plane.kubectl("delete", "cluster", CLUSTER, "-n", namespace, "--wait=false")
    # The garbage collector, not the operator, removes them (foreground deletion is not asked
    # for: kubectl's default is background); the agent stops the pods.
    wait_for("the owned objects are collected", lambda: not any(
        items(control_plane, kind, namespace, "-l", selector) for kind in (*owned, "pods")),
        120, diagnostics(control_plane, agent, namespace))
    assert not [p for p in agent.pods if p[0] == namespace]
