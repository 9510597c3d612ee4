"""The control plane of tests/peers/kube.py is a real one: CRDs register and their schemas are
enforced, RBAC refuses, the controller-manager's controllers and garbage collector act and the
scheduler binds, and the built Helm renders and installs the chart against it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.peers.kube import ControlPlane

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "manifests" / "crds.yaml"
CHART = ROOT / "charts" / "headrace"
# Never pulled: no kubelet runs here.
IMAGE = "registry.invalid/headrace-test:0"

# Starting the control plane (the first test's setup) takes about ten seconds, more on busy cores.
pytestmark = pytest.mark.timeout(300)

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.2)


def apply(plane: ControlPlane, namespace: str, *docs: dict[str, Any]) -> None:
    plane.kubectl("apply", "-n", namespace, "-f", "-",
                  stdin="\n---\n".join(json.dumps(doc) for doc in docs))


def items(plane: ControlPlane, kind: str, namespace: str, *selector: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = plane.kubectl_json("get", kind, "-n", namespace,
                                                      *selector)["items"]
    return listed


@dataclass(frozen=True)
class AppliedCrds:
    """manifests/crds.yaml applied one CRD at a time: the established ones, and the apiserver's
    refusal of each other."""

    established: list[str]
    refused: dict[str, str]


@pytest.fixture(scope="module")
def crds(control_plane: ControlPlane) -> AppliedCrds:
    established, refused = [], {}
    for doc in yaml.safe_load_all(CRDS.read_text()):
        if not doc:
            continue
        name = doc["metadata"]["name"]
        done = control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(doc), check=False)
        if done.returncode != 0:
            refused[name] = done.stderr.strip()
            continue
        control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                              f"crd/{name}")
        established.append(name)
    return AppliedCrds(established, refused)


def topic(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "headrace.io/v1alpha1", "kind": "Topic", "metadata": {"name": name},
            "spec": {"clusterRef": "events", **spec}}


def test_the_control_plane_serves_the_pinned_release(control_plane: ControlPlane) -> None:
    status, version = control_plane.request("/version")
    assert status == 200
    assert version["gitVersion"] == control_plane.binaries.version
    status, body = control_plane.request("/readyz?verbose")
    assert status == 200 and "[+]etcd ok" in body
    assert control_plane.ready_seconds > 0
    # Authentication is real: a token no key signed is refused.
    status, body = control_plane.request("/api/v1/namespaces", token="not-a-token")
    assert status == 401, body


def test_the_topic_crd_registers_and_serves_its_resource(
    control_plane: ControlPlane, crds: AppliedCrds, namespace: str
) -> None:
    assert "topics.headrace.io" in crds.established, crds.refused
    listed = control_plane.kubectl("get", "crd", "-o", "name").stdout.split()
    assert "customresourcedefinition.apiextensions.k8s.io/topics.headrace.io" in listed
    resources = control_plane.kubectl("api-resources", "--api-group=headrace.io",
                                      "-o", "name").stdout.split()
    assert "topics.headrace.io" in resources
    apply(control_plane, namespace, topic("orders", partitions=6))
    stored = control_plane.kubectl_json("get", "topic", "orders", "-n", namespace)
    assert stored["spec"]["partitions"] == 6
    # Structural-schema defaulting happened in the apiserver.
    assert stored["spec"]["replicationFactor"] == 3
    assert stored["spec"]["deletionPolicy"] == "delete"
    printed = control_plane.kubectl("get", "topics", "-n", namespace).stdout
    assert printed.split("\n")[0].split()[:4] == ["NAME", "CLUSTER", "PARTITIONS", "RF"]


def test_the_cluster_crd_registers_and_its_cel_rule_refuses(
    control_plane: ControlPlane, crds: AppliedCrds, namespace: str
) -> None:
    # The apiserver checks metadataStore's {} default against the CEL rule too (it once
    # refused the CRD: "no such key: mode").
    assert "clusters.headrace.io" in crds.established, crds.refused
    cluster = {"apiVersion": "headrace.io/v1alpha1", "kind": "Cluster",
               "metadata": {"name": "ext", "namespace": namespace},
               "spec": {"metadataStore": {"mode": "external"}}}
    status, body = control_plane.request(
        f"/apis/headrace.io/v1alpha1/namespaces/{namespace}/clusters", method="POST",
        body=cluster)
    assert status == 422, body
    assert "external metadata store needs endpoints" in body["message"]


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ({"partitions": "six"}, 'spec.partitions: Invalid value: "string"'),
        ({"partitions": 0}, "spec.partitions: Invalid value: 0"),
        ({"deletionPolicy": "shred"}, 'spec.deletionPolicy: Unsupported value: "shred"'),
        ({"clusterRef": "Not_A_Name"}, "spec.clusterRef: Invalid value"),
    ],
)
def test_the_apiserver_refuses_a_topic_its_schema_forbids(
    control_plane: ControlPlane, crds: AppliedCrds, namespace: str, spec: dict[str, Any],
    complaint: str,
) -> None:
    status, body = control_plane.request(
        f"/apis/headrace.io/v1alpha1/namespaces/{namespace}/topics",
        method="POST", body=topic("bad", **spec),
    )
    assert status == 422, body
    assert body["reason"] == "Invalid"
    assert complaint in body["message"]
    refused = control_plane.kubectl("apply", "-n", namespace, "-f", "-", check=False,
                                    stdin=json.dumps(topic("bad", **spec)))
    assert refused.returncode != 0 and complaint in refused.stderr
    absent = control_plane.kubectl("get", "topic", "bad", "-n", namespace, check=False)
    assert absent.returncode != 0 and "NotFound" in absent.stderr


def test_rbac_refuses_a_service_account_until_a_role_is_bound(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    token = control_plane.service_account_token(namespace, "reader")
    pods = f"/api/v1/namespaces/{namespace}/pods"
    status, body = control_plane.request(pods, token=token)
    assert status == 403, body
    assert body["reason"] == "Forbidden"
    assert f'"system:serviceaccount:{namespace}:reader" cannot list resource "pods"' in (
        body["message"]
    )
    control_plane.kubectl("create", "role", "pod-reader", "-n", namespace,
                          "--verb=get,list", "--resource=pods")
    control_plane.kubectl("create", "rolebinding", "reader-reads", "-n", namespace,
                          "--role=pod-reader", f"--serviceaccount={namespace}:reader")
    wait_for("the RoleBinding takes effect",
             lambda: control_plane.request(pods, token=token)[0] == 200)
    # Only pods, only in this namespace.
    assert control_plane.request(f"/api/v1/namespaces/{namespace}/secrets", token=token)[0] == 403
    assert control_plane.request("/api/v1/namespaces/default/pods", token=token)[0] == 403


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "main", "image": IMAGE}]}},
        },
    }


def owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    return any(ref["uid"] == owner["metadata"]["uid"]
               for ref in obj["metadata"].get("ownerReferences", []))


def test_controllers_create_replicas_and_the_garbage_collector_removes_them(
    control_plane: ControlPlane, namespace: str
) -> None:
    apply(control_plane, namespace, deployment("web", 3))
    owner = control_plane.kubectl_json("get", "deployment", "web", "-n", namespace)
    replica_set = wait_for(
        "the deployment controller's ReplicaSet",
        lambda: next((rs for rs in items(control_plane, "replicasets", namespace, "-l", "app=web")
                      if owned_by(rs, owner)), None),
    )
    pods = wait_for(
        "the replicaset controller's three pods",
        lambda: (found if len(found := items(control_plane, "pods", namespace, "-l", "app=web"))
                 == 3 else None),
    )
    assert all(owned_by(pod, replica_set) for pod in pods)
    # No nodes: the scheduler finds none and says so; the pods stay Pending.
    assert all(pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
               for pod in pods)
    unschedulable = wait_for(
        "the scheduler's verdict",
        lambda: [c for pod in items(control_plane, "pods", namespace, "-l", "app=web")
                 for c in pod["status"].get("conditions", [])
                 if c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable"],
    )
    assert "no nodes available" in unschedulable[0]["message"]
    # The ServiceAccount admission plugin mounted the namespace's default account's token.
    assert pods[0]["spec"]["serviceAccountName"] == "default"

    control_plane.kubectl("delete", "deployment", "web", "-n", namespace, "--wait=false")
    wait_for("the garbage collector removes the ReplicaSet and its pods",
             lambda: not items(control_plane, "replicasets", namespace)
             and not items(control_plane, "pods", namespace))


def test_garbage_collection_follows_owner_references(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("create", "configmap", "owner", "-n", namespace)
    owner = control_plane.kubectl_json("get", "configmap", "owner", "-n", namespace)
    dependent = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "dependent", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": owner["metadata"]["uid"],
        }]},
    }
    bystander = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bystander"}}
    apply(control_plane, namespace, dependent, bystander)
    control_plane.kubectl("delete", "configmap", "owner", "-n", namespace)
    wait_for("the dependent is collected",
             lambda: "dependent" not in {cm["metadata"]["name"]
                                         for cm in items(control_plane, "configmaps", namespace)})
    control_plane.kubectl("get", "configmap", "bystander", "-n", namespace)


FAKE_TAINT = {"key": "headrace.io/fake-node", "value": "true", "effect": "NoSchedule"}


@pytest.fixture
def fake_node(control_plane: ControlPlane) -> Iterator[str]:
    """A registered Node no kubelet runs (Ready at registration, tainted so that only pods
    tolerating the taint go there)."""
    name = f"fake-{time.monotonic_ns() % 10**9}"
    resources = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    node = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"taints": [FAKE_TAINT]},
        "status": {
            "capacity": resources, "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "fake"}],
        },
    }
    status, body = control_plane.request("/api/v1/nodes", method="POST", body=node)
    assert status == 201, body
    yield name
    control_plane.kubectl("delete", "node", name, "--wait=false", check=False)


def test_a_statefulset_gets_its_first_pod_bound_to_a_registered_node(
    control_plane: ControlPlane, namespace: str, fake_node: str
) -> None:
    labels = {"app": "db"}
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {
            "replicas": 2, "serviceName": "db",
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {
                "nodeSelector": {"kubernetes.io/hostname": fake_node},
                "tolerations": [{**FAKE_TAINT, "operator": "Equal"}],
                "containers": [{"name": "main", "image": IMAGE}],
            }},
        },
    }
    apply(control_plane, namespace, statefulset)
    pod = wait_for(
        "the scheduler binds db-0 to the node",
        lambda: next((p for p in items(control_plane, "pods", namespace)
                      if p["spec"].get("nodeName") == fake_node), None),
    )
    assert pod["metadata"]["name"] == "db-0"
    # Bound, but no kubelet starts it: OrderedReady creates db-1 only once db-0 is Ready.
    assert pod["status"]["phase"] == "Pending"
    observed = wait_for(
        "the statefulset controller's status",
        lambda: (s if (s := control_plane.kubectl_json("get", "statefulset", "db", "-n",
                                                       namespace))["status"].get("replicas")
                 else None),
    )
    assert observed["status"]["replicas"] == 1
    assert [p["metadata"]["name"] for p in items(control_plane, "pods", namespace)] == ["db-0"]
    # A pod bound to a node waits for its kubelet to confirm a graceful deletion: force it.
    control_plane.kubectl("delete", "statefulset", "db", "-n", namespace, "--wait=false")
    control_plane.kubectl("delete", "pod", "db-0", "-n", namespace, "--force",
                          "--grace-period=0", check=False)


def rendered_kinds(manifest: str) -> set[str]:
    return {doc["kind"] for doc in yaml.safe_load_all(manifest) if doc}


def test_helm_renders_the_chart(control_plane: ControlPlane, helm: Path) -> None:
    version = control_plane.helm(helm, "version", "--short").stdout
    assert version.startswith("v4.")
    control_plane.helm(helm, "lint", str(CHART))
    rendered = control_plane.helm(helm, "template", "hr", str(CHART), "--namespace", "x").stdout
    assert {"Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= rendered_kinds(
        rendered
    )


def test_helm_installs_the_chart_into_the_control_plane(
    control_plane: ControlPlane, helm: Path, crds: AppliedCrds, namespace: str
) -> None:
    # The chart's crds/ hold the CRDs of manifests/crds.yaml, which the crds fixture applied
    # already, so helm leaves crds/ alone (--skip-crds); the templates create no Cluster by
    # default.
    # --dry-run=server: the apiserver validates every object (schemas, admission), stores none.
    dry = control_plane.helm(helm, "install", "hr", str(CHART), "-n", namespace,
                             "--skip-crds", "--dry-run=server").stdout
    assert "kind: Deployment" in dry
    assert not items(control_plane, "deployments", namespace)
    control_plane.helm(helm, "install", "hr", str(CHART), "-n", namespace, "--skip-crds")
    deployments = items(control_plane, "deployments", namespace,
                        "-l", "app.kubernetes.io/instance=hr")
    assert len(deployments) == 1
    status = json.loads(control_plane.helm(helm, "status", "hr", "-n", namespace,
                                           "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    control_plane.helm(helm, "uninstall", "hr", "-n", namespace)
    wait_for("helm uninstall removes the Deployment",
             lambda: not items(control_plane, "deployments", namespace))
