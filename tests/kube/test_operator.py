"""The operator against a real control plane, with its pods run by tests/peers/node_agent.py:
the manifests and the chart install it as documented, it runs under the chart's ServiceAccount
(a missing RBAC rule fails these tests), and it drives a three-zone cluster of real brokers
through topic changes, scaling, a rolling restart and a node drain while a producer with
``acks=all`` runs, and nothing acknowledged is lost.

One control plane, one node agent (three zones, two nodes each) and one operator serve the
module; the tests run in file order and later ones build on the cluster the earlier ones made.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.peers.kube import ControlPlane, free_loopback_port
from tests.peers.node_agent import NodeAgent, wait_for
from tests.support.clusters import (
    ProducerLoad,
    check_no_loss_no_duplicates,
    consume_partitions,
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

pytestmark = [pytest.mark.timeout(600)]


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
