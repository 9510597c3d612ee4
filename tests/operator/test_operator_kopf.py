"""The real operator (kopf, in its own thread) against the Kubernetes emulator and a real broker.

One emulator, one operator and one real single-node ``headrace broker`` serve the whole module;
every test works in its own namespace. Brokers inside "pods" do not exist here (the emulator has
no kubelet), so Clusters that need broker answers point the operator at the real broker with the
``headrace.io/operator-bootstrap-servers`` annotation.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from kopf.testing import KopfRunner

from headrace.cluster.devcluster import BrokerProcess as DevBroker
from headrace_operator.crds import openapi_schema
from tests.operator.kube_emulator import EmulatedCluster
from tests.support.brokers import BrokerProcess
from tests.support.clients import confluent_admin, confluent_consumer, confluent_producer
from tests.support.waiting import eventually

API = "headrace.io/v1alpha1"
DEADLINE_S = 25.0

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def real_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path_factory.mktemp("operator-broker") / "data",
                            ("--broker-id", "0", "--no-auto-create-topics")).start()
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedCluster]:
    cluster = EmulatedCluster().start()
    kubeconfig = cluster.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config.json")
    saved = {k: os.environ.get(k) for k in ("HEADRACE_KUBECONFIG", "HEADRACE_OPERATOR_INTERVAL",
                                            "HEADRACE_OPERATOR_METRICS_PORT",
                                            "HEADRACE_OPERATOR_ADMIN_TIMEOUT")}
    os.environ.update(HEADRACE_KUBECONFIG=str(kubeconfig), HEADRACE_OPERATOR_INTERVAL="1",
                      HEADRACE_OPERATOR_METRICS_PORT="0", HEADRACE_OPERATOR_ADMIN_TIMEOUT="5")
    try:
        with KopfRunner(["run", "--all-namespaces", "--standalone",
                         "-m", "headrace_operator.handlers"], timeout=30) as runner:
            yield cluster
        assert runner.exception is None, runner.output[-3000:]
    finally:
        cluster.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _cluster(namespace: str, name: str, spec: dict[str, Any],
             annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Cluster",
            "metadata": {"name": name, "namespace": namespace,
                         "annotations": annotations or {}},
            "spec": spec}


def _topic(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Topic",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_:
            return dict(condition)
    return {}


def test_cluster_creates_owned_objects_with_status(kube: EmulatedCluster) -> None:
    ns = "t-create"
    cluster = _cluster(ns, "demo", {"brokers": 4, "zones": {"names": ["z1", "z2"]},
                                    "config": {"min.insync.replicas": "2"}})
    jsonschema.validate(cluster, openapi_schema("Cluster"))
    kube.create(cluster)
    uid = eventually(lambda: (kube.get(API, "Cluster", ns, "demo") or {}).get(
        "metadata", {}).get("uid"), timeout=DEADLINE_S, message="cluster uid")
    statefulsets = eventually(lambda: [s for s in kube.list("apps/v1", "StatefulSet", ns)
                                       if s["metadata"]["name"] in ("demo-z1", "demo-z2")
                                       ] if len(kube.list("apps/v1", "StatefulSet", ns)) >= 3
                              else None,
                              timeout=DEADLINE_S, message="broker and etcd StatefulSets")
    assert sorted(s["spec"]["replicas"] for s in statefulsets) == [2, 2]
    for sts in statefulsets:
        assert sts["metadata"]["ownerReferences"][0]["uid"] == uid
        assert sts["spec"]["updateStrategy"] == {"type": "OnDelete"}
    services = {s["metadata"]["name"] for s in kube.list("v1", "Service", ns)}
    assert {"demo-brokers", "demo-bootstrap", "demo-etcd", "demo-etcd-client"} <= services
    assert kube.get("v1", "ConfigMap", ns, "demo-config") is not None
    assert kube.get("policy/v1", "PodDisruptionBudget", ns, "demo-brokers") is not None
    status = eventually(lambda: (kube.get(API, "Cluster", ns, "demo") or {}).get("status", {})
                        if _condition(kube.get(API, "Cluster", ns, "demo"), "Ready") else None,
                        timeout=DEADLINE_S, message="cluster status conditions")
    assert status["brokerIds"] == [0, 1, 1000, 1001]
    assert status["readyBrokers"] == 0
    assert _condition({"status": status}, "Ready")["status"] == "False"
    assert status["observedGeneration"] == 1
    # Scale up: the zones' StatefulSets grow.
    kube.patch(API, "Cluster", ns, "demo", {"spec": {"brokers": 6}})
    eventually(lambda: sorted(kube.get("apps/v1", "StatefulSet", ns, n)["spec"]["replicas"]
                              for n in ("demo-z1", "demo-z2")) == [3, 3], timeout=DEADLINE_S,
               message="scale-up")
    # Scale down with unreachable brokers: nothing shrinks, a condition says why.
    kube.patch(API, "Cluster", ns, "demo", {"spec": {"brokers": 2}})
    progressing = eventually(lambda: _condition(kube.get(API, "Cluster", ns, "demo"),
                                                "Progressing").get("reason") == "Draining"
                             and _condition(kube.get(API, "Cluster", ns, "demo"), "Progressing"),
                             timeout=DEADLINE_S, message="draining condition")
    assert "not removing" in progressing["message"]
    assert kube.get("apps/v1", "StatefulSet", ns, "demo-z1")["spec"]["replicas"] == 3


def test_invalid_cluster_spec_is_a_condition_not_a_crash(kube: EmulatedCluster) -> None:
    ns = "t-invalid"
    bad = _cluster(ns, "broken", {"brokers": 1, "metadataStore": {"mode": "external"}})
    kube.create(bad)
    ready = eventually(lambda: _condition(kube.get(API, "Cluster", ns, "broken"), "Ready"),
                       timeout=DEADLINE_S, message="InvalidSpec condition")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert kube.list("apps/v1", "StatefulSet", ns) == []
    eventually(lambda: any(e.get("reason") == "InvalidSpec" for e in kube.events(ns, "broken")),
               timeout=DEADLINE_S, message="InvalidSpec event")
    # The schema rejects what it can express.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_cluster(ns, "x", {"brokers": 0}), openapi_schema("Cluster"))


def test_topic_with_unknown_cluster_or_too_large_rf_reports_conditions(
        kube: EmulatedCluster) -> None:
    ns = "t-topic-errors"
    kube.create(_topic(ns, "orphan", {"clusterRef": "missing", "partitions": 1}))
    condition = eventually(lambda: _condition(kube.get(API, "Topic", ns, "orphan"), "Ready"),
                           timeout=DEADLINE_S, message="ClusterNotFound condition")
    assert condition["reason"] == "ClusterNotFound"
    kube.create(_cluster(ns, "small", {"brokers": 1}))
    kube.create(_topic(ns, "wide", {"clusterRef": "small", "replicationFactor": 3}))
    condition = eventually(lambda: _condition(kube.get(API, "Topic", ns, "wide"), "Ready"),
                           timeout=DEADLINE_S, message="ReplicationFactorTooLarge condition")
    assert condition["reason"] == "ReplicationFactorTooLarge"
    eventually(lambda: any(e.get("reason") == "ReplicationFactorTooLarge"
                           for e in kube.events(ns, "wide")), timeout=DEADLINE_S,
               message="warning event")


def _kafka_topics(broker: BrokerProcess) -> dict[str, Any]:
    client = confluent_admin(broker.bootstrap)
    return dict(client.list_topics(timeout=10).topics)


def _kafka_config(broker: BrokerProcess, topic: str) -> dict[str, str]:
    from confluent_kafka.admin import ConfigResource

    client = confluent_admin(broker.bootstrap)
    resource = ConfigResource("topic", topic)
    entries = client.describe_configs([resource])[resource].result(timeout=10)
    return {k: v.value for k, v in entries.items()}


def test_topic_lifecycle_against_a_real_broker(kube: EmulatedCluster,
                                               real_broker: BrokerProcess) -> None:
    ns = "t-topic"
    kube.create(_cluster(ns, "solo", {"brokers": 1},
                         {"headrace.io/operator-bootstrap-servers": real_broker.bootstrap}))
    topic = _topic(ns, "orders", {"clusterRef": "solo", "partitions": 2, "replicationFactor": 1,
                                  "config": {"retention.ms": "3600000"}})
    jsonschema.validate(topic, openapi_schema("Topic"))
    kube.create(topic)
    eventually(lambda: _condition(kube.get(API, "Topic", ns, "orders"), "Ready").get(
        "status") == "True", timeout=DEADLINE_S,
        message=lambda: f"topic ready: {kube.get(API, 'Topic', ns, 'orders')}")
    assert len(_kafka_topics(real_broker)["orders"].partitions) == 2
    assert _kafka_config(real_broker, "orders")["retention.ms"] == "3600000"
    status = kube.get(API, "Topic", ns, "orders")["status"]
    assert [p["replicas"] for p in status["partitions"]] == [[0], [0]]
    assert all(p["leader"] == 0 and p["isr"] == [0] for p in status["partitions"])

    # Grow: partitions are added.
    kube.patch(API, "Topic", ns, "orders", {"spec": {"partitions": 3}})
    eventually(lambda: len(_kafka_topics(real_broker)["orders"].partitions) == 3,
               timeout=DEADLINE_S, message="3 partitions")
    # Shrink: refused with a condition; Kafka keeps 3 partitions.
    kube.patch(API, "Topic", ns, "orders", {"spec": {"partitions": 1}})
    condition = eventually(lambda: _condition(kube.get(API, "Topic", ns, "orders"), "Ready").get(
        "reason") == "PartitionDecreaseRefused" and _condition(
        kube.get(API, "Topic", ns, "orders"), "Ready"),
        timeout=DEADLINE_S, message="PartitionDecreaseRefused")
    assert condition["status"] == "False"
    assert len(_kafka_topics(real_broker)["orders"].partitions) == 3
    kube.patch(API, "Topic", ns, "orders", {"spec": {"partitions": 3}})

    # Drift: a Kafka client changes the config; the operator sets it back and says so.
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    client = confluent_admin(real_broker.bootstrap)
    resource = ConfigResource("topic", "orders", incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    client.incremental_alter_configs([resource])[resource].result(timeout=10)
    eventually(lambda: _kafka_config(real_broker, "orders")["retention.ms"] == "3600000",
               timeout=DEADLINE_S, message="config drift corrected")
    eventually(lambda: any(e.get("reason") == "DriftCorrected" for e in kube.events(ns, "orders")),
               timeout=DEADLINE_S, message="drift event")

    # Drift: the topic is deleted behind Kubernetes' back; the operator recreates it.
    client.delete_topics(["orders"])["orders"].result(timeout=10)
    eventually(lambda: "orders" in _kafka_topics(real_broker)
               and len(_kafka_topics(real_broker)["orders"].partitions) == 3, timeout=DEADLINE_S,
               message="topic recreated")

    # deletionPolicy delete: deleting the resource deletes the topic.
    kube.delete(API, "Topic", ns, "orders")
    eventually(lambda: "orders" not in _kafka_topics(real_broker), timeout=DEADLINE_S,
               message="topic deleted in Kafka")
    eventually(lambda: kube.get(API, "Topic", ns, "orders") is None, timeout=DEADLINE_S,
               message="finalizer released")


def test_retained_topic_survives_resource_deletion(kube: EmulatedCluster,
                                                   real_broker: BrokerProcess) -> None:
    ns = "t-retain"
    kube.create(_cluster(ns, "solo", {"brokers": 1},
                         {"headrace.io/operator-bootstrap-servers": real_broker.bootstrap}))
    kube.create(_topic(ns, "keep", {"clusterRef": "solo", "replicationFactor": 1,
                                    "topicName": "kept.topic", "deletionPolicy": "retain"}))
    eventually(lambda: "kept.topic" in _kafka_topics(real_broker), timeout=DEADLINE_S,
               message="topic created")
    kube.delete(API, "Topic", ns, "keep")
    eventually(lambda: kube.get(API, "Topic", ns, "keep") is None, timeout=DEADLINE_S,
               message="resource gone")
    assert "kept.topic" in _kafka_topics(real_broker)


def test_cluster_status_reads_the_brokers_and_metrics_are_served(
        kube: EmulatedCluster, real_broker: BrokerProcess) -> None:
    ns = "t-status"
    kube.create(_cluster(ns, "solo", {"brokers": 1},
                         {"headrace.io/operator-bootstrap-servers": real_broker.bootstrap}))
    status = eventually(lambda: ((kube.get(API, "Cluster", ns, "solo") or {}).get("status") or {})
                        if "controllerId" in ((kube.get(API, "Cluster", ns, "solo") or {}).get(
                            "status") or {}) else None, timeout=DEADLINE_S,
                        message="status from brokers")
    assert status["controllerId"] == 0
    assert status["offlinePartitions"] == 0
    from headrace_operator import metrics

    port = eventually(lambda: metrics.bound_port, timeout=DEADLINE_S, message="metrics port")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'headrace_operator_reconcile_total{kind="Cluster",result="success"}' in text
    assert "headrace_operator_reconcile_duration_seconds_bucket" in text
    assert "headrace_operator_reconcile_errors_total" in text



def _broker_pod(ns: str, cluster: str, ordinal: int, revision: str, ready: bool,
                name: str | None = None, base: int = 0) -> dict[str, Any]:
    """A broker Pod as the StatefulSet controller and kubelet would report it."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name or f"{cluster}-broker-{ordinal}", "namespace": ns,
                     "labels": {"app.kubernetes.io/instance": cluster,
                                "app.kubernetes.io/component": "broker",
                                "apps.kubernetes.io/pod-index": str(ordinal)},
                     "annotations": {"headrace.io/revision": revision}},
        "spec": {"containers": [{"name": "broker", "image": "x",
                                 "env": [{"name": "BROKER_ID_BASE", "value": str(base)}]}]},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def test_rolling_restart_goes_one_ready_broker_at_a_time(
        kube: EmulatedCluster, real_broker: BrokerProcess) -> None:
    """The test plays StatefulSet controller and kubelet: it recreates each deleted pod with the
    new revision, not ready at first, and marks it ready later; the operator must wait for it."""
    ns, name = "t-roll", "rolling"
    kube.create(_cluster(ns, name, {"brokers": 3, "image": "headrace:1"},
                         {"headrace.io/operator-bootstrap-servers": real_broker.bootstrap}))
    sts = eventually(lambda: kube.get("apps/v1", "StatefulSet", ns, f"{name}-broker"),
                     timeout=DEADLINE_S, message="broker StatefulSet")
    old_revision = sts["spec"]["template"]["metadata"]["annotations"]["headrace.io/revision"]
    for ordinal in range(3):
        kube.create(_broker_pod(ns, name, ordinal, old_revision, ready=True))
    kube.patch(API, "Cluster", ns, name, {"spec": {"image": "headrace:2"}})
    new_revision = eventually(
        lambda: (lambda r: r if r != old_revision else None)(
            kube.get("apps/v1", "StatefulSet", ns, f"{name}-broker")["spec"]["template"][
                "metadata"]["annotations"]["headrace.io/revision"]),
        timeout=DEADLINE_S, message="new pod template",
    )

    restarted: list[str] = []
    for step in range(3):
        gone = eventually(lambda: ({f"{name}-broker-{i}" for i in range(3)}
                                   - {p["metadata"]["name"] for p in kube.list("v1", "Pod", ns)}),
                          timeout=DEADLINE_S, message="a broker pod restarted")
        assert len(gone) == 1, gone  # one at a time
        pod = gone.pop()
        restarted.append(pod)
        ordinal = int(pod.rsplit("-", 1)[1])
        kube.create(_broker_pod(ns, name, ordinal, new_revision, ready=False))
        if step < 2:  # outdated pods remain: the operator says it waits for this one
            waiting = eventually(lambda: _condition(kube.get(API, "Cluster", ns, name),
                                                    "Progressing").get("message", "").startswith(
                f"waiting for {pod}"),  # noqa: B023
                timeout=DEADLINE_S, message=f"operator waiting for {pod}")
            assert waiting
            assert len(kube.list("v1", "Pod", ns)) == 3  # nothing else restarted meanwhile
        kube.patch("v1", "Pod", ns, pod, {"status": {"conditions": [
            {"type": "Ready", "status": "True"}]}}, subresource="status")
    # The controller (broker 0, the real broker's id) goes last.
    assert restarted == [f"{name}-broker-1", f"{name}-broker-2", f"{name}-broker-0"]
    done = eventually(lambda: _condition(kube.get(API, "Cluster", ns, name), "Progressing").get(
        "status") == "False", timeout=DEADLINE_S, message="roll finished")
    assert done
    events = {e.get("reason") for e in kube.events(ns, name)}
    assert "RollingRestart" in events


def test_zones_discovered_from_node_labels(kube: EmulatedCluster) -> None:
    ns = "t-zones"
    nodes = {"n1": "west", "n2": "east", "n3": "east"}
    for node, zone in nodes.items():
        kube.create({"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": node, "labels": {"topology.kubernetes.io/zone": zone}}})
    try:
        _check_discovered_zones(kube, ns)
    finally:  # other Clusters without zone names must not pick these zones up
        for node in nodes:
            kube.delete("v1", "Node", None, node)


def _check_discovered_zones(kube: EmulatedCluster, ns: str) -> None:
    kube.create(_cluster(ns, "auto", {"brokers": 3}))
    names = eventually(lambda: (lambda found: found if len(found) == 2 else None)(
        sorted(s["metadata"]["name"] for s in kube.list("apps/v1", "StatefulSet", ns)
               if s["metadata"]["name"] != "auto-etcd")),
        timeout=DEADLINE_S, message="two per-zone StatefulSets")
    # Zones sorted by name: east is zone 0 (2 brokers: ids 0, 1), west zone 1 (id 1000).
    assert names == ["auto-east", "auto-west"]
    east = kube.get("apps/v1", "StatefulSet", ns, "auto-east")
    assert east["spec"]["replicas"] == 2
    west = kube.get("apps/v1", "StatefulSet", ns, "auto-west")
    assert {"name": "BROKER_ID_BASE", "value": "1000"} in \
        west["spec"]["template"]["spec"]["containers"][0]["env"]
    status = eventually(lambda: (kube.get(API, "Cluster", ns, "auto").get("status") or {}).get(
        "zones"), timeout=DEADLINE_S, message="zones in status")
    assert status == ["east", "west"]

    # A zone appears whose name sorts first. It joins at the end: were the zones re-sorted,
    # east's brokers would become 1000, 1001 and west's 2000 (a new identity for every broker).
    kube.create({"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": "n4", "labels": {"topology.kubernetes.io/zone": "central"}}})
    kube.patch(API, "Cluster", ns, "auto", {"spec": {"brokers": 4}})
    central = eventually(lambda: kube.get("apps/v1", "StatefulSet", ns, "auto-central"),
                         timeout=DEADLINE_S, message="a StatefulSet for the new zone")
    assert _id_base(central) == "2000"
    assert _id_base(kube.get("apps/v1", "StatefulSet", ns, "auto-east")) == "0"
    assert _id_base(kube.get("apps/v1", "StatefulSet", ns, "auto-west")) == "1000"
    assert eventually(lambda: (lambda z: z if z and len(z) == 3 else None)(
        (kube.get(API, "Cluster", ns, "auto").get("status") or {}).get("zones")),
        timeout=DEADLINE_S, message="three zones in status") == ["east", "west", "central"]


def _id_base(statefulset: dict[str, Any]) -> str:
    env = statefulset["spec"]["template"]["spec"]["containers"][0]["env"]
    return str(next(e["value"] for e in env if e["name"] == "BROKER_ID_BASE"))


def test_named_zones_cannot_move_or_drop(kube: EmulatedCluster) -> None:
    ns = "t-zone-order"
    kube.create(_cluster(ns, "z", {"brokers": 3, "zones": {"names": ["a", "b", "c"]}}))
    eventually(lambda: (kube.get(API, "Cluster", ns, "z").get("status") or {}).get("zones"),
               timeout=DEADLINE_S, message="zones in status")
    kube.patch(API, "Cluster", ns, "z", {"spec": {"zones": {"names": ["a", "c"]}}})
    ready = eventually(lambda: (lambda c: c if c.get("reason") == "ZonesRefused" else None)(
        _condition(kube.get(API, "Cluster", ns, "z"), "Ready")),
        timeout=DEADLINE_S, message="a ZonesRefused condition")
    assert ready["status"] == "False"
    degraded = _condition(kube.get(API, "Cluster", ns, "z"), "Degraded")
    assert degraded["reason"] == "ZonesRefused"
    assert "can only be added at the end" in degraded["message"]
    status = kube.get(API, "Cluster", ns, "z")["status"]
    assert status["zones"] == ["a", "b", "c"] and status["zonesRefused"]
    # The cluster keeps running as it was: zone c's brokers keep their ids.
    assert _id_base(kube.get("apps/v1", "StatefulSet", ns, "z-b")) == "1000"
    assert _id_base(kube.get("apps/v1", "StatefulSet", ns, "z-c")) == "2000"
    eventually(lambda: any(e.get("reason") == "ZonesRefused" for e in kube.events(ns, "z")),
               timeout=DEADLINE_S, message="a ZonesRefused event")
    # Adding a zone at the end is fine.
    kube.patch(API, "Cluster", ns, "z", {"spec": {"brokers": 4,
                                                  "zones": {"names": ["a", "b", "c", "d"]}}})
    d = eventually(lambda: kube.get("apps/v1", "StatefulSet", ns, "z-d"), timeout=DEADLINE_S,
                   message="zone d's StatefulSet")
    assert _id_base(d) == "3000"
    eventually(lambda: (kube.get(API, "Cluster", ns, "z").get("status") or {}).get(
        "zonesRefused") is None and _condition(kube.get(API, "Cluster", ns, "z"), "Ready").get(
        "reason") != "ZonesRefused", timeout=DEADLINE_S, message="the refusal cleared")


class Kubelet:
    """Plays StatefulSet controller and kubelet for one Cluster with REAL replicated brokers.

    For every broker StatefulSet the operator wrote, it keeps pods ``0..replicas-1`` running as
    ``headrace broker`` processes (id = BROKER_ID_BASE + ordinal, the zone from ``--zone``, a
    shared real etcd), reports each pod Ready once the broker's ``/readyz`` answers 200, restarts
    (SIGTERM, same data dir) a broker whose pod the operator deleted, and stops brokers whose
    ordinals fall outside the StatefulSet.
    """

    def __init__(self, kube: EmulatedCluster, ns: str, cluster: str, root: Path,
                 metadata_url: str) -> None:
        self.kube, self.ns, self.cluster, self.root = kube, ns, cluster, root
        self.metadata_url = metadata_url
        self.brokers: dict[str, DevBroker] = {}
        self.restarts: list[str] = []
        #: Called with a pod's name just before its broker is stopped for a scale-down.
        self.before_removal: Callable[[str], None] = lambda pod: None

    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values() if b.kafka_port)

    def _pods(self) -> dict[str, dict[str, Any]]:
        return {p["metadata"]["name"]: p for p in self.kube.list("v1", "Pod", self.ns)}

    def step(self) -> None:
        pods = self._pods()
        wanted: set[str] = set()
        for sts in self.kube.list("apps/v1", "StatefulSet", self.ns):
            name = sts["metadata"]["name"]
            if name.endswith("-etcd") or not name.startswith(self.cluster):
                continue
            template = sts["spec"]["template"]
            container = template["spec"]["containers"][0]
            base = int(next(e["value"] for e in container["env"]
                            if e["name"] == "BROKER_ID_BASE"))
            args = container["args"]
            zone = args[args.index("--zone") + 1] if "--zone" in args else None
            for ordinal in range(int(sts["spec"]["replicas"])):
                pod = f"{name}-{ordinal}"
                wanted.add(pod)
                broker = self.brokers.get(pod)
                if pod not in pods:  # new, or deleted by the operator: (re)start it
                    if broker is not None and broker.running:
                        broker.stop()
                        self.restarts.append(pod)
                    if broker is None:
                        broker = DevBroker(base + ordinal, self.root / pod, self.metadata_url,
                                           zone=zone, extra_args=HARNESS_FLAGS)
                        self.brokers[pod] = broker
                    broker.start(wait=True)
                    self.kube.create(_broker_pod(self.ns, self.cluster, ordinal,
                                                 template["metadata"]["annotations"][
                                                     "headrace.io/revision"], ready=False,
                                                 name=pod, base=base))
                    continue
                ready = _http_ok(f"http://127.0.0.1:{broker.http_port}/readyz") \
                    if broker is not None else False
                if ready != _pod_ready(pods[pod]):
                    self.kube.patch("v1", "Pod", self.ns, pod, {"status": {"conditions": [
                        {"type": "Ready", "status": "True" if ready else "False"}]}},
                        subresource="status")
        for pod, broker in self.brokers.items():
            if pod not in wanted and broker.running:
                self.before_removal(pod)
                broker.stop()
                if pod in pods:
                    self.kube.delete("v1", "Pod", self.ns, pod)

    def stop(self) -> None:
        for broker in self.brokers.values():
            broker.kill()


HARNESS_FLAGS = ("--session-ttl", "3", "--replica-lag-time-max-ms", "2500",
                 "--offsets-topic-partitions", "1", "--controlled-shutdown-timeout", "10",
                 "--default-replication-factor", "3")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _pod_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


@pytest.mark.timeout(300)  # real brokers restart five times; generous on a loaded machine
def test_roll_scale_up_and_drain_of_real_replicated_brokers_under_traffic(
        kube: EmulatedCluster, tmp_path: Path) -> None:
    """Three real brokers in three zones, a topic with RF 3 and min ISR 2, a producer with
    acks=all running throughout: a config change rolls one broker at a time; scaling to four
    moves replicas onto the new broker; scaling back drains it before its pod goes; scaling
    below the replication factor is refused; and every acknowledged record is still there."""
    from headrace.cluster.etcd_launcher import EtcdProcess

    ns, name = "t-harness", "real"
    etcd = EtcdProcess(tmp_path / "etcd")
    etcd.start()
    kubelet = Kubelet(kube, ns, name, tmp_path, etcd.metadata_url)
    try:
        kube.create(_cluster(ns, name, {"brokers": 3, "zones": {"names": ["a", "b", "c"]},
                                        "config": {"min.insync.replicas": "2"}}))
        eventually(lambda: len([s for s in kube.list("apps/v1", "StatefulSet", ns)
                                if not s["metadata"]["name"].endswith("etcd")]) == 3,
                   timeout=DEADLINE_S, message="three zone StatefulSets")
        kubelet.step()
        kube.patch(API, "Cluster", ns, name, {"metadata": {"annotations": {
            "headrace.io/operator-bootstrap-servers": kubelet.bootstrap()}}})
        eventually(lambda: (kubelet.step(), _condition(kube.get(API, "Cluster", ns, name),
                                                       "Ready").get("status") == "True")[1],
                   timeout=60, message=lambda: "cluster ready: "
                   f"{kube.get(API, 'Cluster', ns, name).get('status')}")
        kube.create(_topic(ns, "events", {"clusterRef": name, "partitions": 3,
                                          "replicationFactor": 3,
                                          "config": {"min.insync.replicas": "2"}}))
        eventually(lambda: _condition(kube.get(API, "Topic", ns, "events"), "Ready").get(
            "status") == "True", timeout=40, message="topic ready")
        status = kube.get(API, "Topic", ns, "events")["status"]
        for partition in status["partitions"]:  # one replica per zone
            assert sorted(b // 1000 for b in partition["replicas"]) == [0, 1, 2]

        producer = confluent_producer(kubelet.bootstrap(), {"acks": "all", "linger.ms": 5,
                                                            "message.timeout.ms": 60000})
        acked: set[bytes] = set()

        def delivered(error: Any, message: Any) -> None:
            if error is None:
                acked.add(message.value())

        sent = 0

        def produce(count: int) -> None:
            nonlocal sent
            for _ in range(count):
                producer.produce("events", b"%08d" % sent, on_delivery=delivered)
                sent += 1
            producer.poll(0)

        produce(200)
        kube.patch(API, "Cluster", ns, name, {"spec": {"config": {
            "min.insync.replicas": "2", "replica.lag.time.max.ms": "3000"}}})

        def rolled() -> bool:
            produce(20)
            kubelet.step()
            return len(kubelet.restarts) >= 3 and _condition(
                kube.get(API, "Cluster", ns, name), "Progressing").get("status") == "False"

        eventually(rolled, timeout=120,
                   message=lambda: f"roll finished; restarted {kubelet.restarts}")
        assert sorted(kubelet.restarts) == sorted(f"{name}-{z}-0" for z in "abc")
        assert len(set(kubelet.restarts)) == 3  # each broker restarted exactly once

        # Scale up 3 -> 4: zone a gets broker 1, and replicas move onto it (zones stay apart).
        kube.patch(API, "Cluster", ns, name, {"spec": {"brokers": 4}})

        def assignment() -> dict[int, list[int]]:
            topics = confluent_admin(kubelet.bootstrap()).list_topics("events", timeout=10).topics
            return {p.id: list(p.replicas) for p in topics["events"].partitions.values()}

        def rebalanced() -> bool:
            produce(10)
            kubelet.step()
            replicas = assignment()
            return any(1 in r for r in replicas.values()) and _condition(
                kube.get(API, "Cluster", ns, name), "Progressing").get("status") == "False"

        eventually(rebalanced, timeout=90,
                   message=lambda: f"rebalanced onto broker 1: {assignment()} "
                   f"{kube.get(API, 'Cluster', ns, name).get('status')}")
        for replicas in assignment().values():
            assert sorted({b // 1000 for b in replicas}) == [0, 1, 2]

        # Scale down 4 -> 3: broker 1 is drained before its StatefulSet shrinks.
        kube.patch(API, "Cluster", ns, name, {"spec": {"brokers": 3}})
        checked: list[dict[int, list[int]]] = []
        # When the shrunk StatefulSet removes broker 1's pod, broker 1 must hold nothing.
        kubelet.before_removal = lambda pod: checked.append(assignment())

        def drained_then_removed() -> bool:
            produce(10)
            kubelet.step()
            return not kubelet.brokers[f"{name}-a-1"].running
        eventually(drained_then_removed, timeout=90,
                   message=lambda: f"drain and shrink: {assignment()}")
        assert len(checked) == 1
        assert all(1 not in replicas for replicas in checked[0].values()), checked

        # Scale down 3 -> 2 cannot hold replication factor 3: refused, nothing changes.
        kube.patch(API, "Cluster", ns, name, {"spec": {"brokers": 2}})
        degraded = eventually(lambda: (lambda c: c if c.get("reason") == "ScaleRefused" else None)(
            _condition(kube.get(API, "Cluster", ns, name), "Degraded")),
            timeout=DEADLINE_S, message="ScaleRefused")
        assert "replication factor 3" in degraded["message"]
        assert [kube.get("apps/v1", "StatefulSet", ns, f"{name}-{z}")["spec"]["replicas"]
                for z in "abc"] == [1, 1, 1]
        eventually(lambda: any(e.get("reason") == "ScaleRefused" for e in kube.events(ns, name)),
                   timeout=DEADLINE_S, message="ScaleRefused event")
        kubelet.step()
        assert all(kubelet.brokers[f"{name}-{z}-0"].running for z in "abc")
        produce(100)
        assert producer.flush(60) == 0
        assert len(acked) == sent  # acks=all, min ISR 2: nothing refused during the roll

        consumer = confluent_consumer(kubelet.bootstrap(), {
            "group.id": "check", "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe(["events"])
        seen: set[bytes] = set()

        def all_seen() -> bool:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                seen.add(message.value())
            return acked <= seen

        try:
            if not acked <= seen:
                eventually(all_seen, timeout=60, interval=0,
                           message=lambda: f"{len(acked - seen)} acknowledged records")
        finally:
            consumer.close()
    finally:
        kubelet.stop()
        etcd.kill()
