"""What Kubernetes objects say, as the planners' inputs. Pure functions over plain dicts.

The reconcilers fetch Pods, Nodes and the Cluster resource; these functions read them (a pod's
broker id and revision, the zones the nodes are labelled with, the bootstrap address to use)
so the fetching code holds no parsing and every rule here is tested without a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from headrace.placement import BrokerSlot
from headrace_operator.model import ClusterSpec, ZoneGroup, zone_of_broker
from headrace_operator.planning import PodState
from headrace_operator.resources import REVISION_ANNOTATION, ClusterRef, bootstrap_servers

#: Annotation on a Cluster overriding the brokers' bootstrap address the operator uses (for an
#: operator running outside the cluster, e.g. through a port-forward).
BOOTSTRAP_ANNOTATION = "headrace.io/operator-bootstrap-servers"


def bootstrap_address(ref: ClusterRef, spec: ClusterSpec, meta: Mapping[str, Any]) -> str:
    """Where the operator reaches the brokers: the annotation's address, else the Service."""
    annotations = meta.get("annotations") or {}
    return str(annotations.get(BOOTSTRAP_ANNOTATION) or bootstrap_servers(ref, spec))


def node_zones(nodes: Iterable[Mapping[str, Any]], topology_key: str) -> list[str]:
    """The zones the nodes are labelled with, sorted by name."""
    found = {((n.get("metadata") or {}).get("labels") or {}).get(topology_key) for n in nodes}
    return sorted(z for z in found if z)


def pod_state(pod: Mapping[str, Any]) -> PodState | None:
    """A broker pod's id, revision and readiness; None for a pod that is not a broker's."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    name = str(meta.get("name", ""))
    ordinal_text = labels.get("apps.kubernetes.io/pod-index") or name.rsplit("-", 1)[-1]
    base_text = next((e.get("value") for c in (pod.get("spec") or {}).get("containers", [])
                      for e in c.get("env") or [] if e.get("name") == "BROKER_ID_BASE"), None)
    if not str(ordinal_text).isdigit() or base_text is None:
        return None
    conditions = (pod.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return PodState(name, int(base_text) + int(ordinal_text),
                    (meta.get("annotations") or {}).get(REVISION_ANNOTATION), ready,
                    bool(meta.get("deletionTimestamp")))


def pod_states(pods: Iterable[Mapping[str, Any]]) -> list[PodState]:
    return [s for s in (pod_state(p) for p in pods) if s is not None]


def ready_brokers(pods: Iterable[Mapping[str, Any]], groups: list[ZoneGroup]
                  ) -> tuple[int, dict[str, int]]:
    """How many broker pods are ready, in all and per zone ("default" without zones)."""
    per_zone: dict[str, int] = {}
    count = 0
    for state in pod_states(pods):
        if not state.ready:
            continue
        count += 1
        zone = zone_of_broker(state.broker_id, groups) or "default"
        per_zone[zone] = per_zone.get(zone, 0) + 1
    return count, per_zone


def broker_slots(live_brokers: Iterable[int], groups: list[ZoneGroup]) -> list[BrokerSlot]:
    """The live brokers with their zones, for placement (an id outside the groups: no zone)."""
    return [BrokerSlot(b, zone_of_broker(b, groups)) for b in sorted(live_brokers)]
