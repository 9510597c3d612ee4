"""The operator's decisions, as pure functions of observed state.

Each reconcile observes Kubernetes and the brokers, calls one planner here and carries out what it
returns; nothing in this module performs I/O, so every decision (scale, drain, refuse, roll the
next pod, create or alter a topic, which conditions to report) is unit-tested without servers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from headrace.placement import (
    BrokerSlot,
    PlacementError,
    load_of,
    place_new_partitions,
    plan_reassignment,
)
from headrace_operator.model import TopicSpec, ZoneGroup

Assignment = dict[int, list[int]]


# -- observed state ------------------------------------------------------------------------------

@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int | None  # None (or -1 from Kafka): offline

    @property
    def offline(self) -> bool:
        return self.leader is None or self.leader < 0

    @property
    def under_replicated(self) -> bool:
        return len(self.isr) < len(self.replicas)


@dataclass(frozen=True)
class BrokerState:
    """What the brokers report about the cluster."""

    live_brokers: frozenset[int] = frozenset()
    controller_id: int | None = None
    partitions: tuple[PartitionState, ...] = ()
    reassigning: bool = False

    def assignments(self) -> dict[str, Assignment]:
        result: dict[str, Assignment] = {}
        for p in self.partitions:
            result.setdefault(p.topic, {})[p.partition] = list(p.replicas)
        return result

    @property
    def under_replicated(self) -> int:
        return sum(p.under_replicated for p in self.partitions)

    @property
    def offline(self) -> int:
        return sum(p.offline for p in self.partitions)


# -- scaling -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScalePlan:
    """What to do about broker count now.

    ``replicas``: StatefulSet size per zone group index to apply now. ``reassignments``: topic ->
    target assignment to submit to the brokers. ``refused``: why the spec cannot be applied (the
    cluster stays as it is). ``phase`` names the step for status and events.
    """

    phase: str
    replicas: dict[int, int]
    reassignments: dict[str, Assignment] = field(default_factory=dict)
    removing: tuple[int, ...] = ()
    refused: str | None = None
    message: str = ""


def slots_of(groups: Sequence[ZoneGroup],
             sizes: Mapping[int, int] | None = None) -> list[BrokerSlot]:
    """The brokers of ``groups`` (at ``sizes`` per group index, default their own size)."""
    return [BrokerSlot(g.broker_id(o), g.zone) for g in groups
            for o in range((sizes or {}).get(g.index, g.replicas))]


def _balanced_targets(slots: Sequence[BrokerSlot],
                      assignments: Mapping[str, Assignment]) -> dict[str, Assignment]:
    """Per-topic target assignments over ``slots``, topic by topic, counting the others' load."""
    targets: dict[str, Assignment] = {}
    for topic in sorted(assignments):
        others = [targets.get(t, assignments[t]) for t in sorted(assignments) if t != topic]
        load, leader_load = load_of(others)
        target = plan_reassignment(slots, assignments[topic], load=load, leader_load=leader_load)
        if target != assignments[topic]:
            targets[topic] = target
    return targets


def plan_scale(groups: Sequence[ZoneGroup], current_sizes: Mapping[int, int],
               brokers: BrokerState | None) -> ScalePlan:
    """Scale to ``groups``: grow and rebalance, or drain and then shrink, or refuse.

    ``current_sizes`` are the StatefulSets' current replicas by zone group index (missing: new
    group). ``brokers`` is None when the brokers cannot be reached: then nothing shrinks, since
    nobody can tell whether the brokers to remove still hold replicas. Partitions move only once
    every target broker is live and no reassignment is running.
    """
    desired = {g.index: g.replicas for g in groups}
    current = {g.index: current_sizes.get(g.index, 0) for g in groups}
    target_slots = slots_of(groups)
    target_ids = {s.broker_id for s in target_slots}
    current_ids = {s.broker_id for s in slots_of(groups, current)}
    removing = tuple(sorted(current_ids - target_ids))
    if brokers is None:
        if removing:
            now = {i: max(current[i], desired[i]) for i in desired}
            return ScalePlan("Draining", now, removing=removing,
                             message="brokers unreachable: cannot verify that brokers "
                             f"{list(removing)} hold no replicas; not removing them yet")
        if current != desired:
            return ScalePlan("ScalingUp", desired,
                             message=f"adding brokers {sorted(target_ids - current_ids)}")
        return ScalePlan("Steady", desired)
    assignments = brokers.assignments()
    max_rf = max((len(r) for a in assignments.values() for r in a.values()), default=0)

    if removing:
        if max_rf > len(target_ids):
            return ScalePlan("Refused", current, removing=removing, refused=(
                f"cannot remove brokers {list(removing)}: topics need replication factor "
                f"{max_rf} but only {len(target_ids)} brokers would remain"))
        zones_now = {g.zone for g in groups if current[g.index] > 0}
        zones_after = {g.zone for g in groups if g.replicas > 0}
        if len(zones_after) < max_rf <= len(zones_now):
            return ScalePlan("Refused", current, removing=removing, refused=(
                f"cannot remove brokers {list(removing)}: replication factor {max_rf} needs "
                f"{max_rf} zones but only {len(zones_after)} would keep brokers"))
        holding = sorted({b for a in assignments.values() for r in a.values() for b in r}
                         & set(removing))
        # Grow the zones that grow right away; shrink only after the drain.
        now = {i: max(current[i], desired[i]) for i in desired}
        if brokers.reassigning:
            return ScalePlan("Draining", now, removing=removing,
                             message="waiting for running reassignments to finish")
        if holding:
            if not target_ids <= brokers.live_brokers:
                return ScalePlan("Draining", now, removing=removing,
                                 message="waiting for the remaining brokers to be live")
            try:
                targets = _balanced_targets(target_slots, assignments)
            except PlacementError as error:
                return ScalePlan("Refused", current, removing=removing, refused=str(error))
            return ScalePlan("Draining", now, targets, removing,
                             message=f"moving replicas off brokers {holding}")
        return ScalePlan("ScalingDown", desired, removing=removing,
                         message=f"brokers {list(removing)} hold no replicas; removing them")

    if current != desired:
        added = sorted(target_ids - current_ids)
        return ScalePlan("ScalingUp", desired, message=f"adding brokers {added}")
    if brokers.reassigning or not target_ids <= brokers.live_brokers or not assignments:
        return ScalePlan("Steady", desired)
    try:
        targets = _balanced_targets(target_slots, assignments)
    except PlacementError:
        return ScalePlan("Steady", desired)
    if targets:
        return ScalePlan("Rebalancing", desired, targets,
                         message=f"moving replicas of {sorted(targets)} for balance")
    return ScalePlan("Steady", desired)


# -- rolling restarts ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PodState:
    name: str
    broker_id: int
    revision: str | None
    ready: bool
    terminating: bool = False


@dataclass(frozen=True)
class RollDecision:
    action: str  # "done" | "wait" | "restart"
    pod: str | None = None
    reason: str = ""


def restart_blockers(broker_id: int, partitions: Sequence[PartitionState],
                     min_isr: Mapping[str, int], default_min_isr: int) -> list[str]:
    """Partitions that would fall below min.insync.replicas if ``broker_id`` restarted now.

    Partitions whose replication factor is at most min.insync.replicas can never survive a
    restart, so they do not block (otherwise the cluster could never be rolled).
    """
    blockers = []
    for p in partitions:
        floor = min_isr.get(p.topic, default_min_isr)
        if broker_id in p.isr and len(p.isr) - 1 < floor < len(p.replicas):
            blockers.append(f"{p.topic}-{p.partition}")
    return blockers


def plan_roll(pods: Sequence[PodState], target_revision: str,
              partitions: Sequence[PartitionState] | None, min_isr: Mapping[str, int] | None = None,
              default_min_isr: int = 1, controller_id: int | None = None,
              expected_pods: int | None = None) -> RollDecision:
    """Pick the next broker pod to restart, one at a time, never below min.insync.replicas.

    Waits while any pod is terminating or an up-to-date pod is not ready (a restarted broker
    is back only when ready, i.e. caught up). Outdated pods that are not ready go first (they
    serve nothing, and a new revision may be their fix); the controller goes last.
    ``partitions`` is None when the brokers cannot be asked: only broken pods restart then.
    """
    outdated = [p for p in pods if p.revision != target_revision]
    if not outdated:
        return RollDecision("done")
    if any(p.terminating for p in pods):
        return RollDecision("wait", reason="a broker pod is terminating")
    if expected_pods is not None and len(pods) < expected_pods:
        # A deleted pod not yet recreated by its StatefulSet counts as not ready.
        return RollDecision("wait", reason=f"waiting for {expected_pods - len(pods)} broker "
                            "pod(s) to be recreated")
    not_ready_current = [p.name for p in pods if not p.ready and p.revision == target_revision]
    if not_ready_current:
        return RollDecision("wait", reason=f"waiting for {not_ready_current[0]} to be ready")
    broken = sorted((p for p in outdated if not p.ready), key=lambda p: p.broker_id)
    if broken:
        return RollDecision("restart", broken[0].name, "outdated and not ready")
    if partitions is None:
        return RollDecision("wait", reason="brokers unreachable: cannot check in-sync replicas")
    order = sorted(outdated, key=lambda p: (p.broker_id == controller_id, p.broker_id))
    reasons = []
    for pod in order:
        blockers = restart_blockers(pod.broker_id, partitions, min_isr or {}, default_min_isr)
        if not blockers:
            return RollDecision("restart", pod.name, "outdated revision")
        reasons.append(f"{pod.name}: {', '.join(blockers[:3])}")
    return RollDecision("wait", reason="restart would leave partitions under min.insync.replicas "
                        + "; ".join(reasons[:2]))


# -- topics --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ObservedTopic:
    assignment: Assignment
    config: dict[str, str]  # explicitly set (non-default) topic configs


@dataclass(frozen=True)
class TopicPlan:
    create: Assignment | None = None
    new_partitions: Assignment | None = None
    reassignment: Assignment | None = None
    config_set: dict[str, str] = field(default_factory=dict)
    config_reset: tuple[str, ...] = ()
    problems: tuple[tuple[str, str], ...] = ()  # (reason, message)


def plan_topic(spec: TopicSpec, observed: ObservedTopic | None, brokers: Sequence[BrokerSlot],
               other_topics: Sequence[Assignment] = ()) -> TopicPlan:
    """How to make the topic in Kafka match ``spec`` (Kubernetes is the source of truth)."""
    load, leader_load = load_of(other_topics)
    if spec.replication_factor > len(brokers):
        return TopicPlan(problems=(("ReplicationFactorTooLarge",
                                    f"replicationFactor {spec.replication_factor} exceeds the "
                                    f"{len(brokers)} brokers of cluster {spec.cluster_ref}"),))
    if observed is None:
        assignment = place_new_partitions(brokers, spec.partitions, spec.replication_factor,
                                          load=load, leader_load=leader_load)
        return TopicPlan(create=assignment, config_set=dict(spec.config))
    problems: list[tuple[str, str]] = []
    current = len(observed.assignment)
    new_partitions = None
    if spec.partitions < current:
        problems.append(("PartitionDecreaseRefused",
                         f"topic has {current} partitions; Kafka cannot remove partitions, so "
                         f"spec.partitions {spec.partitions} is not applied"))
    elif spec.partitions > current:
        new_partitions = place_new_partitions(
            brokers, spec.partitions - current, spec.replication_factor,
            existing=observed.assignment, first_partition=current,
            load=load, leader_load=leader_load)
    reassignment = None
    if any(len(r) != spec.replication_factor for r in observed.assignment.values()):
        target = plan_reassignment(brokers, observed.assignment, spec.replication_factor,
                                   load=load, leader_load=leader_load)
        reassignment = {p: r for p, r in target.items() if r != observed.assignment[p]}
    config_set = {k: v for k, v in spec.config.items() if observed.config.get(k) != v}
    config_reset = tuple(sorted(k for k in observed.config if k not in spec.config))
    return TopicPlan(None, new_partitions, reassignment or None, config_set, config_reset,
                     tuple(problems))


def describe_drift(plan: TopicPlan, observed: ObservedTopic | None, existed_before: bool,
                   applied_config: Mapping[str, str],
                   applied_replication_factor: int | None = None) -> list[str]:
    """Differences someone made in Kafka behind Kubernetes' back, which ``plan`` undoes.

    A difference is drift when Kafka no longer holds what the operator last applied
    (``applied_config`` / ``applied_replication_factor``, kept in the resource's status); a
    difference caused by a spec change is just the change being applied.
    """
    drift = []
    if plan.create is not None and existed_before:
        drift.append("topic was missing in Kafka (deleted outside Kubernetes); recreated")
    current = observed.config if observed is not None else {}
    drift += [f"config {k} was changed in Kafka to {current.get(k)!r}; set back to "
              f"{applied_config[k]!r}" for k in sorted(plan.config_set)
              if k in applied_config and applied_config[k] == plan.config_set[k]]
    drift += [f"config {k} was set in Kafka but not in the spec; reset"
              for k in plan.config_reset if k not in applied_config]
    if plan.reassignment and observed is not None and applied_replication_factor is not None \
            and any(len(r) == applied_replication_factor for r in plan.reassignment.values()):
        drift.append("replication factor was changed in Kafka; reassigned back")
    return drift


# -- conditions ----------------------------------------------------------------------------------

def set_condition(conditions: Sequence[Mapping[str, Any]], type_: str, status: bool,
                  reason: str, message: str, now: str,
                  generation: int | None = None) -> list[dict[str, Any]]:
    """Conditions with ``type_`` set; ``lastTransitionTime`` changes only when the status does."""
    status_text = "True" if status else "False"
    result: list[dict[str, Any]] = []
    found = False
    for condition in conditions:
        if condition.get("type") != type_:
            result.append(dict(condition))
            continue
        found = True
        changed = condition.get("status") != status_text
        result.append({**condition, "status": status_text, "reason": reason, "message": message,
                       "lastTransitionTime": now if changed else condition.get(
                           "lastTransitionTime", now)})
    if not found:
        result.append({"type": type_, "status": status_text, "reason": reason,
                       "message": message, "lastTransitionTime": now})
    if generation is not None:
        for condition in result:
            if condition["type"] == type_:
                condition["observedGeneration"] = generation
    return result


def cluster_conditions(previous: Sequence[Mapping[str, Any]], plan: ScalePlan,
                       roll: RollDecision, brokers_ready: int, brokers_wanted: int,
                       brokers: BrokerState | None, now: str, generation: int,
                       error: str | None = None, zones_refused: str | None = None
                       ) -> list[dict[str, Any]]:
    """Ready, Progressing and Degraded for a Cluster, from the plans and observations."""
    conditions = [dict(c) for c in previous]
    progressing = plan.phase in ("ScalingUp", "ScalingDown", "Draining", "Rebalancing") \
        or roll.action != "done"
    if progressing:
        reason = plan.phase if plan.phase != "Steady" else "RollingRestart"
        message = plan.message or roll.reason
        conditions = set_condition(conditions, "Progressing", True, reason, message, now,
                                   generation)
    else:
        conditions = set_condition(conditions, "Progressing", False, "Reconciled",
                                   "spec applied", now, generation)
    problems = []
    if zones_refused:
        problems.append(("ZonesRefused", zones_refused))
    if plan.refused:
        problems.append(("ScaleRefused", plan.refused))
    if error:
        problems.append(("ReconcileError", error))
    if brokers is None:
        problems.append(("BrokersUnreachable", "the brokers' admin API does not answer"))
    elif brokers.offline:
        problems.append(("OfflinePartitions", f"{brokers.offline} partitions have no leader"))
    if brokers is not None and brokers.under_replicated:
        problems.append(("UnderReplicatedPartitions",
                         f"{brokers.under_replicated} partitions are under-replicated"))
    if problems:
        conditions = set_condition(conditions, "Degraded", True, problems[0][0],
                                   "; ".join(m for _, m in problems), now, generation)
    else:
        conditions = set_condition(conditions, "Degraded", False, "Healthy",
                                   "no problems found", now, generation)
    refused = ("ZonesRefused" if zones_refused else "ScaleRefused" if plan.refused else None)
    ready = brokers_ready >= brokers_wanted and brokers is not None and not brokers.offline \
        and refused is None and error is None
    conditions = set_condition(
        conditions, "Ready", ready,
        "AllBrokersReady" if ready else (refused or "BrokersNotReady"),
        f"{brokers_ready}/{brokers_wanted} brokers ready", now, generation)
    return conditions
