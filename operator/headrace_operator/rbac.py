"""The least-privilege RBAC rules the operator needs, as Python data.

The Helm chart and plain manifests generate the operator's ClusterRole from ``required_rules()``,
so what the operator does and what it is allowed to do are declared next to each other. When a
handler starts touching a new resource or verb, this list is the one place to change.
"""

from __future__ import annotations

from typing import Any

from headrace_operator.crds import CLUSTER_PLURAL, GROUP, TOPIC_PLURAL

# What the operator does to the objects it owns: create them, patch them to the desired state,
# delete them when the Cluster shrinks (owner references let the garbage collector do the rest).
_OWNED_VERBS = ["get", "list", "watch", "create", "patch", "delete"]


def required_rules() -> list[dict[str, Any]]:
    """PolicyRules (``rbac.authorization.k8s.io/v1``) for the operator's ClusterRole."""
    return [
        # The custom resources: watch them, keep status and finalizers (kopf patches both).
        {"apiGroups": [GROUP], "resources": [CLUSTER_PLURAL, TOPIC_PLURAL],
         "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [GROUP],
         "resources": [f"{CLUSTER_PLURAL}/status", f"{TOPIC_PLURAL}/status",
                       f"{CLUSTER_PLURAL}/finalizers", f"{TOPIC_PLURAL}/finalizers"],
         "verbs": ["get", "patch", "update"]},
        # Per-zone broker StatefulSets and the managed etcd StatefulSet.
        {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": _OWNED_VERBS},
        # Headless and bootstrap Services, the broker ConfigMap.
        {"apiGroups": [""], "resources": ["services", "configmaps"], "verbs": _OWNED_VERBS},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": _OWNED_VERBS},
        # Rolling restarts delete one broker pod at a time (StatefulSets use OnDelete); readiness
        # and zone are read from pods.
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "delete"]},
        # Zone discovery from the nodes' topology labels (cluster-scoped, read-only).
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
        # Kubernetes Events on the resources (both the core and events.k8s.io APIs).
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        # kopf's own needs: namespace observation and CRD discovery.
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
         "verbs": ["get", "list", "watch"]},
    ]
