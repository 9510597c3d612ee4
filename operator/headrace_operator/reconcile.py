"""One reconcile of a Cluster or a Topic: observe, call a planner, carry out its decision, report.

Every decision is made by ``planning``, every owned object by ``resources``, every status by
``status``; this module only fetches (``Kube``, ``ClusterAdmin``), acts and writes. It knows
nothing of kopf: the handlers hand it the stored object, a logger and an event sink, and turn
what it returns (a result label for the metrics) or raises back into kopf's terms. A failing
step is reported as a condition and an event, and retried on the next timer tick.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from headrace_operator.admin import AdminError, AdminPool, ClusterAdmin
from headrace_operator.crds import API_VERSION, CLUSTER_KIND
from headrace_operator.kube import Kube, KubeError
from headrace_operator.model import ClusterSpec, SpecError, TopicSpec, stable_zones, zone_groups
from headrace_operator.observe import (
    bootstrap_address,
    broker_slots,
    node_zones,
    pod_states,
    ready_brokers,
)
from headrace_operator.planning import (
    BrokerState,
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
    ClusterRef,
    bootstrap_servers,
    broker_revision,
    desired_objects,
    metadata_endpoint,
)
from headrace_operator.status import cluster_status, status_unchanged, topic_status

Log = logging.Logger | logging.LoggerAdapter[Any]
#: Owned objects are re-applied at least this often even when unchanged (drift by others).
RESYNC_S = 30.0


class EventSink(Protocol):
    """Posts a Kubernetes Event about ``obj`` (the handlers pass kopf's)."""

    def __call__(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None: ...


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digest(objects: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(objects, sort_keys=True).encode()).hexdigest()


class AppliedObjects:
    """Per Cluster: the hash of the owned objects last applied in full, and when."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._applied: dict[tuple[str, str, str], tuple[str, float]] = {}

    def needs_apply(self, ref: ClusterRef, digest: str) -> bool:
        """Apply owned objects when they change, and re-check them every RESYNC_S (drift)."""
        previous = self._applied.get((ref.namespace, ref.name, ref.uid))
        return previous is None or previous[0] != digest or \
            self._clock() - previous[1] >= RESYNC_S

    def applied(self, ref: ClusterRef, digest: str) -> None:
        self._applied[(ref.namespace, ref.name, ref.uid)] = (digest, self._clock())


class Reconciler:
    """The operator's clients and memory for one run: Kubernetes, the brokers, applied objects."""

    def __init__(self, kube: Kube, events: EventSink, admins: AdminPool | None = None) -> None:
        self.kube = kube
        self._event = events
        self._admins = admins or AdminPool()
        self._applied = AppliedObjects()

    async def close(self) -> None:
        await self._admins.close()
        await self.kube.close()

    # -- Cluster -------------------------------------------------------------------------------

    async def cluster(self, body: Mapping[str, Any], logger: Log) -> str:
        """Reconcile a Cluster; returns "success", "error", "invalid" or "refused"."""
        kube = self.kube
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
            await self._patch_status("Cluster", ref.namespace, ref.name,
                                     {"conditions": conditions, "observedGeneration": generation},
                                     status)
            if status.get("observedGeneration") != generation:
                self._event(body, "Warning", reason="InvalidSpec", message=message)
            return "invalid"

        found = list(spec.zone_names) if spec.zone_names else node_zones(
            await kube.list("v1", "Node", None), spec.topology_key)
        zones, zones_refused = stable_zones(status.get("zones") or [], found,
                                            named=bool(spec.zone_names))
        if zones_refused and status.get("zonesRefused") != zones_refused:
            self._event(body, "Warning", reason="ZonesRefused", message=zones_refused)
        groups = zone_groups(spec.brokers, zones)
        current_sizes: dict[int, int] = {}
        sts_names = {}
        for group in groups:
            name = ref.statefulset_name(group)
            sts_names[group.index] = name
            existing = await kube.get("apps/v1", "StatefulSet", ref.namespace, name)
            if existing is not None:
                current_sizes[group.index] = int((existing.get("spec") or {}).get("replicas") or 0)

        admin = self._admins.get(bootstrap_address(ref, spec, meta))
        brokers = await _describe(admin, logger) if current_sizes else None
        plan: ScalePlan = plan_scale(groups, current_sizes, brokers)
        if plan.refused and status.get("scaleRefused") != plan.refused:
            self._event(body, "Warning", reason="ScaleRefused", message=plan.refused)

        error: str | None = None
        sizes = {sts_names[i]: n for i, n in plan.replicas.items()}
        desired = desired_objects(ref, spec, zones, sizes)
        digest = _digest(desired)
        applying = self._applied.needs_apply(ref, digest)
        for obj in desired if applying else []:
            try:
                result = await kube.apply(obj)
            except KubeError as failure:
                error = f"{obj['kind']} {obj['metadata']['name']}: {failure}"
                logger.warning("apply failed: %s", error)
                continue
            if result != "unchanged":
                self._event(body, "Normal", reason=result.capitalize(),
                            message=f"{obj['kind']} {obj['metadata']['name']} {result}")
        if applying and error is None:  # all applied: skip identical re-applies until a resync
            self._applied.applied(ref, digest)

        for topic, assignment in plan.reassignments.items():
            try:
                await admin.reassign(topic, assignment)
                self._event(body, "Normal", reason=plan.phase,
                            message=f"reassigning {len(assignment)} partitions of {topic}")
            except AdminError as failure:
                error = str(failure)
                self._event(body, "Warning", reason="ReassignmentFailed", message=error)
        if plan.phase != status.get("phase") and plan.phase != "Steady" and not plan.refused:
            self._event(body, "Normal", reason=plan.phase, message=plan.message or plan.phase)

        revision = broker_revision(spec, metadata_endpoint(ref, spec))
        roll = await self._roll(body, ref, spec, revision, brokers, sum(current_sizes.values()))
        pods = await kube.list("v1", "Pod", ref.namespace, ref.selector("broker"))
        ready_count, ready_per_zone = ready_brokers(pods, groups)
        conditions = cluster_conditions(conditions, plan, roll, ready_count, spec.brokers,
                                        brokers, now, generation, error, zones_refused)
        new_status = cluster_status(spec, plan, groups, zones, conditions, generation,
                                    ready_count, ready_per_zone, zones_refused,
                                    bootstrap_servers(ref, spec), revision, brokers)
        await self._patch_status("Cluster", ref.namespace, ref.name, new_status, status)
        if plan.refused or zones_refused:
            return "refused"
        return "error" if error else "success"

    async def _roll(self, body: Mapping[str, Any], ref: ClusterRef, spec: ClusterSpec,
                    revision: str, brokers: BrokerState | None,
                    expected_pods: int) -> RollDecision:
        pods = await self.kube.list("v1", "Pod", ref.namespace, ref.selector("broker"))
        states = pod_states(pods)
        if not states:
            return RollDecision("done")
        decision = plan_roll(states, revision,
                             brokers.partitions if brokers is not None else None,
                             default_min_isr=spec.min_insync_replicas,
                             controller_id=brokers.controller_id if brokers is not None else None,
                             expected_pods=expected_pods)
        if decision.action == "restart" and decision.pod:
            self._event(body, "Normal", reason="RollingRestart",
                        message=f"restarting {decision.pod} ({decision.reason})")
            await self.kube.delete("v1", "Pod", ref.namespace, decision.pod)
        return decision

    async def _patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any],
                            current: Mapping[str, Any] | None = None) -> None:
        """Patch the status subresource, unless ``current`` already says the same."""
        if status_unchanged(current, status):
            return
        try:
            await self.kube.patch(API_VERSION, kind, namespace, name, {"status": status},
                                  subresource="status")
        except KubeError as error:
            if error.status != 404:  # the resource is being deleted
                raise

    # -- Topic ---------------------------------------------------------------------------------

    async def _topic_context(self, body: Mapping[str, Any]
                             ) -> tuple[TopicSpec, ClusterSpec, ClusterAdmin, list[str]] | str:
        """The topic's spec, its cluster's spec, an admin client and zones; or why not."""
        meta = body["metadata"]
        try:
            spec = TopicSpec.parse(meta["name"], body.get("spec") or {})
        except (SpecError, ValueError, TypeError) as error:
            return f"InvalidSpec:{error}"
        cluster = await self.kube.get(API_VERSION, CLUSTER_KIND, meta["namespace"],
                                      spec.cluster_ref)
        if cluster is None:
            return (f"ClusterNotFound:no Cluster {spec.cluster_ref!r} in namespace "
                    f"{meta['namespace']}")
        try:
            cluster_spec = ClusterSpec.parse(cluster.get("spec") or {})
        except SpecError as error:
            return f"ClusterInvalid:cluster {spec.cluster_ref} has an invalid spec: {error}"
        cmeta = cluster["metadata"]
        ref = ClusterRef(cmeta["name"], cmeta["namespace"], str(cmeta.get("uid", "")))
        zones = list((cluster.get("status") or {}).get("zones") or cluster_spec.zone_names)
        admin = self._admins.get(bootstrap_address(ref, cluster_spec, cmeta))
        return spec, cluster_spec, admin, zones

    async def topic(self, body: Mapping[str, Any], logger: Log) -> str:
        """Reconcile a Topic; returns "success", "error" or "invalid"."""
        meta, status = body["metadata"], dict(body.get("status") or {})
        namespace, name = meta["namespace"], meta["name"]
        generation = int(meta.get("generation") or 0)
        now = _now()
        conditions = list(status.get("conditions") or [])

        async def report(ready: bool, reason: str, message: str,
                         extra: dict[str, Any] | None = None, warn: bool = False) -> None:
            new = set_condition(conditions, "Ready", ready, reason, message, now, generation)
            previous: Mapping[str, Any] = next(
                (c for c in conditions if c.get("type") == "Ready"), {})
            if warn and (previous.get("reason") != reason or previous.get("message") != message):
                self._event(body, "Warning", reason=reason, message=message)
            await self._patch_status("Topic", namespace, name,
                                     {"conditions": new, "observedGeneration": generation,
                                      **(extra or {})}, status)

        context = await self._topic_context(body)
        if isinstance(context, str):
            reason, _, message = context.partition(":")
            await report(False, reason, message, warn=True)
            return "invalid"
        spec, cluster_spec, admin, zones = context
        if spec.replication_factor > cluster_spec.brokers:
            await report(False, "ReplicationFactorTooLarge",
                         f"replicationFactor {spec.replication_factor} exceeds the "
                         f"{cluster_spec.brokers} brokers of cluster {spec.cluster_ref}",
                         warn=True)
            return "invalid"
        try:
            brokers = await admin.describe()
            observed = await admin.topic(spec.topic_name)
        except AdminError as error:
            await report(False, "BrokersUnavailable", str(error), warn=True)
            return "error"
        slots = broker_slots(brokers.live_brokers, zone_groups(cluster_spec.brokers, zones))
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
                self._event(body, "Normal", reason="Created",
                            message=f"topic {spec.topic_name} created with "
                            f"{len(plan.create)} partitions")
            else:
                if plan.new_partitions:
                    await admin.create_partitions(spec.topic_name, plan.new_partitions)
                    self._event(body, "Normal", reason="PartitionsAdded",
                                message=f"partitions {sorted(plan.new_partitions)} added")
                if plan.config_set or plan.config_reset:
                    await admin.alter_topic_config(spec.topic_name, plan.config_set,
                                                   list(plan.config_reset))
                    self._event(body, "Normal", reason="ConfigUpdated",
                                message=f"set {sorted(plan.config_set)}, "
                                f"reset {list(plan.config_reset)}")
                if plan.reassignment:
                    await admin.reassign(spec.topic_name, plan.reassignment)
        except AdminError as error:
            await report(False, "KafkaError", str(error), warn=True)
            return "error"
        for difference in drift:
            self._event(body, "Warning", reason="DriftCorrected", message=difference)
        try:
            described = await admin.describe()
        except AdminError:
            described = brokers
        extra = topic_status(spec, described, drift, status)
        if plan.problems:
            reason, message = plan.problems[0]
            await report(False, reason, message, extra, warn=True)
            return "invalid"
        await report(True, "Reconciled",
                     f"{extra['partitionCount']} partitions in sync with the spec", extra)
        return "success"

    async def delete_topic(self, body: Mapping[str, Any], logger: Log) -> None:
        """Delete the Kafka topic (deletionPolicy delete) or leave it (retain).

        Raises AdminError when the brokers refuse; the caller retries.
        """
        context = await self._topic_context(body)
        if isinstance(context, str):
            logger.info("not deleting a Kafka topic: %s", context)
            return
        spec, _cluster, admin, _zone_names = context
        if spec.deletion_policy == "retain":
            logger.info("keeping Kafka topic %s (deletionPolicy retain)", spec.topic_name)
            return
        if await admin.topic(spec.topic_name) is not None:
            await admin.delete_topic(spec.topic_name)


async def _describe(admin: ClusterAdmin, logger: Log) -> BrokerState | None:
    try:
        return await admin.describe()
    except AdminError as error:
        logger.info("brokers not reachable: %s", error)
        return None
