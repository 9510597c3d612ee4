"""The ``Cluster`` and ``Topic`` CustomResourceDefinitions, as Python data.

They live in code (not YAML) because three consumers need the same truth: the operator (which
watches these kinds and reads their defaults), the Helm chart and plain manifests (generated from
``build_crds()`` by the delivery tooling), and the tests (which validate custom resources against
these exact OpenAPI v3 schemas with ``jsonschema``).
"""

from __future__ import annotations

import copy
from typing import Any

GROUP = "headrace.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

CLUSTER_KIND = "Cluster"
CLUSTER_PLURAL = "clusters"
TOPIC_KIND = "Topic"
TOPIC_PLURAL = "topics"

DEFAULT_TOPOLOGY_KEY = "topology.kubernetes.io/zone"
DEFAULT_IMAGE = "ghcr.io/headrace/headrace:0.1.0"
DEFAULT_ETCD_IMAGE = "quay.io/coreos/etcd:v3.5.17"
KAFKA_PORT = 9092
HTTP_PORT = 8080

Schema = dict[str, Any]

# Kubernetes label/annotation maps and broker/topic config maps share this shape.
_STRING_MAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
# Quantities ("500m", "1Gi", 2) are int-or-string in Kubernetes.
_QUANTITY: Schema = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "x-kubernetes-int-or-string": True,
}
# Core Kubernetes structures (affinity, tolerations, securityContext) are passed through
# verbatim; the API server validates them when the operator writes the StatefulSet.
_OPAQUE_OBJECT: Schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def _conditions_schema() -> Schema:
    return {
        "type": "array",
        "description": "Ready, Progressing and Degraded, in the usual Kubernetes shape.",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status"],
            "properties": {
                "type": {"type": "string"},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "reason": {"type": "string"},
                "message": {"type": "string"},
                "lastTransitionTime": {"type": "string", "format": "date-time"},
                "observedGeneration": {"type": "integer", "format": "int64"},
            },
        },
    }


def cluster_spec_schema() -> Schema:
    """OpenAPI v3 schema of ``Cluster.spec``."""
    resources = {
        "type": "object",
        "description": "Container resources of each broker (Kubernetes ResourceRequirements).",
        "properties": {
            "requests": {"type": "object", "additionalProperties": _QUANTITY},
            "limits": {"type": "object", "additionalProperties": _QUANTITY},
        },
    }
    return {
        "type": "object",
        "required": ["brokers"],
        "properties": {
            "brokers": {
                "type": "integer",
                "minimum": 1,
                "maximum": 999,
                "default": 3,
                "description": "Total number of brokers, spread evenly over the zones "
                "(earlier zones get the remainder).",
            },
            "zones": {
                "type": "object",
                "default": {},
                "description": "Failure zones. With `names`, brokers are spread over exactly these "
                "zones; otherwise the distinct values of `topologyKey` on the cluster's nodes are "
                "used; with neither, brokers run in one zone-less group.",
                "properties": {
                    "names": {
                        "type": "array",
                        "maxItems": 9,
                        "x-kubernetes-list-type": "set",
                        "items": {"type": "string", "minLength": 1, "maxLength": 63},
                    },
                    "topologyKey": {
                        "type": "string",
                        "minLength": 1,
                        "default": DEFAULT_TOPOLOGY_KEY,
                    },
                },
            },
            "image": {"type": "string", "minLength": 1, "default": DEFAULT_IMAGE},
            "pullPolicy": {
                "type": "string",
                "enum": ["Always", "IfNotPresent", "Never"],
                "default": "IfNotPresent",
            },
            "storage": {
                "type": "object",
                "default": {},
                "properties": {
                    "size": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?([EPTGMk]i?)?$",
                             "default": "10Gi"},
                    "storageClassName": {"type": "string"},
                },
            },
            "resources": resources,
            "config": {
                **_STRING_MAP,
                "description": "Broker configuration defaults (e.g. `min.insync.replicas`, "
                "`default.replication.factor`), passed to every broker.",
            },
            "listeners": {
                "type": "object",
                "default": {},
                "properties": {
                    "kafka": {
                        "type": "object",
                        "default": {},
                        "properties": {
                            "port": {"type": "integer", "minimum": 1, "maximum": 65535,
                                     "default": KAFKA_PORT},
                        },
                    },
                    "http": {
                        "type": "object",
                        "default": {},
                        "properties": {
                            "port": {"type": "integer", "minimum": 1, "maximum": 65535,
                                     "default": HTTP_PORT},
                        },
                    },
                    "bootstrapServiceType": {
                        "type": "string",
                        "enum": ["ClusterIP", "NodePort", "LoadBalancer"],
                        "default": "ClusterIP",
                    },
                },
            },
            "metadataStore": {
                "type": "object",
                "default": {},
                "description": "Where brokers keep cluster metadata: an etcd the operator deploys "
                "(`managed`) or existing etcd `endpoints` (`external`).",
                "properties": {
                    "mode": {"type": "string", "enum": ["managed", "external"],
                             "default": "managed"},
                    "endpoints": {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1},
                        "description": "host:port of external etcd members (mode external).",
                    },
                    "replicas": {"type": "integer", "enum": [1, 3, 5], "default": 1},
                    "image": {"type": "string", "minLength": 1, "default": DEFAULT_ETCD_IMAGE},
                    "storageSize": {"type": "string", "default": "1Gi"},
                },
                "x-kubernetes-validations": [
                    {
                        # has(): the apiserver also checks the {} default, where mode is unset.
                        "rule": "!has(self.mode) || self.mode != 'external' || "
                        "(has(self.endpoints) && size(self.endpoints) > 0)",
                        "message": "external metadata store needs endpoints",
                    }
                ],
            },
            "podTemplate": {
                "type": "object",
                "default": {},
                "description": "Overrides merged into every broker pod.",
                "properties": {
                    "labels": _STRING_MAP,
                    "annotations": _STRING_MAP,
                    "tolerations": {"type": "array", "items": _OPAQUE_OBJECT},
                    "affinity": _OPAQUE_OBJECT,
                    "securityContext": {**_OPAQUE_OBJECT,
                                        "description": "Pod-level securityContext."},
                    "containerSecurityContext": _OPAQUE_OBJECT,
                    "serviceAccountName": {"type": "string"},
                },
            },
        },
    }


def cluster_status_schema() -> Schema:
    return {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,  # kopf keeps its own progress here
        "properties": {
            "observedGeneration": {"type": "integer", "format": "int64"},
            "conditions": _conditions_schema(),
            "brokers": {"type": "integer"},
            "readyBrokers": {"type": "integer"},
            "brokersReadyPerZone": {"type": "object", "additionalProperties": {"type": "integer"}},
            "brokerIds": {"type": "array", "items": {"type": "integer"}},
            "zones": {"type": "array", "items": {"type": "string"},
                      "description": "The zones in broker id order (a zone's place is its "
                                     "brokers' id prefix); new zones only ever join at the end."},
            "scaleRefused": {"type": "string", "nullable": True,
                             "description": "Why the asked broker count cannot be applied."},
            "zonesRefused": {"type": "string", "nullable": True,
                             "description": "Why the asked zones cannot be applied."},
            "controllerId": {"type": "integer"},
            "underReplicatedPartitions": {"type": "integer"},
            "offlinePartitions": {"type": "integer"},
            "bootstrapServers": {"type": "string"},
            "appliedRevision": {"type": "string",
                                "description": "Hash of the pod template every broker should run."},
        },
    }


def topic_spec_schema() -> Schema:
    return {
        "type": "object",
        "required": ["clusterRef"],
        "properties": {
            "clusterRef": {"type": "string", "minLength": 1, "maxLength": 63,
                           "pattern": _DNS_LABEL,
                           "description": "Name of the Cluster in the same namespace."},
            "topicName": {"type": "string", "minLength": 1, "maxLength": 249,
                          "pattern": r"^[a-zA-Z0-9._-]+$",
                          "description": "Kafka topic name; defaults to metadata.name."},
            "partitions": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1,
                           "description": "Partition count: may grow, never shrink."},
            "replicationFactor": {"type": "integer", "minimum": 1, "maximum": 32767,
                                  "default": 3},
            "config": {**_STRING_MAP,
                       "description": "Topic configs, e.g. `retention.ms`, `cleanup.policy`."},
            "deletionPolicy": {"type": "string", "enum": ["delete", "retain"],
                               "default": "delete",
                               "description": "Whether deleting the resource deletes the topic."},
        },
    }


def topic_status_schema() -> Schema:
    return {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "observedGeneration": {"type": "integer", "format": "int64"},
            "conditions": _conditions_schema(),
            "topicName": {"type": "string"},
            "partitionCount": {"type": "integer"},
            "partitions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "partition": {"type": "integer"},
                        "replicas": {"type": "array", "items": {"type": "integer"}},
                        "leader": {"type": "integer"},
                        "isr": {"type": "array", "items": {"type": "integer"}},
                    },
                },
            },
            "drift": {"type": "array", "items": {"type": "string"},
                      "description": "Differences found in Kafka and corrected."},
        },
    }


def _condition_column(kind: str) -> dict[str, Any]:
    return {"name": "Ready", "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
            "description": f"Whether the {kind} is ready."}


def _crd(kind: str, plural: str, short_names: list[str], spec: Schema, status: Schema,
         columns: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}",
                     "labels": {"app.kubernetes.io/part-of": "headrace"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                      "singular": kind.lower(), "shortNames": short_names,
                      "categories": ["headrace"]},
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    *columns,
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec,
                        "status": status,
                    },
                }},
            }],
        },
    }


def build_crds() -> list[dict[str, Any]]:
    """Return complete ``apiextensions.k8s.io/v1`` CRDs for ``Cluster`` and ``Topic``.

    A fresh deep copy on every call, so callers may mutate the result.
    """
    cluster = _crd(
        CLUSTER_KIND, CLUSTER_PLURAL, ["hrc", "hrcluster"],
        cluster_spec_schema(), cluster_status_schema(),
        [
            {"name": "Brokers", "type": "integer", "jsonPath": ".spec.brokers"},
            {"name": "Ready-Brokers", "type": "integer", "jsonPath": ".status.readyBrokers"},
            _condition_column("cluster"),
            {"name": "Controller", "type": "integer", "jsonPath": ".status.controllerId",
             "priority": 1},
            {"name": "Under-Replicated", "type": "integer",
             "jsonPath": ".status.underReplicatedPartitions", "priority": 1},
        ],
    )
    topic = _crd(
        TOPIC_KIND, TOPIC_PLURAL, ["hrt", "hrtopic"],
        topic_spec_schema(), topic_status_schema(),
        [
            {"name": "Cluster", "type": "string", "jsonPath": ".spec.clusterRef"},
            {"name": "Partitions", "type": "integer", "jsonPath": ".spec.partitions"},
            {"name": "RF", "type": "integer", "jsonPath": ".spec.replicationFactor"},
            _condition_column("topic"),
            {"name": "Reason", "type": "string",
             "jsonPath": '.status.conditions[?(@.type=="Ready")].reason', "priority": 1},
        ],
    )
    return copy.deepcopy([cluster, topic])


def openapi_schema(kind: str) -> Schema:
    """The ``openAPIV3Schema`` of one kind, for validating resources with ``jsonschema``."""
    for crd in build_crds():
        if crd["spec"]["names"]["kind"] == kind:
            schema: Schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(kind)
