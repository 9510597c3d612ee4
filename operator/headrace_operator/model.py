"""Typed views of ``Cluster`` and ``Topic`` specs, with the CRD defaults applied.

The API server applies the CRD defaults, but the operator must not depend on that (an older CRD, a
test emulator without defaulting): every handler reads specs through ``ClusterSpec.parse`` /
``TopicSpec.parse``, which apply the same defaults and raise ``SpecError`` on what the schema
cannot express (e.g. an external metadata store without endpoints).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from headrace_operator.crds import (
    DEFAULT_ETCD_IMAGE,
    DEFAULT_IMAGE,
    DEFAULT_TOPOLOGY_KEY,
    HTTP_PORT,
    KAFKA_PORT,
)

#: Broker ids are ``zone index * BROKER_ID_STRIDE + pod ordinal``, so ids stay stable when a zone
#: grows or shrinks and the id tells which zone (StatefulSet) a broker belongs to.
BROKER_ID_STRIDE = 1000


class SpecError(ValueError):
    """A spec the operator cannot act on; reported as a condition, never retried blindly."""


def _as_str_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


@dataclass(frozen=True)
class MetadataStore:
    mode: str = "managed"
    endpoints: tuple[str, ...] = ()
    replicas: int = 1
    image: str = DEFAULT_ETCD_IMAGE
    storage_size: str = "1Gi"


@dataclass(frozen=True)
class PodOverrides:
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    affinity: dict[str, Any] = field(default_factory=dict)
    security_context: dict[str, Any] = field(default_factory=dict)
    container_security_context: dict[str, Any] = field(default_factory=dict)
    service_account_name: str | None = None


@dataclass(frozen=True)
class ClusterSpec:
    brokers: int = 3
    zone_names: tuple[str, ...] = ()
    topology_key: str = DEFAULT_TOPOLOGY_KEY
    image: str = DEFAULT_IMAGE
    pull_policy: str = "IfNotPresent"
    storage_size: str = "10Gi"
    storage_class: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)
    kafka_port: int = KAFKA_PORT
    http_port: int = HTTP_PORT
    bootstrap_service_type: str = "ClusterIP"
    metadata: MetadataStore = field(default_factory=MetadataStore)
    pod: PodOverrides = field(default_factory=PodOverrides)

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> ClusterSpec:
        zones = spec.get("zones") or {}
        storage = spec.get("storage") or {}
        listeners = spec.get("listeners") or {}
        store = spec.get("metadataStore") or {}
        pod = spec.get("podTemplate") or {}
        brokers = int(spec.get("brokers", 3))
        if brokers < 1:
            raise SpecError(f"brokers must be at least 1, got {brokers}")
        names = tuple(str(z) for z in zones.get("names") or ())
        if len(set(names)) != len(names):
            raise SpecError(f"zone names repeat: {list(names)}")
        metadata = MetadataStore(
            mode=str(store.get("mode", "managed")),
            endpoints=tuple(str(e) for e in store.get("endpoints") or ()),
            replicas=int(store.get("replicas", 1)),
            image=str(store.get("image", DEFAULT_ETCD_IMAGE)),
            storage_size=str(store.get("storageSize", "1Gi")),
        )
        if metadata.mode == "external" and not metadata.endpoints:
            raise SpecError("metadataStore.mode is external but no endpoints are given")
        if metadata.mode not in ("managed", "external"):
            raise SpecError(f"unknown metadataStore.mode {metadata.mode!r}")
        return cls(
            brokers=brokers,
            zone_names=names,
            topology_key=str(zones.get("topologyKey", DEFAULT_TOPOLOGY_KEY)),
            image=str(spec.get("image", DEFAULT_IMAGE)),
            pull_policy=str(spec.get("pullPolicy", "IfNotPresent")),
            storage_size=str(storage.get("size", "10Gi")),
            storage_class=storage.get("storageClassName"),
            resources=dict(spec.get("resources") or {}),
            config=_as_str_map(spec.get("config")),
            kafka_port=int((listeners.get("kafka") or {}).get("port", KAFKA_PORT)),
            http_port=int((listeners.get("http") or {}).get("port", HTTP_PORT)),
            bootstrap_service_type=str(listeners.get("bootstrapServiceType", "ClusterIP")),
            metadata=metadata,
            pod=PodOverrides(
                labels=_as_str_map(pod.get("labels")),
                annotations=_as_str_map(pod.get("annotations")),
                tolerations=list(pod.get("tolerations") or []),
                affinity=dict(pod.get("affinity") or {}),
                security_context=dict(pod.get("securityContext") or {}),
                container_security_context=dict(pod.get("containerSecurityContext") or {}),
                service_account_name=pod.get("serviceAccountName"),
            ),
        )

    @property
    def min_insync_replicas(self) -> int:
        return int(self.config.get("min.insync.replicas", "1"))


@dataclass(frozen=True)
class TopicSpec:
    cluster_ref: str
    topic_name: str
    partitions: int = 1
    replication_factor: int = 3
    config: dict[str, str] = field(default_factory=dict)
    deletion_policy: str = "delete"

    @classmethod
    def parse(cls, name: str, spec: Mapping[str, Any]) -> TopicSpec:
        cluster_ref = spec.get("clusterRef")
        if not cluster_ref:
            raise SpecError("clusterRef is required")
        topic_name = str(spec.get("topicName") or name)
        if not re.fullmatch(r"[a-zA-Z0-9._-]{1,249}", topic_name):
            raise SpecError(f"{topic_name!r} is not a valid Kafka topic name")
        partitions = int(spec.get("partitions", 1))
        replication_factor = int(spec.get("replicationFactor", 3))
        if partitions < 1 or replication_factor < 1:
            raise SpecError("partitions and replicationFactor must be at least 1")
        policy = str(spec.get("deletionPolicy", "delete"))
        if policy not in ("delete", "retain"):
            raise SpecError(f"deletionPolicy must be delete or retain, got {policy!r}")
        return cls(str(cluster_ref), topic_name, partitions, replication_factor,
                   _as_str_map(spec.get("config")), policy)


@dataclass(frozen=True)
class ZoneGroup:
    """One StatefulSet of brokers: a zone (or the zone-less group), its index and size."""

    index: int
    zone: str | None
    replicas: int

    def broker_id(self, ordinal: int) -> int:
        return self.index * BROKER_ID_STRIDE + ordinal

    @property
    def broker_ids(self) -> list[int]:
        return [self.broker_id(o) for o in range(self.replicas)]


def zone_groups(brokers: int, zones: tuple[str, ...] | list[str]) -> list[ZoneGroup]:
    """Spread ``brokers`` evenly over ``zones`` in order (earlier zones take the remainder).

    With no zones the brokers form one zone-less group. Zone order must stay stable (it is the
    broker id prefix), so zones discovered from nodes are sorted by name.
    """
    if not zones:
        return [ZoneGroup(0, None, brokers)]
    base, extra = divmod(brokers, len(zones))
    return [ZoneGroup(i, zone, base + (1 if i < extra else 0)) for i, zone in enumerate(zones)]


def stable_zones(recorded: Sequence[str], found: Sequence[str], *, named: bool
                 ) -> tuple[list[str], str | None]:
    """The zones to run with, in an order that keeps every broker's id, and why not the ones
    asked for if they cannot be.

    A zone's position is its brokers' id prefix, so once a cluster has run with ``recorded``
    zones those keep their places and new zones only go after them. Zones found on nodes
    (``named`` False) are kept that way by themselves: a new zone whose name sorts first joins
    at the end, and a zone with no nodes left stays (its brokers keep their ids, pending).
    Named zones that drop or reorder a recorded one are refused: the cluster keeps running
    with ``recorded``.
    """
    if not recorded:
        return list(found), None
    if not named:
        return [*recorded, *sorted(z for z in found if z not in recorded)], None
    if list(found[:len(recorded)]) == list(recorded):
        return list(found), None
    return list(recorded), (
        f"zones {list(found)} would move or drop zones of {list(recorded)}: a zone's place in "
        "the list is its brokers' id prefix, so zones can only be added at the end; keeping "
        f"{list(recorded)}")


def zone_of_broker(broker_id: int, groups: list[ZoneGroup]) -> str | None:
    index = broker_id // BROKER_ID_STRIDE
    return groups[index].zone if index < len(groups) else None
