"""Desired Kubernetes objects for a Cluster: zones, broker ids, owner references, validity."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from headrace_operator.model import ClusterSpec, SpecError, TopicSpec, zone_groups
from headrace_operator.resources import (
    REVISION_ANNOTATION,
    ClusterRef,
    broker_revision,
    desired_objects,
    metadata_endpoint,
)

REF = ClusterRef("demo", "streams", "0b5c7c5e-1111-2222-3333-444455556666")


def _by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_brokers_spread_over_zones_with_stable_ids() -> None:
    groups = zone_groups(7, ["a", "b", "c"])
    assert [g.replicas for g in groups] == [3, 2, 2]
    assert [g.broker_ids for g in groups] == [[0, 1, 2], [1000, 1001], [2000, 2001]]
    assert zone_groups(2, []) == zone_groups(2, ())
    assert zone_groups(2, [])[0].zone is None


def test_one_statefulset_per_zone_pinned_by_node_affinity() -> None:
    spec = ClusterSpec.parse({"brokers": 4, "zones": {"names": ["eu-1a", "eu-1b"]},
                              "podTemplate": {"tolerations": [{"key": "k", "operator": "Exists"}]}})
    objects = desired_objects(REF, spec, list(spec.zone_names))
    statefulsets = _by_kind(objects, "StatefulSet")
    brokers = [s for s in statefulsets if s["metadata"]["name"] != "demo-etcd"]
    assert [s["metadata"]["name"] for s in brokers] == ["demo-eu-1a", "demo-eu-1b"]
    for index, sts in enumerate(brokers):
        assert sts["spec"]["replicas"] == 2
        assert sts["spec"]["updateStrategy"] == {"type": "OnDelete"}
        assert sts["spec"]["serviceName"] == "demo-brokers"
        pod = sts["spec"]["template"]["spec"]
        terms = pod["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [{"matchExpressions": [{"key": "topology.kubernetes.io/zone",
                                                "operator": "In",
                                                "values": [spec.zone_names[index]]}]}]
        container = pod["containers"][0]
        args = container["args"]
        assert args[args.index("--zone") + 1] == spec.zone_names[index]
        assert args[args.index("--metadata") + 1] == "etcd://demo-etcd-client.streams.svc:2379"
        assert args[args.index("--advertised-listener") + 1] == \
            "$(POD_NAME).demo-brokers.streams.svc:9092"
        assert {"name": "BROKER_ID_BASE", "value": str(index * 1000)} in container["env"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert pod["tolerations"] == [{"key": "k", "operator": "Exists"}]


def test_every_object_is_owned_and_valid_kubernetes() -> None:
    spec = ClusterSpec.parse({"brokers": 3, "zones": {"names": ["a", "b", "c"]},
                              "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                              "storage": {"size": "5Gi", "storageClassName": "fast"}})
    objects = desired_objects(REF, spec, ["a", "b", "c"])
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == ["ConfigMap", "PodDisruptionBudget", "Service", "Service", "Service",
                     "Service", "StatefulSet", "StatefulSet", "StatefulSet", "StatefulSet"]
    for obj in objects:
        assert obj["metadata"]["ownerReferences"] == [REF.owner_reference()]
        assert obj["metadata"]["namespace"] == "streams"
        kubernetes_validate.validate(obj, "1.30", strict=True)
    headless = next(o for o in objects if o["metadata"]["name"] == "demo-brokers"
                    and o["kind"] == "Service")
    assert headless["spec"]["clusterIP"] == "None"
    pdb = _by_kind(objects, "PodDisruptionBudget")[0]
    assert pdb["spec"]["maxUnavailable"] == 1


def test_external_metadata_store_deploys_no_etcd() -> None:
    spec = ClusterSpec.parse({"brokers": 1, "metadataStore": {
        "mode": "external", "endpoints": ["etcd-0:2379", "etcd-1:2379"]}})
    objects = desired_objects(REF, spec, [])
    assert all("etcd" not in o["metadata"]["name"] for o in objects)
    assert metadata_endpoint(REF, spec) == "etcd://etcd-0:2379,etcd-1:2379"
    with pytest.raises(SpecError, match="endpoints"):
        ClusterSpec.parse({"brokers": 1, "metadataStore": {"mode": "external"}})


def test_revision_changes_with_image_config_and_resources_only() -> None:
    base = ClusterSpec.parse({"brokers": 3})
    endpoint = metadata_endpoint(REF, base)
    revision = broker_revision(base, endpoint)
    assert broker_revision(ClusterSpec.parse({"brokers": 5}), endpoint) == revision
    for change in ({"image": "other:1"}, {"config": {"min.insync.replicas": "2"}},
                   {"resources": {"limits": {"cpu": "1"}}}):
        assert broker_revision(ClusterSpec.parse({"brokers": 3, **change}), endpoint) != revision
    sts = _by_kind(desired_objects(REF, base, []), "StatefulSet")[-1]
    assert sts["spec"]["template"]["metadata"]["annotations"][REVISION_ANNOTATION] == revision


def test_scale_down_keeps_statefulset_sizes_until_drained() -> None:
    spec = ClusterSpec.parse({"brokers": 2})
    objects = desired_objects(REF, spec, [], {"demo-broker": 3})
    assert _by_kind(objects, "StatefulSet")[-1]["spec"]["replicas"] == 3


def test_broker_config_becomes_flags() -> None:
    spec = ClusterSpec.parse({"brokers": 3, "config": {
        "default.replication.factor": "3", "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0", "producer.id.expiration.ms": "3600000"}})
    args = _by_kind(desired_objects(REF, spec, []), "StatefulSet")[-1][
        "spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--default-replication-factor") + 1] == "3"
    assert "--no-auto-create-topics" in args
    assert args[args.index("--group-initial-rebalance-delay-ms") + 1] == "0"
    assert args[args.index("--producer-id-expiration-ms") + 1] == "3600000"


def test_topic_spec_defaults_and_errors() -> None:
    topic = TopicSpec.parse("orders", {"clusterRef": "demo"})
    assert (topic.topic_name, topic.partitions, topic.replication_factor,
            topic.deletion_policy) == ("orders", 1, 3, "delete")
    assert TopicSpec.parse("x", {"clusterRef": "c", "topicName": "Orders_v2"}).topic_name == \
        "Orders_v2"
    with pytest.raises(SpecError):
        TopicSpec.parse("x", {})
    with pytest.raises(SpecError):
        TopicSpec.parse("x", {"clusterRef": "c", "deletionPolicy": "orphan"})


def test_broker_pods_run_unprivileged_and_can_write_their_volume() -> None:
    def broker_pod(spec: ClusterSpec) -> dict[str, Any]:
        objects = desired_objects(REF, spec, [])
        sts = next(s for s in _by_kind(objects, "StatefulSet")
                   if s["metadata"]["name"] != "demo-etcd")
        pod: dict[str, Any] = sts["spec"]["template"]["spec"]
        return pod

    pod = broker_pod(ClusterSpec.parse({"brokers": 1}))
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False

    overridden = broker_pod(ClusterSpec.parse({
        "brokers": 1,
        "podTemplate": {"securityContext": {"fsGroup": 2000},
                        "containerSecurityContext": {"readOnlyRootFilesystem": False}},
    }))
    assert overridden["securityContext"]["fsGroup"] == 2000
    assert overridden["securityContext"]["runAsUser"] == 10001
    assert overridden["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False
