"""The Kubernetes objects a ``Cluster`` should own, computed from its spec alone.

Pure functions from (cluster identity, ``ClusterSpec``, zones) to plain dicts: the handlers only
create or patch what these return, and tests check the objects without a server. Every object
carries the cluster's labels and an owner reference, so deleting the Cluster deletes them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from headrace_operator.crds import API_VERSION, CLUSTER_KIND
from headrace_operator.model import ClusterSpec, ZoneGroup, zone_groups

Obj = dict[str, Any]

DATA_DIR = "/var/lib/headrace"
CONFIG_DIR = "/etc/headrace"
#: The user the broker image (broker/Dockerfile) runs as.
BROKER_UID = 10001
DEFAULT_POD_SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": BROKER_UID,
    "runAsGroup": BROKER_UID,
    "fsGroup": BROKER_UID,
}
DEFAULT_CONTAINER_SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
#: Annotation on broker pod templates: hash of everything that requires a restart to apply.
REVISION_ANNOTATION = "headrace.io/revision"
ZONE_LABEL = "headrace.io/zone"
BROKER_ID_BASE_ANNOTATION = "headrace.io/broker-id-base"

# Broker configs the ``headrace broker`` command takes as flags; the whole map is also written
# to the ConfigMap (``broker.properties``) for reference and for the roll revision.
_CONFIG_FLAGS = {
    "default.replication.factor": "--default-replication-factor",
    "offsets.topic.replication.factor": "--offsets-topic-replication-factor",
    "num.partitions": "--default-partitions",
    "replica.lag.time.max.ms": "--replica-lag-time-max-ms",
    "message.max.bytes": "--max-request-bytes",
    "group.initial.rebalance.delay.ms": "--group-initial-rebalance-delay-ms",
    "producer.id.expiration.ms": "--producer-id-expiration-ms",
}


@dataclass(frozen=True)
class ClusterRef:
    """Who owns the objects: the Cluster resource's identity."""

    name: str
    namespace: str
    uid: str

    def owner_reference(self) -> Obj:
        return {"apiVersion": API_VERSION, "kind": CLUSTER_KIND, "name": self.name,
                "uid": self.uid, "controller": True, "blockOwnerDeletion": True}

    def labels(self, component: str) -> dict[str, str]:
        return {"app.kubernetes.io/name": "headrace", "app.kubernetes.io/instance": self.name,
                "app.kubernetes.io/component": component,
                "app.kubernetes.io/managed-by": "headrace-operator"}

    def selector(self, component: str) -> dict[str, str]:
        return {"app.kubernetes.io/instance": self.name,
                "app.kubernetes.io/component": component}

    def metadata(self, name: str, component: str, **extra_labels: str) -> Obj:
        return {"name": name, "namespace": self.namespace,
                "labels": {**self.labels(component), **extra_labels},
                "ownerReferences": [self.owner_reference()]}

    @property
    def headless_service(self) -> str:
        return f"{self.name}-brokers"

    @property
    def bootstrap_service(self) -> str:
        return f"{self.name}-bootstrap"

    @property
    def config_map(self) -> str:
        return f"{self.name}-config"

    @property
    def etcd_name(self) -> str:
        return f"{self.name}-etcd"

    def statefulset_name(self, group: ZoneGroup) -> str:
        if group.zone is None:
            return f"{self.name}-broker"
        return f"{self.name}-{_dns_label(group.zone)}"


def _dns_label(value: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")
    return label[:40] or "zone"


def metadata_endpoint(ref: ClusterRef, spec: ClusterSpec) -> str:
    """The ``--metadata`` URL every broker gets."""
    if spec.metadata.mode == "external":
        return "etcd://" + ",".join(spec.metadata.endpoints)
    return f"etcd://{ref.etcd_name}-client.{ref.namespace}.svc:{ETCD_CLIENT_PORT}"


def broker_revision(spec: ClusterSpec, metadata: str) -> str:
    """Hash of what a broker restart is needed for: image, config, resources, pod overrides."""
    relevant = {
        "image": spec.image, "pullPolicy": spec.pull_policy, "config": spec.config,
        "resources": spec.resources, "ports": [spec.kafka_port, spec.http_port],
        "metadata": metadata,
        "pod": {"labels": spec.pod.labels, "annotations": spec.pod.annotations,
                "tolerations": spec.pod.tolerations, "affinity": spec.pod.affinity,
                "securityContext": spec.pod.security_context,
                "containerSecurityContext": spec.pod.container_security_context},
    }
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()
    return digest[:16]


def broker_args(ref: ClusterRef, spec: ClusterSpec, group: ZoneGroup) -> list[str]:
    # $(POD_NAME) is expanded by the kubelet from the container's env.
    args = [
        "--metadata", metadata_endpoint(ref, spec),
        "--kafka-listen", f"0.0.0.0:{spec.kafka_port}",
        "--advertised-listener",
        f"$(POD_NAME).{ref.headless_service}.{ref.namespace}.svc:{spec.kafka_port}",
        "--http-listen", f"0.0.0.0:{spec.http_port}",
        "--data-dir", DATA_DIR,
    ]
    if group.zone is not None:
        args += ["--zone", group.zone]
    for key, flag in sorted(_CONFIG_FLAGS.items()):
        if key in spec.config:
            args += [flag, spec.config[key]]
    if "auto.create.topics.enable" in spec.config:
        enabled = spec.config["auto.create.topics.enable"].lower() == "true"
        args.append("--auto-create-topics" if enabled else "--no-auto-create-topics")
    return args


def _zone_affinity(spec: ClusterSpec, group: ZoneGroup) -> Obj:
    affinity: Obj = json.loads(json.dumps(spec.pod.affinity))  # deep copy of plain JSON
    if group.zone is None:
        return affinity
    pin = {"matchExpressions": [{"key": spec.topology_key, "operator": "In",
                                 "values": [group.zone]}]}
    node_affinity = affinity.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.setdefault("nodeSelectorTerms", [])
    # Node selector terms are ORed: add the zone to each user term, or make it the only term.
    if terms:
        for term in terms:
            term.setdefault("matchExpressions", []).extend(pin["matchExpressions"])
    else:
        terms.append(pin)
    return affinity


def broker_statefulset(ref: ClusterRef, spec: ClusterSpec, group: ZoneGroup) -> Obj:
    """One StatefulSet per zone; ``OnDelete`` so the operator decides when each broker restarts."""
    name = ref.statefulset_name(group)
    zone_labels = {ZONE_LABEL: _dns_label(group.zone)} if group.zone else {}
    selector = {**ref.selector("broker"), "statefulset.kubernetes.io/owner": name}
    metadata = metadata_endpoint(ref, spec)
    base = group.broker_id(0)
    container: Obj = {
        "name": "broker",
        "image": spec.image,
        "imagePullPolicy": spec.pull_policy,
        # The broker id is the zone's base plus the pod's ordinal (the pod-index label, set by
        # the StatefulSet controller); arithmetic needs a shell.
        "command": ["sh", "-c",
                    'exec headrace broker --broker-id "$((BROKER_ID_BASE + POD_INDEX))" "$@"',
                    "headrace"],
        "args": broker_args(ref, spec, group),
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_INDEX", "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}},
            {"name": "BROKER_ID_BASE", "value": str(base)},
        ],
        "ports": [{"name": "kafka", "containerPort": spec.kafka_port},
                  {"name": "http", "containerPort": spec.http_port}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"},
                           "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                          "periodSeconds": 10, "failureThreshold": 6},
        "startupProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                         "periodSeconds": 5, "failureThreshold": 60},
        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR},
                         {"name": "config", "mountPath": CONFIG_DIR}],
    }
    if spec.resources:
        container["resources"] = spec.resources
    container["securityContext"] = {
        **DEFAULT_CONTAINER_SECURITY_CONTEXT,
        **spec.pod.container_security_context,
    }
    pod_spec: Obj = {
        "containers": [container],
        # Controlled shutdown (leadership handed over on SIGTERM) needs time.
        "terminationGracePeriodSeconds": 60,
        "volumes": [{"name": "config", "configMap": {"name": ref.config_map}}],
    }
    affinity = _zone_affinity(spec, group)
    if affinity:
        pod_spec["affinity"] = affinity
    if spec.pod.tolerations:
        pod_spec["tolerations"] = spec.pod.tolerations
    # The broker image runs as an unprivileged user; without fsGroup it could not write to a
    # freshly provisioned data volume. User-supplied fields win key by key.
    pod_spec["securityContext"] = {**DEFAULT_POD_SECURITY_CONTEXT, **spec.pod.security_context}
    if spec.pod.service_account_name:
        pod_spec["serviceAccountName"] = spec.pod.service_account_name
    claim: Obj = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": spec.storage_size}}},
    }
    if spec.storage_class:
        claim["spec"]["storageClassName"] = spec.storage_class
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {**ref.metadata(name, "broker", **zone_labels),
                     "annotations": {BROKER_ID_BASE_ANNOTATION: str(base)}},
        "spec": {
            "serviceName": ref.headless_service,
            "replicas": group.replicas,
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "OnDelete"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": {**spec.pod.labels, **ref.labels("broker"), **zone_labels,
                               "statefulset.kubernetes.io/owner": name},
                    "annotations": {**spec.pod.annotations,
                                    REVISION_ANNOTATION: broker_revision(spec, metadata)},
                },
                "spec": pod_spec,
            },
            "volumeClaimTemplates": [claim],
        },
    }


def headless_service(ref: ClusterRef, spec: ClusterSpec) -> Obj:
    """Gives every broker pod a stable DNS name; lists pods before they are ready."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": ref.metadata(ref.headless_service, "broker"),
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                 "selector": ref.selector("broker"),
                 "ports": [{"name": "kafka", "port": spec.kafka_port, "targetPort": "kafka"},
                           {"name": "http", "port": spec.http_port, "targetPort": "http"}]},
    }


def bootstrap_service(ref: ClusterRef, spec: ClusterSpec) -> Obj:
    """The one address clients start from; only ready brokers answer."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": ref.metadata(ref.bootstrap_service, "broker"),
        "spec": {"type": spec.bootstrap_service_type, "selector": ref.selector("broker"),
                 "ports": [{"name": "kafka", "port": spec.kafka_port, "targetPort": "kafka"},
                           {"name": "http", "port": spec.http_port, "targetPort": "http"}]},
    }


def config_map(ref: ClusterRef, spec: ClusterSpec) -> Obj:
    properties = "".join(f"{k}={v}\n" for k, v in sorted(spec.config.items()))
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": ref.metadata(ref.config_map, "broker"),
            "data": {"broker.properties": properties,
                     "metadata.url": metadata_endpoint(ref, spec)}}


def pod_disruption_budget(ref: ClusterRef) -> Obj:
    """Voluntary evictions (node drains) take at most one broker at a time."""
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": ref.metadata(f"{ref.name}-brokers", "broker"),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": ref.selector("broker")}}}


def etcd_objects(ref: ClusterRef, spec: ClusterSpec) -> list[Obj]:
    """A managed etcd: a StatefulSet with a peer (headless) and a client Service."""
    if spec.metadata.mode != "managed":
        return []
    name, replicas, ns = ref.etcd_name, spec.metadata.replicas, ref.namespace
    peers = ",".join(f"{name}-{i}=http://{name}-{i}.{name}.{ns}.svc:{ETCD_PEER_PORT}"
                     for i in range(replicas))
    selector = ref.selector("etcd")
    container = {
        "name": "etcd", "image": spec.metadata.image,
        "command": ["etcd"],
        "args": [
            "--name=$(POD_NAME)", "--data-dir=/var/lib/etcd",
            f"--listen-client-urls=http://0.0.0.0:{ETCD_CLIENT_PORT}",
            f"--advertise-client-urls=http://$(POD_NAME).{name}.{ns}.svc:{ETCD_CLIENT_PORT}",
            f"--listen-peer-urls=http://0.0.0.0:{ETCD_PEER_PORT}",
            f"--initial-advertise-peer-urls=http://$(POD_NAME).{name}.{ns}.svc:{ETCD_PEER_PORT}",
            f"--initial-cluster={peers}", "--initial-cluster-state=new",
            f"--initial-cluster-token={ref.name}-{ref.uid[:8]}",
        ],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": [{"name": "client", "containerPort": ETCD_CLIENT_PORT},
                  {"name": "peer", "containerPort": ETCD_PEER_PORT}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "client"}, "periodSeconds": 5},
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/etcd"}],
    }
    ports = [{"name": "client", "port": ETCD_CLIENT_PORT, "targetPort": "client"},
             {"name": "peer", "port": ETCD_PEER_PORT, "targetPort": "peer"}]
    return [
        {"apiVersion": "apps/v1", "kind": "StatefulSet",
         "metadata": ref.metadata(name, "etcd"),
         "spec": {"serviceName": name, "replicas": replicas, "podManagementPolicy": "Parallel",
                  "selector": {"matchLabels": selector},
                  "template": {"metadata": {"labels": ref.labels("etcd")},
                               "spec": {"containers": [container]}},
                  "volumeClaimTemplates": [{
                      "metadata": {"name": "data"},
                      "spec": {"accessModes": ["ReadWriteOnce"], "resources": {
                          "requests": {"storage": spec.metadata.storage_size}}}}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": ref.metadata(name, "etcd"),
         "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                  "selector": selector, "ports": ports}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": ref.metadata(f"{name}-client", "etcd"),
         "spec": {"selector": selector, "ports": ports[:1]}},
    ]


def desired_objects(ref: ClusterRef, spec: ClusterSpec, zones: list[str],
                    replicas_per_zone: dict[str, int] | None = None) -> list[Obj]:
    """Everything the Cluster owns, in creation order (etcd and config before brokers).

    ``replicas_per_zone`` overrides the StatefulSet sizes (keyed by StatefulSet name) while a
    scale-down waits for its drain: the StatefulSets keep their current size until then.
    """
    objects = [*etcd_objects(ref, spec), config_map(ref, spec), headless_service(ref, spec),
               bootstrap_service(ref, spec), pod_disruption_budget(ref)]
    for group in zone_groups(spec.brokers, zones):
        statefulset = broker_statefulset(ref, spec, group)
        name = statefulset["metadata"]["name"]
        if replicas_per_zone and name in replicas_per_zone:
            statefulset["spec"]["replicas"] = replicas_per_zone[name]
        objects.append(statefulset)
    return objects


def bootstrap_servers(ref: ClusterRef, spec: ClusterSpec) -> str:
    return f"{ref.bootstrap_service}.{ref.namespace}.svc:{spec.kafka_port}"
