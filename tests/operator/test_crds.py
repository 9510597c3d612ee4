"""The CRDs are valid Kubernetes objects and their schemas accept good and reject bad resources."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from headrace_operator.crds import build_crds, openapi_schema
from headrace_operator.rbac import required_rules


def _validator(kind: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(openapi_schema(kind))


def _cluster(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "headrace.io/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "c"}, "spec": {"brokers": 3, **spec}}


def _topic(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "headrace.io/v1alpha1", "kind": "Topic",
            "metadata": {"name": "t"}, "spec": {"clusterRef": "c", **spec}}


def test_crds_are_valid_kubernetes_objects() -> None:
    crds = build_crds()
    assert {c["spec"]["names"]["kind"] for c in crds} == {"Cluster", "Topic"}
    for crd in crds:
        kubernetes_validate.validate(crd, "1.30", strict=True)
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert crd["spec"]["names"]["shortNames"]
        assert any(c["name"] == "Ready" for c in version["additionalPrinterColumns"])


def test_build_crds_returns_independent_copies() -> None:
    first = build_crds()
    first[0]["spec"]["group"] = "mutated"
    assert build_crds()[0]["spec"]["group"] == "headrace.io"


def test_good_resources_pass_the_schema() -> None:
    _validator("Cluster").validate(_cluster(
        zones={"names": ["a", "b", "c"]}, storage={"size": "20Gi"},
        resources={"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 2}},
        config={"min.insync.replicas": "2"},
        metadataStore={"mode": "external", "endpoints": ["etcd:2379"]},
        podTemplate={"labels": {"x": "y"}, "tolerations": [{"key": "k", "operator": "Exists"}]},
    ))
    _validator("Topic").validate(_topic(partitions=6, replicationFactor=3,
                                        config={"retention.ms": "1000"}, deletionPolicy="retain"))


@pytest.mark.parametrize(("kind", "bad"), [
    ("Cluster", {"brokers": 0}),
    ("Cluster", {"brokers": "three"}),
    ("Cluster", {"pullPolicy": "Sometimes"}),
    ("Cluster", {"storage": {"size": "lots"}}),
    ("Cluster", {"metadataStore": {"mode": "internal"}}),
    ("Cluster", {"config": {"min.insync.replicas": 2}}),
    ("Topic", {"partitions": 0}),
    ("Topic", {"replicationFactor": -1}),
    ("Topic", {"deletionPolicy": "forget"}),
    ("Topic", {"clusterRef": "Not_A_Name"}),
    ("Topic", {"topicName": "has space"}),
])
def test_bad_resources_fail_the_schema(kind: str, bad: dict[str, Any]) -> None:
    resource = _cluster(**bad) if kind == "Cluster" else _topic(**bad)
    with pytest.raises(jsonschema.ValidationError):
        _validator(kind).validate(resource)


def test_topic_without_cluster_ref_fails() -> None:
    resource = copy.deepcopy(_topic())
    del resource["spec"]["clusterRef"]
    with pytest.raises(jsonschema.ValidationError):
        _validator("Topic").validate(resource)


def test_rbac_covers_every_kind_the_operator_writes() -> None:
    granted = {(g, r, v) for rule in required_rules() for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}
    for group, resource in [("apps", "statefulsets"), ("", "services"), ("", "configmaps"),
                            ("policy", "poddisruptionbudgets")]:
        assert (group, resource, "create") in granted
        assert (group, resource, "patch") in granted
    assert ("headrace.io", "topics/status", "patch") in granted
    assert ("", "pods", "delete") in granted
    assert not any("*" in rule["verbs"] or "*" in rule["resources"] for rule in required_rules())
