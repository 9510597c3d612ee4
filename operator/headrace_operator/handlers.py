"""kopf handlers: observe, call a planner, carry out its decision, report status and events.

Handlers stay thin: every decision is made by ``planning`` and every object by ``resources``. A
Cluster or Topic is reconciled on creation, on spec change, on operator start and on a timer (the
timer catches drift and drives multi-step work such as drain-then-shrink and rolling restarts).
Reconciles of one resource never overlap (a lock per resource), and a failing step is reported as
a condition and an event, then retried on the next timer tick instead of crash-looping.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any, cast

import kopf

from headrace.placement import BrokerSlot
from headrace_operator import metrics
from headrace_operator.admin import AdminError, ClusterAdmin, KafkaClusterAdmin
from headrace_operator.crds import (
    API_VERSION,
    CLUSTER_KIND,
    CLUSTER_PLURAL,
    GROUP,
    TOPIC_PLURAL,
    VERSION,
)
from headrace_operator.kube import Kube, KubeConfig, KubeError
from headrace_operator.model import (
    BROKER_ID_STRIDE,
    ClusterSpec,
    SpecError,
    TopicSpec,
    stable_zones,
    zone_groups,
    zone_of_broker,
)
from headrace_operator.planning import (
    BrokerState,
    PodState,
    RollDecision,
    ScalePlan,
    cluster_conditions,
    describe_drift,
    plan_roll,
    plan_scale,
    plan_topic,
    set_condition,
)
from headrace_operator.resources import (
    REVISION_ANNOTATION,
    ClusterRef,
    bootstrap_servers,
    broker_revision,
    desired_objects,
    metadata_endpoint,
)

#: Annotation on a Cluster overriding the brokers' bootstrap address the operator uses (for an
#: operator running outside the cluster, e.g. through a port-forward).
BOOTSTRAP_ANNOTATION = "headrace.io/operator-bootstrap-servers"
RECONCILE_INTERVAL_S = float(os.environ.get("HEADRACE_OPERATOR_INTERVAL", "15"))

Log = logging.Logger | logging.LoggerAdapter[Any]
_locks: dict[tuple[str, str, str], asyncio.Lock] = {}
_admins: dict[str, ClusterAdmin] = {}
#: Per Cluster: hash of the owned objects last applied, and when.
_applied: dict[tuple[str, str, str], tuple[str, float]] = {}
RESYNC_S = 30.0


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event(obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """A Kubernetes Event on ``obj`` (kopf posts it in the background)."""
    kopf.event(cast(kopf.Body, obj), type=type_, reason=reason, message=message)


def _lock(kind: str, namespace: str, name: str) -> asyncio.Lock:
    return _locks.setdefault((kind, namespace, name), asyncio.Lock())


def _kube(memo: Any) -> Kube:
    kube: Kube = memo.kube
    return kube


def _admin(bootstrap: str) -> ClusterAdmin:
    if bootstrap not in _admins:
        _admins[bootstrap] = KafkaClusterAdmin(bootstrap)
    return _admins[bootstrap]


def _bootstrap(ref: ClusterRef, spec: ClusterSpec, meta: Mapping[str, Any]) -> str:
    annotations = meta.get("annotations") or {}
    return str(annotations.get(BOOTSTRAP_ANNOTATION) or bootstrap_servers(ref, spec))


async def _describe(admin: ClusterAdmin, logger: Log
                    ) -> BrokerState | None:
    try:
        return await admin.describe()
    except AdminError as error:
        logger.info("brokers not reachable: %s", error)
        return None


# -- lifecycle -----------------------------------------------------------------------------------

@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Use ``HEADRACE_KUBECONFIG`` when set (tests, out-of-cluster runs), else kopf's default."""
    path = os.environ.get("HEADRACE_KUBECONFIG")
    if path:
        os.environ["KUBECONFIG"] = path
        info: kopf.ConnectionInfo | None = kopf.login_with_kubeconfig(**kwargs)
        return info
    return kopf.login_via_client(**kwargs)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: Any, logger: Log, **_: Any) -> None:
    # State of a previous run in this process (tests run the operator more than once).
    _locks.clear()
    await _close_admins()
    _applied.clear()
    settings.peering.standalone = True  # one operator replica (the chart enforces 0 or 1)
    settings.posting.level = logging.INFO
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    memo.kube = Kube(KubeConfig.load(os.environ.get("HEADRACE_KUBECONFIG")))
    port = os.environ.get("HEADRACE_OPERATOR_METRICS_PORT", "8080")
    if port != "off":
        bound = metrics.serve(int(port))
        logger.info("metrics on port %d", bound)


@kopf.on.cleanup()
async def cleanup(memo: Any, **_: Any) -> None:
    await _close_admins()
    await _kube(memo).close()


async def _close_admins() -> None:
    admins = list(_admins.values())
    _admins.clear()
    for admin in admins:
        await admin.close()


# -- Cluster -------------------------------------------------------------------------------------

@kopf.on.resume(GROUP, VERSION, CLUSTER_PLURAL)
@kopf.on.create(GROUP, VERSION, CLUSTER_PLURAL)
@kopf.on.update(GROUP, VERSION, CLUSTER_PLURAL, field="spec")
@kopf.timer(GROUP, VERSION, CLUSTER_PLURAL, interval=RECONCILE_INTERVAL_S, initial_delay=1)
async def cluster_handler(body: kopf.Body, memo: Any, logger: Log, **_: Any) -> None:
    meta = body["metadata"]
    async with _lock("Cluster", meta["namespace"], meta["name"]):
        # kopf's body may predate our own last status patch: reconcile the stored object.
        fresh = await _kube(memo).get(API_VERSION, CLUSTER_KIND, meta["namespace"], meta["name"])
        if fresh is None or (fresh.get("metadata") or {}).get("deletionTimestamp"):
            return
        with metrics.reconciling("Cluster") as outcome:
            outcome.result = await reconcile_cluster(fresh, _kube(memo), logger)


async def _zones(kube: Kube, spec: ClusterSpec) -> list[str]:
    if spec.zone_names:
        return list(spec.zone_names)
    nodes = await kube.list("v1", "Node", None)
    found = {((n.get("metadata") or {}).get("labels") or {}).get(spec.topology_key)
             for n in nodes}
    return sorted(z for z in found if z)


def _pod_state(pod: Mapping[str, Any]) -> PodState | None:
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


async def reconcile_cluster(body: Mapping[str, Any], kube: Kube,
                            logger: Log) -> str:
    meta, status = body["metadata"], dict(body.get("status") or {})
    ref = ClusterRef(meta["name"], meta["namespace"], meta["uid"])
    generation = int(meta.get("generation") or 0)
    now = _now()
    conditions = list(status.get("conditions") or [])
    try:
        spec = ClusterSpec.parse(body.get("spec") or {})
    except (SpecError, ValueError, TypeError) as invalid:
        message = str(invalid)
        conditions = set_condition(conditions, "Ready", False, "InvalidSpec", message, now,
                                   generation)
        conditions = set_condition(conditions, "Degraded", True, "InvalidSpec", message, now,
                                   generation)
        await _patch_status(kube, "Cluster", ref.namespace, ref.name,
                            {"conditions": conditions, "observedGeneration": generation}, status)
        if status.get("observedGeneration") != generation:
            _event(body, "Warning", reason="InvalidSpec", message=message)
        return "invalid"

    zones, zones_refused = stable_zones(status.get("zones") or [], await _zones(kube, spec),
                                        named=bool(spec.zone_names))
    if zones_refused and status.get("zonesRefused") != zones_refused:
        _event(body, "Warning", reason="ZonesRefused", message=zones_refused)
    groups = zone_groups(spec.brokers, zones)
    current_sizes: dict[int, int] = {}
    sts_names = {}
    for group in groups:
        name = ref.statefulset_name(group)
        sts_names[group.index] = name
        existing = await kube.get("apps/v1", "StatefulSet", ref.namespace, name)
        if existing is not None:
            current_sizes[group.index] = int((existing.get("spec") or {}).get("replicas") or 0)

    admin = _admin(_bootstrap(ref, spec, meta))
    brokers = await _describe(admin, logger) if current_sizes else None
    plan: ScalePlan = plan_scale(groups, current_sizes, brokers)
    if plan.refused and status.get("scaleRefused") != plan.refused:
        _event(body, "Warning", reason="ScaleRefused", message=plan.refused)

    error: str | None = None
    sizes = {sts_names[i]: n for i, n in plan.replicas.items()}
    desired = desired_objects(ref, spec, zones, sizes)
    digest = _digest(desired)
    applying = _needs_apply(ref, digest)
    for obj in desired if applying else []:
        try:
            result = await kube.apply(obj)
        except KubeError as failure:
            error = f"{obj['kind']} {obj['metadata']['name']}: {failure}"
            logger.warning("apply failed: %s", error)
            continue
        if result != "unchanged":
            _event(body, "Normal", reason=result.capitalize(),
                   message=f"{obj['kind']} {obj['metadata']['name']} {result}")
    if applying and error is None:  # all applied: skip identical re-applies until a resync
        _applied[(ref.namespace, ref.name, ref.uid)] = (digest, time.monotonic())

    for topic, assignment in plan.reassignments.items():
        try:
            await admin.reassign(topic, assignment)
            _event(body, "Normal", reason=plan.phase,
                      message=f"reassigning {len(assignment)} partitions of {topic}")
        except AdminError as failure:
            error = str(failure)
            _event(body, "Warning", reason="ReassignmentFailed", message=error)
    if plan.phase != status.get("phase") and plan.phase != "Steady" and not plan.refused:
        _event(body, "Normal", reason=plan.phase, message=plan.message or plan.phase)

    roll = await _roll(body, kube, ref, spec, brokers, sum(current_sizes.values()))
    pods = await kube.list("v1", "Pod", ref.namespace, ref.selector("broker"))
    ready_per_zone: dict[str, int] = {}
    ready_count = 0
    for pod in pods:
        state = _pod_state(pod)
        if state is None or not state.ready:
            continue
        ready_count += 1
        zone = zone_of_broker(state.broker_id, groups) or "default"
        ready_per_zone[zone] = ready_per_zone.get(zone, 0) + 1
    conditions = cluster_conditions(conditions, plan, roll, ready_count, spec.brokers, brokers,
                                    now, generation, error, zones_refused)
    new_status: dict[str, Any] = {
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
        "bootstrapServers": bootstrap_servers(ref, spec),
        "appliedRevision": broker_revision(spec, metadata_endpoint(ref, spec)),
    }
    if brokers is not None:
        new_status.update(controllerId=brokers.controller_id,
                          underReplicatedPartitions=brokers.under_replicated,
                          offlinePartitions=brokers.offline)
    await _patch_status(kube, "Cluster", ref.namespace, ref.name, new_status, status)
    if plan.refused or zones_refused:
        return "refused"
    return "error" if error else "success"


async def _roll(body: Mapping[str, Any], kube: Kube, ref: ClusterRef, spec: ClusterSpec,
                brokers: BrokerState | None, expected_pods: int) -> RollDecision:
    pods = await kube.list("v1", "Pod", ref.namespace, ref.selector("broker"))
    states = [s for s in (_pod_state(p) for p in pods) if s is not None]
    if not states:
        return RollDecision("done")
    decision = plan_roll(states, broker_revision(spec, metadata_endpoint(ref, spec)),
                         brokers.partitions if brokers is not None else None,
                         default_min_isr=spec.min_insync_replicas,
                         controller_id=brokers.controller_id if brokers is not None else None,
                         expected_pods=expected_pods)
    if decision.action == "restart" and decision.pod:
        _event(body, "Normal", reason="RollingRestart",
                  message=f"restarting {decision.pod} ({decision.reason})")
        await kube.delete("v1", "Pod", ref.namespace, decision.pod)
    return decision


def _digest(objects: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(objects, sort_keys=True).encode()).hexdigest()


def _needs_apply(ref: ClusterRef, digest: str) -> bool:
    """Apply owned objects when they change, and re-check them every RESYNC_S (drift)."""
    previous = _applied.get((ref.namespace, ref.name, ref.uid))
    return previous is None or previous[0] != digest or \
        time.monotonic() - previous[1] >= RESYNC_S


async def _patch_status(kube: Kube, kind: str, namespace: str, name: str,
                        status: dict[str, Any], current: Mapping[str, Any] | None = None) -> None:
    """Patch the status subresource, unless ``current`` already says the same."""
    if current is not None and all(current.get(k) == v for k, v in status.items()):
        return
    try:
        await kube.patch(API_VERSION, kind, namespace, name, {"status": status},
                         subresource="status")
    except KubeError as error:
        if error.status != 404:  # the resource is being deleted
            raise


# -- Topic ---------------------------------------------------------------------------------------

@kopf.on.resume(GROUP, VERSION, TOPIC_PLURAL)
@kopf.on.create(GROUP, VERSION, TOPIC_PLURAL)
@kopf.on.update(GROUP, VERSION, TOPIC_PLURAL, field="spec")
@kopf.timer(GROUP, VERSION, TOPIC_PLURAL, interval=RECONCILE_INTERVAL_S, initial_delay=1)
async def topic_handler(body: kopf.Body, memo: Any, logger: Log, **_: Any) -> None:
    meta = body["metadata"]
    if meta.get("deletionTimestamp"):
        return
    async with _lock("Topic", meta["namespace"], meta["name"]):
        fresh = await _kube(memo).get(API_VERSION, "Topic", meta["namespace"], meta["name"])
        if fresh is None or (fresh.get("metadata") or {}).get("deletionTimestamp"):
            return
        with metrics.reconciling("Topic") as outcome:
            outcome.result = await reconcile_topic(fresh, _kube(memo), logger)


async def _topic_context(body: Mapping[str, Any], kube: Kube
                         ) -> tuple[TopicSpec, ClusterSpec, ClusterAdmin, list[str]] | str:
    """The topic's spec, its cluster's spec, an admin client and zones; or why not."""
    meta = body["metadata"]
    try:
        spec = TopicSpec.parse(meta["name"], body.get("spec") or {})
    except (SpecError, ValueError, TypeError) as error:
        return f"InvalidSpec:{error}"
    cluster = await kube.get(API_VERSION, CLUSTER_KIND, meta["namespace"], spec.cluster_ref)
    if cluster is None:
        return f"ClusterNotFound:no Cluster {spec.cluster_ref!r} in namespace {meta['namespace']}"
    try:
        cluster_spec = ClusterSpec.parse(cluster.get("spec") or {})
    except SpecError as error:
        return f"ClusterInvalid:cluster {spec.cluster_ref} has an invalid spec: {error}"
    cmeta = cluster["metadata"]
    ref = ClusterRef(cmeta["name"], cmeta["namespace"], str(cmeta.get("uid", "")))
    zones = list((cluster.get("status") or {}).get("zones") or cluster_spec.zone_names)
    return spec, cluster_spec, _admin(_bootstrap(ref, cluster_spec, cmeta)), zones


async def reconcile_topic(body: Mapping[str, Any], kube: Kube,
                          logger: Log) -> str:
    meta, status = body["metadata"], dict(body.get("status") or {})
    namespace, name = meta["namespace"], meta["name"]
    generation = int(meta.get("generation") or 0)
    now = _now()
    conditions = list(status.get("conditions") or [])

    async def report(ready: bool, reason: str, message: str, extra: dict[str, Any] | None = None,
                     warn: bool = False) -> None:
        new = set_condition(conditions, "Ready", ready, reason, message, now, generation)
        previous: Mapping[str, Any] = next(
            (c for c in conditions if c.get("type") == "Ready"), {})
        if warn and (previous.get("reason") != reason or previous.get("message") != message):
            _event(body, "Warning", reason=reason, message=message)
        await _patch_status(kube, "Topic", namespace, name,
                            {"conditions": new, "observedGeneration": generation,
                             **(extra or {})}, status)

    context = await _topic_context(body, kube)
    if isinstance(context, str):
        reason, _, message = context.partition(":")
        await report(False, reason, message, warn=True)
        return "invalid"
    spec, cluster_spec, admin, zones = context
    if spec.replication_factor > cluster_spec.brokers:
        await report(False, "ReplicationFactorTooLarge",
                     f"replicationFactor {spec.replication_factor} exceeds the "
                     f"{cluster_spec.brokers} brokers of cluster {spec.cluster_ref}", warn=True)
        return "invalid"
    try:
        brokers = await admin.describe()
        observed = await admin.topic(spec.topic_name)
    except AdminError as error:
        await report(False, "BrokersUnavailable", str(error), warn=True)
        return "error"
    groups = zone_groups(cluster_spec.brokers, zones)
    slots = [BrokerSlot(b, zone_of_broker(b, groups) if b // BROKER_ID_STRIDE < len(groups)
                        else None) for b in sorted(brokers.live_brokers)]
    others = [a for t, a in brokers.assignments().items() if t != spec.topic_name]
    plan = plan_topic(spec, observed, slots, others)
    blocking = [p for p in plan.problems if p[0] == "ReplicationFactorTooLarge"]
    if blocking:
        await report(False, blocking[0][0], blocking[0][1], warn=True)
        return "invalid"
    existed_before = bool(status.get("created"))
    drift = describe_drift(plan, observed, existed_before,
                           dict(status.get("appliedConfig") or {}),
                           status.get("appliedReplicationFactor"))
    try:
        if plan.create is not None:
            await admin.create_topic(spec.topic_name, plan.create, plan.config_set)
            _event(body, "Normal", reason="Created",
                      message=f"topic {spec.topic_name} created with {len(plan.create)} "
                      "partitions")
        else:
            if plan.new_partitions:
                await admin.create_partitions(spec.topic_name, plan.new_partitions)
                _event(body, "Normal", reason="PartitionsAdded",
                          message=f"partitions {sorted(plan.new_partitions)} added")
            if plan.config_set or plan.config_reset:
                await admin.alter_topic_config(spec.topic_name, plan.config_set,
                                               list(plan.config_reset))
                _event(body, "Normal", reason="ConfigUpdated",
                          message=f"set {sorted(plan.config_set)}, "
                          f"reset {list(plan.config_reset)}")
            if plan.reassignment:
                await admin.reassign(spec.topic_name, plan.reassignment)
    except AdminError as error:
        await report(False, "KafkaError", str(error), warn=True)
        return "error"
    for difference in drift:
        _event(body, "Warning", reason="DriftCorrected", message=difference)
    try:
        described = await admin.describe()
    except AdminError:
        described = brokers
    partitions = [{"partition": p.partition, "replicas": list(p.replicas),
                   "leader": p.leader if p.leader is not None else -1, "isr": list(p.isr)}
                  for p in described.partitions if p.topic == spec.topic_name]
    extra = {"topicName": spec.topic_name, "partitionCount": len(partitions),
             "partitions": partitions, "created": True,
             "appliedConfig": dict(spec.config),
             "appliedReplicationFactor": spec.replication_factor,
             "drift": drift or status.get("drift") or []}
    if plan.problems:
        reason, message = plan.problems[0]
        await report(False, reason, message, extra, warn=True)
        return "invalid"
    await report(True, "Reconciled", f"{len(partitions)} partitions in sync with the spec",
                 extra)
    return "success"


@kopf.on.delete(GROUP, VERSION, TOPIC_PLURAL)
async def topic_deleted(body: kopf.Body, memo: Any, logger: Log, **_: Any) -> None:
    """Delete the Kafka topic (deletionPolicy delete) or leave it (retain)."""
    meta = body["metadata"]
    async with _lock("Topic", meta["namespace"], meta["name"]):
        with metrics.reconciling("Topic"):
            context = await _topic_context(body, _kube(memo))
            if isinstance(context, str):
                logger.info("not deleting a Kafka topic: %s", context)
                return
            spec, _cluster, admin, _zone_names = context
            if spec.deletion_policy == "retain":
                logger.info("keeping Kafka topic %s (deletionPolicy retain)", spec.topic_name)
                return
            try:
                if await admin.topic(spec.topic_name) is not None:
                    await admin.delete_topic(spec.topic_name)
            except AdminError as error:
                raise kopf.TemporaryError(f"cannot delete topic: {error}", delay=5) from None
