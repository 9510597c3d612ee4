"""The status subresources the operator writes, composed from plans and observations. Pure.

A reconcile ends by patching its resource's status; these functions build that patch so the
reconcilers only fetch, act and write, and the fields users and ``kubectl`` read are defined
in one place (the CRDs' status schemas in ``crds`` describe the same fields).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headrace_operator.model import ClusterSpec, TopicSpec, ZoneGroup
from headrace_operator.planning import BrokerState, ScalePlan

Status = dict[str, Any]


def cluster_status(spec: ClusterSpec, plan: ScalePlan, groups: list[ZoneGroup], zones: list[str],
                   conditions: list[dict[str, Any]], generation: int, ready_count: int,
                   ready_per_zone: dict[str, int], zones_refused: str | None,
                   bootstrap: str, revision: str, brokers: BrokerState | None) -> Status:
    status: Status = {
        "observedGeneration": generation,
        "conditions": conditions,
        "phase": plan.phase,
        "scaleRefused": plan.refused,
        "zonesRefused": zones_refused,
        "brokers": spec.brokers,
        "readyBrokers": ready_count,
        "brokersReadyPerZone": ready_per_zone,
        "brokerIds": [b for g in groups for b in g.broker_ids],
        "zones": zones,
        "bootstrapServers": bootstrap,
        "appliedRevision": revision,
    }
    if brokers is not None:
        status.update(controllerId=brokers.controller_id,
                      underReplicatedPartitions=brokers.under_replicated,
                      offlinePartitions=brokers.offline)
    return status


def topic_status(spec: TopicSpec, described: BrokerState, drift: list[str],
                 previous: Mapping[str, Any]) -> Status:
    """What a reconciled Topic reports besides its conditions: partitions, what was applied."""
    partitions = [{"partition": p.partition, "replicas": list(p.replicas),
                   "leader": p.leader if p.leader is not None else -1, "isr": list(p.isr)}
                  for p in described.partitions if p.topic == spec.topic_name]
    return {"topicName": spec.topic_name, "partitionCount": len(partitions),
            "partitions": partitions, "created": True,
            "appliedConfig": dict(spec.config),
            "appliedReplicationFactor": spec.replication_factor,
            "drift": drift or previous.get("drift") or []}


def status_unchanged(current: Mapping[str, Any] | None, status: Mapping[str, Any]) -> bool:
    """Whether ``current`` already says everything ``status`` would patch."""
    return current is not None and all(current.get(k) == v for k, v in status.items())
