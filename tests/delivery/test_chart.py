"""The Helm chart lints, renders and produces valid, least-privilege, locked-down objects."""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python
import pytest
import yaml

from headrace_operator import __main__ as operator_main
from headrace_operator.crds import DEFAULT_IMAGE, build_crds
from headrace_operator.rbac import required_rules
from tests.delivery.support import CHART_DIR, render, validate_object

ALL_FEATURES: dict[str, Any] = {
    "cluster": {"enabled": True, "name": "events"},
    "topics": [
        {"name": "orders", "spec": {"partitions": 6, "replicationFactor": 3}},
        {"name": "audit-log", "spec": {"clusterRef": "other", "topicName": "audit.log",
                                       "config": {"cleanup.policy": "compact"}}},
    ],
    "monitoring": {
        "podMonitor": {"enabled": True, "labels": {"release": "kube-prometheus"}},
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboards": {"enabled": True, "namespace": "grafana"},
    },
    "operator": {"watchNamespaces": ["streaming", "team-a"], "replicas": 1,
                 "nodeSelector": {"kubernetes.io/os": "linux"}},
}


def _by_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in documents if doc["kind"] == kind]


def test_chart_lints_clean_in_strict_mode() -> None:
    for values in ({}, ALL_FEATURES):
        report = helm_python.lint(str(CHART_DIR), values, strict=True, kube_version="v1.30.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("values", [{}, ALL_FEATURES], ids=["defaults", "all-features"])
def test_every_rendered_object_is_schema_valid(chart: helm_python.Chart,
                                               values: dict[str, Any]) -> None:
    documents = render(chart, values)
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service"} <= {
        doc["kind"] for doc in documents}
    for document in documents:
        validate_object(document)


def test_defaults_create_no_cluster_topics_or_monitoring(chart: helm_python.Chart) -> None:
    kinds = {doc["kind"] for doc in render(chart, {})}
    assert kinds.isdisjoint({"Cluster", "Topic", "PodMonitor", "ServiceMonitor",
                             "PrometheusRule", "ConfigMap"})


def test_crds_in_chart_are_the_operators(chart: helm_python.Chart) -> None:
    shipped = sorted((yaml.safe_load(entry["data"]) for entry in chart.crds),
                     key=lambda crd: crd["metadata"]["name"])
    expected = sorted(build_crds(), key=lambda crd: crd["metadata"]["name"])
    assert shipped == expected
    for crd in shipped:
        validate_object(crd)


def test_cluster_role_grants_exactly_the_operators_rules(chart: helm_python.Chart) -> None:
    [role] = _by_kind(render(chart, {}), "ClusterRole")
    assert role["rules"] == required_rules()
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        assert "*" not in rule["apiGroups"]
    [binding] = _by_kind(render(chart, {}), "ClusterRoleBinding")
    [account] = _by_kind(render(chart, {}), "ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount",
                                    "name": account["metadata"]["name"],
                                    "namespace": "streaming"}]


def test_operator_pod_is_locked_down(chart: helm_python.Chart) -> None:
    [deployment] = _by_kind(render(chart, {}), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    [container] = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # A read-only root still needs a writable /tmp.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["image"] == "ghcr.io/headrace/headrace-operator:0.1.0"
    assert container["livenessProbe"]["httpGet"]["port"] == "health"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert container["args"][0] == f"--liveness=http://0.0.0.0:{ports['health']}/healthz"
    env = {entry["name"]: entry.get("value") for entry in container["env"]}
    assert env["HEADRACE_OPERATOR_METRICS_PORT"] == str(ports["metrics"])
    assert container["resources"]["limits"]["memory"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_operator_watch_scope_follows_values(chart: helm_python.Chart) -> None:
    [everywhere] = _by_kind(render(chart, {}), "Deployment")
    assert "--all-namespaces" in everywhere["spec"]["template"]["spec"]["containers"][0]["args"]
    [scoped] = _by_kind(render(chart, {**ALL_FEATURES, "operator": {
        **ALL_FEATURES["operator"], "logLevel": "debug"}}), "Deployment")
    args = scoped["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" not in args
    assert {"--namespace=streaming", "--namespace=team-a"} <= set(args)
    # The operator's own command line accepts what the chart passes.
    parser = operator_main.build_parser()
    parsed = parser.parse_args(args)
    assert parsed.namespace == ["streaming", "team-a"] and parsed.verbose
    assert parser.parse_args(everywhere["spec"]["template"]["spec"]["containers"][0]["args"]
                             ).all_namespaces


def test_cluster_and_topics_from_values(chart: helm_python.Chart) -> None:
    documents = render(chart, ALL_FEATURES)
    [cluster] = _by_kind(documents, "Cluster")
    assert cluster["metadata"] == {**cluster["metadata"], "name": "events",
                                   "namespace": "streaming"}
    assert cluster["spec"]["zones"]["names"] == ["a", "b", "c"]
    # Without an image in the spec, the chart's broker image is used: the operator's default.
    assert cluster["spec"]["image"] == DEFAULT_IMAGE
    # Brokers run locked down, with a writable data volume (fsGroup).
    pod = cluster["spec"]["podTemplate"]
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"] == 10001
    assert pod["containerSecurityContext"]["readOnlyRootFilesystem"] is True
    topics = {topic["metadata"]["name"]: topic["spec"] for topic in _by_kind(documents, "Topic")}
    assert topics["orders"]["clusterRef"] == "events"
    assert topics["audit-log"] == {"clusterRef": "other", "topicName": "audit.log",
                                   "config": {"cleanup.policy": "compact"}}


def test_explicit_cluster_image_wins(chart: helm_python.Chart) -> None:
    values = {"cluster": {"enabled": True, "spec": {"brokers": 1, "image": "example/b:1"}}}
    [cluster] = _by_kind(render(chart, values), "Cluster")
    assert cluster["spec"]["image"] == "example/b:1"
    assert cluster["spec"]["brokers"] == 1  # user values merge over the chart's defaults
    assert cluster["spec"]["zones"] == {"names": ["a", "b", "c"]}


@pytest.mark.parametrize("bad_values, complaint", [
    ({"cluster": {"spec": {"brokers": 0}}}, "minimum"),
    ({"cluster": {"spec": {"brokers": 3, "pullPolicy": "Sometimes"}}}, "pullPolicy"),
    ({"topics": [{"name": "t", "spec": {"partitions": 0}}]}, "partitions"),
    ({"topics": [{"spec": {"partitions": 1}}]}, "name"),
    ({"operatr": {}}, "operatr"),
    ({"operator": {"logLevel": "loud"}}, "logLevel"),
    ({"operator": {"replicas": 2}}, "replicas"),
    ({"monitoring": {"podMonitor": {"interval": "often"}}}, "interval"),
])
def test_values_schema_rejects_mistakes(chart: helm_python.Chart, bad_values: dict[str, Any],
                                        complaint: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=complaint):
        chart.validate_schema(bad_values)
    # Rendering (what `helm install` does) refuses them as well.
    with pytest.raises(helm_python.HelmError):
        chart.render(bad_values, name="rel", namespace="streaming")


def test_values_schema_accepts_defaults_and_all_features(chart: helm_python.Chart) -> None:
    chart.validate_schema(chart.values)
    chart.validate_schema(ALL_FEATURES)


def test_monitoring_objects_match_the_alert_and_dashboard_sources(
        chart: helm_python.Chart) -> None:
    documents = render(chart, ALL_FEATURES)
    [rule] = _by_kind(documents, "PrometheusRule")
    alerts = yaml.safe_load((CHART_DIR / "files" / "alerts.yaml").read_text())
    assert rule["spec"] == alerts
    [pod_monitor] = _by_kind(documents, "PodMonitor")
    assert pod_monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    [endpoint] = pod_monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    # The BrokerDown alert selects on this job label.
    assert {"action": "replace", "targetLabel": "job",
            "replacement": "headrace-broker"} in endpoint["relabelings"]
    [service_monitor] = _by_kind(documents, "ServiceMonitor")
    [service] = _by_kind(documents, "Service")
    assert service_monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["spec"]["selector"].items())

    config_maps = _by_kind(documents, "ConfigMap")
    dashboard_files = sorted((CHART_DIR / "dashboards").glob("*.json"))
    assert len(config_maps) == len(dashboard_files) == 5
    shipped: dict[str, Any] = {}
    for config_map in config_maps:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["namespace"] == "grafana"
        [(file_name, text)] = config_map["data"].items()
        shipped[file_name] = json.loads(text)
    assert shipped == {path.name: json.loads(path.read_text()) for path in dashboard_files}


def test_notes_tell_the_user_what_to_do_next(chart: helm_python.Chart) -> None:
    notes = chart.render({}, name="rel", namespace="streaming")["headrace/templates/NOTES.txt"]
    assert "rollout status deployment/rel-headrace-operator" in notes
    assert "kind: Cluster" in notes and "kind: Topic" in notes
    assert "get clusters.headrace.io headrace -o jsonpath='{.status.bootstrapServers}'" in notes
    assert "monitoring.podMonitor.enabled=true" in notes
    with_cluster = chart.render(ALL_FEATURES, name="rel", namespace="streaming")
    notes = with_cluster["headrace/templates/NOTES.txt"]
    assert 'The Cluster "events" was created' in notes
    assert "monitoring.podMonitor.enabled" not in notes


def test_versions_agree(chart: helm_python.Chart) -> None:
    from headrace import __version__

    assert chart.metadata["appVersion"] == __version__
    # The operator's default broker image is the release the chart installs.
    assert DEFAULT_IMAGE.rsplit(":", 1)[1] == __version__


def test_long_release_names_still_give_valid_object_names(chart: helm_python.Chart) -> None:
    rendered = chart.render(ALL_FEATURES, name="a-very-long-release-name-for-a-streaming-platform",
                            namespace="streaming")
    documents = [doc for template, text in rendered.items() if not template.endswith("NOTES.txt")
                 for doc in yaml.safe_load_all(text) if doc]
    dns_label = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    for document in documents:
        name = document["metadata"]["name"]
        assert len(name) <= 63 and dns_label.match(name), name
        labels = document["metadata"].get("labels", {})
        assert all(len(value) <= 63 for value in labels.values()), labels
