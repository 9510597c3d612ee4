"""The real operator (kopf, in its own thread) against the Kubernetes emulator and a real broker.

One emulator, one operator and one real single-node ``headrace broker`` serve the whole module;
every test works in its own namespace. Brokers inside "pods" do not exist here (the emulator has
no kubelet), so Clusters that need broker answers point the operator at the real broker with the
``headrace.io/operator-bootstrap-servers`` annotation.

What a real control plane shows better lives in tests/kube/test_operator.py (the operator run
by a node agent against kube-apiserver, real replicated brokers in pods): a Topic's create, alter,
refused decrease, drift correction and delete; scale up with rebalance, drain before scale-down,
the refusal below the replication factor, the rolling restart under load. The cases here are the
fast ones the emulator still answers in a second or two: owned objects with unreachable brokers,
invalid specs, refusals and their events, retained topics, metrics, zone discovery and order,
and the roll's order (the controller last), which the test paces pod by pod.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from kopf.testing import KopfRunner

from headrace_operator.crds import openapi_schema
from tests.operator.kube_emulator import EmulatedCluster
from tests.support.brokers import BrokerProcess
from tests.support.clients import confluent_admin
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
