"""The JSON schema of the chart's values, described in Python.

It exists as code so that ``cluster.spec`` and ``topics[].spec`` reuse the operator's own CRD
schemas (``headrace_operator.crds``) instead of a hand-kept copy, and so that the descriptions
feed both ``values.schema.json`` (which Helm enforces on install) and ``docs/configuration.md``.
``charts/generate.py`` writes the JSON.
"""

from __future__ import annotations

import copy
from typing import Any

from headrace_operator import crds

Schema = dict[str, Any]


def _string(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _object(description: str, properties: dict[str, Schema], **extra: Any) -> Schema:
    return {"type": "object", "description": description, "additionalProperties": False,
            "properties": properties, **extra}


def _free_object(description: str, values: Schema | None = None) -> Schema:
    schema: Schema = {"type": "object", "description": description}
    if values is not None:
        schema["additionalProperties"] = values
    return schema


def _image(description: str, default_repository: str) -> Schema:
    return _object(description, {
        "repository": _string(f"Image repository (default `{default_repository}`).",
                              minLength=1),
        "tag": _string("Image tag; empty means the chart's appVersion."),
        "pullPolicy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"],
                       "description": "Kubernetes imagePullPolicy."},
    })


def _json_schema_from_openapi(schema: Any) -> Any:
    """Drop the Kubernetes-only ``x-kubernetes-*`` keywords; JSON Schema has no use for them."""
    if isinstance(schema, dict):
        return {key: _json_schema_from_openapi(value) for key, value in schema.items()
                if not key.startswith("x-kubernetes-")}
    if isinstance(schema, list):
        return [_json_schema_from_openapi(item) for item in schema]
    return schema


def _monitor(description: str) -> Schema:
    return _object(description, {
        "enabled": {"type": "boolean", "description": "Create it."},
        "interval": _string("Scrape interval.", pattern=r"^[0-9]+(ms|s|m|h)$"),
        "labels": _free_object("Extra labels, e.g. the one your Prometheus selects on.",
                               {"type": "string"}),
    })


def values_schema() -> Schema:
    """The chart's ``values.schema.json`` (JSON Schema draft 7)."""
    cluster_spec = _json_schema_from_openapi(copy.deepcopy(crds.cluster_spec_schema()))
    cluster_spec["description"] = ("The Cluster's spec (see the Cluster reference); `image` "
                                   "defaults to `broker.image`.")
    topic_spec = _json_schema_from_openapi(copy.deepcopy(crds.topic_spec_schema()))
    topic_spec.pop("required", None)  # clusterRef defaults to cluster.name
    topic_spec["description"] = ("The Topic's spec (see the Topic reference); `clusterRef` "
                                 "defaults to `cluster.name`.")
    string_map = {"type": "string"}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Headrace Helm chart values",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "global": {"type": "object", "description": "Helm's global values (unused)."},
            "nameOverride": _string("Overrides the chart name used in object names and labels."),
            "fullnameOverride": _string("Overrides the full object name prefix."),
            "operator": _object("The operator Deployment.", {
                "image": _image("Operator image.", "ghcr.io/headrace/headrace-operator"),
                "imagePullSecrets": {"type": "array", "description": "Pull secrets.",
                                     "items": {"type": "object"}},
                "replicas": {"type": "integer", "minimum": 0, "maximum": 1,
                             "description": "1 runs the operator, 0 pauses it (kopf runs no "
                             "peering here, so two replicas would both act)."},
                "watchNamespaces": {"type": "array", "items": {"type": "string", "minLength": 1},
                                    "uniqueItems": True,
                                    "description": "Namespaces to watch; empty means all."},
                "logLevel": {"type": "string", "enum": ["debug", "info"],
                             "description": "Operator log level (`debug` adds --verbose)."},
                "metricsPort": {"type": "integer", "minimum": 1024, "maximum": 65535,
                                "description": "Port of the operator's /metrics."},
                "healthPort": {"type": "integer", "minimum": 1024, "maximum": 65535,
                               "description": "Port of the operator's liveness endpoint."},
                "reconcileIntervalSeconds": {
                    "type": "number", "exclusiveMinimum": 0,
                    "description": "Seconds between periodic reconciles (drift correction)."},
                "resources": _free_object("Container resources (ResourceRequirements)."),
                "podAnnotations": _free_object("Extra pod annotations.", string_map),
                "podLabels": _free_object("Extra pod labels.", string_map),
                "nodeSelector": _free_object("Pod nodeSelector.", string_map),
                "tolerations": {"type": "array", "items": {"type": "object"},
                                "description": "Pod tolerations."},
                "affinity": _free_object("Pod affinity."),
                "priorityClassName": _string("Pod priorityClassName."),
                "extraEnv": {"type": "array", "items": {"type": "object"},
                             "description": "Extra container env entries (EnvVar)."},
            }),
            "serviceAccount": _object("The operator's ServiceAccount.", {
                "create": {"type": "boolean", "description": "Create it."},
                "name": _string("Name; defaults to the operator's full name."),
                "annotations": _free_object("Annotations (e.g. for workload identity).",
                                            string_map),
            }),
            "rbac": _object("RBAC for the operator.", {
                "create": {"type": "boolean",
                           "description": "Create the ClusterRole and ClusterRoleBinding."},
            }),
            "broker": _object("Brokers of the chart's own Cluster.", {
                "image": _image("Broker image of `cluster` when its spec names none.",
                                "ghcr.io/headrace/headrace"),
            }),
            "cluster": _object("An optional Cluster created with the release.", {
                "enabled": {"type": "boolean", "description": "Create the Cluster."},
                "name": _string("Cluster name.", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                                maxLength=40),
                "spec": cluster_spec,
            }),
            "topics": {
                "type": "array",
                "description": "Optional Topics of that Cluster.",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "name": _string("Resource name (and topic name unless "
                                        "spec.topicName is set).",
                                        pattern=r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$",
                                        maxLength=253),
                        "spec": topic_spec,
                    },
                },
            },
            "monitoring": _object("Prometheus Operator objects and Grafana dashboards.", {
                "podMonitor": _monitor("PodMonitor scraping every broker's /metrics."),
                "serviceMonitor": _monitor("ServiceMonitor scraping the operator's /metrics."),
                "prometheusRule": _object("PrometheusRule with the Headrace alerts.", {
                    "enabled": {"type": "boolean", "description": "Create it."},
                    "labels": _free_object("Extra labels.", string_map),
                }),
                "dashboards": _object("Grafana dashboards as sidecar-loaded ConfigMaps.", {
                    "enabled": {"type": "boolean", "description": "Create the ConfigMaps."},
                    "namespace": _string("Namespace of the ConfigMaps (default: release's)."),
                    "labels": _free_object("Labels the Grafana sidecar selects on.",
                                           string_map),
                    "annotations": _free_object("Annotations, e.g. a Grafana folder.",
                                                string_map),
                }),
            }),
        },
    }
