"""The controller's and the leader's decisions as pure functions over cluster metadata.

Given a :class:`~headrace.cluster.model.ClusterSnapshot` these compute the partition states that
should be written (leader elections on broker loss, restart or controlled shutdown, ISR shrink
and expansion, preferred-leader election, initial states for new topics), and which partitions
count as under-replicated, under min ISR or offline (the replication gauges). Keeping them free
of etcd and sockets lets every rule be tested directly; the controller only applies their output
with compare-and-swap.

Rules (Kafka's, simplified where noted):

* A broker that is gone, restarted (new broker epoch) or shutting down leaves every ISR unless it
  is the last member, so a clean election stays possible when it returns. A broker whose data
  directory changed (wiped disk, new ``log_dir_id``) always leaves: it no longer has the data.
* A leader stays leader only while it is live, in the ISR, not shutting down, and still the same
  incarnation that was elected (``leader_broker_epoch``); otherwise the first eligible ISR member
  in assignment order is elected and the leader epoch bumped. With no eligible ISR member the
  partition goes offline (leader -1) unless the topic allows unclean election.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from headrace.cluster.model import (
    NO_LEADER,
    BrokerRegistration,
    ClusterSnapshot,
    PartitionState,
    SeenBroker,
    TopicRecord,
)


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What the controller should write: partition states first, then ``seen`` records."""

    partitions: list[PartitionState] = field(default_factory=list)
    seen: dict[int, SeenBroker] = field(default_factory=dict)
    #: For each ``seen`` update, the partitions whose change must be persisted first (those
    #: that named the broker's previous incarnation); other partitions' races do not hold it up.
    seen_after: dict[int, set[tuple[str, int]]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.partitions or self.seen)


@dataclass(frozen=True, slots=True)
class BrokerHealth:
    """How one replica's broker looks to the controller right now."""

    live: bool
    restarted: bool
    wiped: bool
    shutting_down: bool
    broker_epoch: int

    @property
    def can_lead(self) -> bool:
        return self.live and not self.wiped

    def must_leave_isr(self) -> bool:
        return not self.live or self.restarted or self.wiped or self.shutting_down


_GONE = BrokerHealth(live=False, restarted=False, wiped=False, shutting_down=False, broker_epoch=-1)


def broker_health(
    brokers: Mapping[int, BrokerRegistration], seen: Mapping[int, SeenBroker]
) -> dict[int, BrokerHealth]:
    health: dict[int, BrokerHealth] = {}
    for broker_id, registration in brokers.items():
        previous = seen.get(broker_id)
        health[broker_id] = BrokerHealth(
            live=True,
            restarted=previous is not None and previous.broker_epoch != registration.broker_epoch,
            wiped=previous is not None and previous.log_dir_id != registration.log_dir_id,
            shutting_down=registration.shutting_down,
            broker_epoch=registration.broker_epoch,
        )
    return health


def isr_candidates(
    brokers: Mapping[int, BrokerRegistration], seen: Mapping[int, SeenBroker]
) -> frozenset[int]:
    """Brokers a leader may (re-)admit to an ISR.

    Kafka's rule (KIP-841): never a fenced or shutting-down replica. Here that is a broker
    that is not registered, is shutting down, or whose current incarnation the controller
    has not yet seen: the controller is about to drop such a broker from every ISR, so
    admitting it first would only make the ISR flap (and acks=all fail in between).
    """
    return frozenset(
        broker_id for broker_id, health in broker_health(brokers, seen).items()
        if not health.must_leave_isr()
    )


def reconcile_partition(
    state: PartitionState, health: Mapping[int, BrokerHealth], *, unclean: bool
) -> PartitionState | None:
    """The new state for one partition, or None when nothing needs to change."""
    original = state
    completed = complete_reassignment(state)
    if completed is not None:
        state = completed
    changed = _reconcile_liveness(state, health, unclean=unclean)
    if changed is not None:
        if completed is not None:
            # One write, one partition epoch step for both changes.
            changed = replace(changed, partition_epoch=original.partition_epoch + 1)
        return changed
    return completed


def _reconcile_liveness(
    state: PartitionState, health: Mapping[int, BrokerHealth], *, unclean: bool
) -> PartitionState | None:
    def of(broker_id: int) -> BrokerHealth:
        return health.get(broker_id, _GONE)

    isr = [b for b in state.isr if not of(b).must_leave_isr()]
    if not isr:
        # Keep the last member (unless its data is gone) so that it can be re-elected cleanly.
        survivors = [b for b in state.isr if not of(b).wiped]
        isr = survivors[-1:] if state.leader not in survivors else [state.leader]

    leader = state.leader
    leader_health = of(leader)
    leader_ok = (
        leader != NO_LEADER
        and leader in isr
        and leader_health.can_lead
        and not leader_health.shutting_down
        and leader_health.broker_epoch == state.leader_broker_epoch
    )
    if not leader_ok:
        candidates = [b for b in state.replicas if b in isr and of(b).can_lead]
        preferred = [b for b in candidates if not of(b).shutting_down]
        # A shutting-down broker is the last resort: better it leads than the partition is offline.
        chosen = (preferred or candidates or [NO_LEADER])[0]
        if chosen == NO_LEADER and unclean:
            fallback = [b for b in state.replicas if of(b).live and not of(b).shutting_down]
            if fallback:
                chosen = fallback[0]
                isr = [chosen]
        leader = chosen

    new_leader_broker_epoch = of(leader).broker_epoch if leader != NO_LEADER else -1
    leadership_changed = (
        leader != state.leader or new_leader_broker_epoch != state.leader_broker_epoch
    )
    new_isr = tuple(isr)
    if not leadership_changed and new_isr == state.isr:
        return None
    return state.with_changes(
        leader=leader,
        leader_epoch=state.leader_epoch + 1 if leadership_changed else state.leader_epoch,
        leader_broker_epoch=new_leader_broker_epoch,
        isr=new_isr,
    )


def reconcile(snapshot: ClusterSnapshot) -> Reconciliation:
    """All partition changes the controller owes the cluster in its current state."""
    health = broker_health(snapshot.brokers, snapshot.seen)
    changed: list[PartitionState] = []
    for key in sorted(snapshot.partitions):
        state = snapshot.partitions[key]
        topic = snapshot.topics.get(state.topic)
        unclean = topic.unclean_leader_election if topic is not None else False
        new_state = reconcile_partition(state, health, unclean=unclean)
        if new_state is not None:
            changed.append(new_state)
    seen = {
        broker_id: SeenBroker(registration.broker_epoch, registration.log_dir_id)
        for broker_id, registration in snapshot.brokers.items()
        if snapshot.seen.get(broker_id)
        != SeenBroker(registration.broker_epoch, registration.log_dir_id)
    }
    seen_after = {
        broker_id: {
            (s.topic, s.partition)
            for s in changed
            if broker_id in snapshot.partitions[s.topic, s.partition].isr
            or broker_id == snapshot.partitions[s.topic, s.partition].leader
        }
        for broker_id in seen
    }
    return Reconciliation(partitions=changed, seen=seen, seen_after=seen_after)


def _elected_states(
    snapshot: ClusterSnapshot, only: Iterable[tuple[str, int]] | None
) -> Iterator[PartitionState]:
    """The states an election looks at: ``only`` those partitions (unknown ones skipped) or all,
    in key order."""
    keys = sorted(snapshot.partitions) if only is None else only
    for key in keys:
        state = snapshot.partitions.get(key)
        if state is not None:
            yield state


def preferred_leader_elections(
    snapshot: ClusterSnapshot, only: Iterable[tuple[str, int]] | None = None
) -> list[PartitionState]:
    """Move leadership back to each partition's first replica where it is an eligible ISR member."""
    health = broker_health(snapshot.brokers, snapshot.seen)
    result: list[PartitionState] = []
    for state in _elected_states(snapshot, only):
        if not state.replicas:
            continue
        preferred = state.replicas[0]
        preferred_health = health.get(preferred, _GONE)
        if (
            preferred == state.leader
            or preferred not in state.isr
            or preferred_health.must_leave_isr()
        ):
            continue
        result.append(
            state.with_changes(
                leader=preferred,
                leader_epoch=state.leader_epoch + 1,
                leader_broker_epoch=preferred_health.broker_epoch,
            )
        )
    return result


def unclean_leader_elections(
    snapshot: ClusterSnapshot, only: Iterable[tuple[str, int]] | None = None
) -> list[PartitionState]:
    """ElectLeaders(UNCLEAN): give leaderless partitions any live replica, accepting data loss."""
    health = broker_health(snapshot.brokers, snapshot.seen)
    result: list[PartitionState] = []
    for state in _elected_states(snapshot, only):
        if state.leader != NO_LEADER:
            continue
        candidates = [
            b for b in state.replicas
            if health.get(b, _GONE).live and not health.get(b, _GONE).shutting_down
        ]
        if not candidates:
            continue
        in_sync = [b for b in candidates if b in state.isr and not health[b].wiped]
        chosen = (in_sync or candidates)[0]
        result.append(
            state.with_changes(
                leader=chosen,
                leader_epoch=state.leader_epoch + 1,
                leader_broker_epoch=health[chosen].broker_epoch,
                isr=state.isr if chosen in state.isr else (chosen,),
            )
        )
    return result


def initial_states(
    topic: TopicRecord, brokers: Mapping[int, BrokerRegistration], partitions: Iterable[int]
) -> list[PartitionState]:
    """Fresh partitions: every live assigned replica in the ISR, the first live one leads."""
    states: list[PartitionState] = []
    for partition in partitions:
        replicas = topic.assignment[partition]
        live = [b for b in replicas if b in brokers]
        leader = live[0] if live else NO_LEADER
        states.append(
            PartitionState(
                topic=topic.name,
                partition=partition,
                replicas=tuple(replicas),
                leader=leader,
                leader_epoch=0,
                isr=tuple(live) if live else tuple(replicas[:1]),
                partition_epoch=0,
                leader_broker_epoch=brokers[leader].broker_epoch if live else -1,
            )
        )
    return states


def shrink_isr(state: PartitionState, out_of_sync: Iterable[int]) -> PartitionState | None:
    """The leader drops lagging followers (never itself); None when nothing changes."""
    drop = set(out_of_sync) - {state.leader}
    isr = tuple(b for b in state.isr if b not in drop)
    if isr == state.isr:
        return None
    return state.with_changes(isr=isr)


def expand_isr(state: PartitionState, caught_up: int) -> PartitionState | None:
    """The leader re-admits a follower that reached the high watermark."""
    if caught_up in state.isr or caught_up not in state.replicas:
        return None
    isr = tuple(b for b in state.replicas if b in state.isr or b == caught_up)
    return state.with_changes(isr=isr)


# -- replication health (the gauges of /metrics, and Kafka's) ------------------------------


def under_replicated(state: PartitionState) -> bool:
    """Kafka's UnderReplicatedPartitions rule: a replica the partition keeps is out of its ISR
    (replicas a reassignment is still adding count once they have joined)."""
    return not set(original_replicas(state)) <= set(state.isr)


def under_min_isr(state: PartitionState, min_insync_replicas: int) -> bool:
    """Fewer ISR members than ``min.insync.replicas``: acks=all writes are refused."""
    return len(state.isr) < min_insync_replicas


def offline(state: PartitionState, brokers: Mapping[int, BrokerRegistration]) -> bool:
    """No live leader: no election possible yet (leader -1), or the leader's lease is gone."""
    return state.leader == NO_LEADER or state.leader not in brokers


def round_robin_assignment(
    brokers: Sequence[BrokerRegistration],
    partition_count: int,
    replication_factor: int,
    first_partition: int = 0,
) -> dict[int, tuple[int, ...]]:
    """Rack-interleaved round robin (Kafka's rack-aware assignment): a fallback placement."""
    by_rack: dict[str, list[int]] = {}
    for registration in sorted(brokers, key=lambda b: b.broker_id):
        by_rack.setdefault(registration.rack or "", []).append(registration.broker_id)
    # Alternate racks so consecutive brokers in the ring live in different zones.
    ring: list[int] = []
    racks = [by_rack[r] for r in sorted(by_rack)]
    for index in range(max((len(r) for r in racks), default=0)):
        ring.extend(rack[index] for rack in racks if index < len(rack))
    if replication_factor > len(ring):
        raise ValueError(f"replication factor {replication_factor} > {len(ring)} live brokers")
    assignment: dict[int, tuple[int, ...]] = {}
    for partition in range(first_partition, first_partition + partition_count):
        start = partition % len(ring)
        assignment[partition] = tuple(
            ring[(start + k) % len(ring)] for k in range(replication_factor)
        )
    return assignment


# -- reassignment (KIP-455) ---------------------------------------------------------------


class ReassignmentError(ValueError):
    """The requested replica list is not acceptable."""


def original_replicas(state: PartitionState) -> tuple[int, ...]:
    return tuple(b for b in state.replicas if b not in state.adding)


def target_replicas(state: PartitionState) -> tuple[int, ...]:
    return tuple(b for b in state.replicas if b not in state.removing)


def start_reassignment(
    state: PartitionState, target: Sequence[int], live: Iterable[int]
) -> PartitionState | None:
    """Replicas become original + target; new ones catch up before the old ones go."""
    wanted = tuple(target)
    if not wanted or len(set(wanted)) != len(wanted):
        raise ReassignmentError("replica list must be non-empty and without duplicates")
    unknown = set(wanted) - set(live)
    if unknown:
        raise ReassignmentError(f"brokers {sorted(unknown)} are not registered")
    base = original_replicas(state)
    if wanted == base and not state.adding and not state.removing:
        return None
    adding = tuple(b for b in wanted if b not in base)
    removing = tuple(b for b in base if b not in wanted)
    # Target first so that its first replica becomes the preferred leader afterwards.
    replicas = wanted + removing
    isr = tuple(b for b in state.isr if b in replicas)
    return state.with_changes(replicas=replicas, isr=isr, adding=adding, removing=removing)


def cancel_reassignment(state: PartitionState) -> PartitionState | None:
    """Back to the original replicas (new ones leave; the leader is re-elected if needed)."""
    if not state.adding and not state.removing:
        return None
    base = original_replicas(state)
    isr = tuple(b for b in state.isr if b in base) or tuple(base[:1])
    return state.with_changes(replicas=base, isr=isr, adding=(), removing=())


def complete_reassignment(state: PartitionState) -> PartitionState | None:
    """Finish once every added replica is in the ISR: drop the removed ones."""
    if not state.adding and not state.removing:
        return None
    if not set(state.adding) <= set(state.isr):
        return None
    target = target_replicas(state)
    isr = tuple(b for b in state.isr if b in target)
    if not isr:
        return None
    return state.with_changes(replicas=target, isr=isr, adding=(), removing=())
