"""Zone-aware replica placement: pure functions shared by the broker and the operator.

The broker places the partitions of new topics (and of topics that grow) with
``place_new_partitions``; the operator computes where replicas should go after brokers are added or
removed with ``plan_reassignment``. Both follow the same rules, in priority order:

1. **Zones.** A partition's replicas sit in distinct zones whenever the replication factor is at
   most the number of zones; otherwise they are spread as evenly over zones as the zone sizes
   allow. Brokers without a zone each count as a zone of their own.
2. **Balance.** Per-broker replica counts, and separately preferred-leader counts (``replicas[0]``),
   end up within one of each other whenever the zone rule allows it (it always does when zones hold
   equally many brokers). Counts include ``load`` / ``leader_load``: the replicas and leaderships
   each broker already carries for *other* topics, so a cluster stays balanced across topics.
3. **Minimal movement** (``plan_reassignment`` only). Replicas stay where they are unless they sit
   on a removed broker, break the zone rule, or must move for balance; a balancing move goes from
   the most loaded broker to the least loaded one, directly when the zone rule allows, otherwise
   along the shortest chain of moves. Leadership changes only for leader balance.

Everything here is deterministic: the same inputs give the same plan on every broker.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "BrokerSlot",
    "PlacementError",
    "count_moves",
    "load_of",
    "place_new_partitions",
    "plan_reassignment",
]

Assignment = dict[int, list[int]]
# (broker) -> possible single steps (partition, target broker) away from it.
_EdgeFn = Callable[[int], Iterable[tuple[int, int]]]
# (partition, source, target) -> whether the step was still valid and has been applied.
_ApplyFn = Callable[[int, int, int], bool]


@dataclass(frozen=True)
class BrokerSlot:
    """A broker that may hold replicas, and the failure zone it runs in (None: no zone)."""

    broker_id: int
    zone: str | None = None


class PlacementError(ValueError):
    """The request cannot be satisfied, e.g. a replication factor above the broker count."""


def load_of(
    assignments: Iterable[Mapping[int, Sequence[int]]],
) -> tuple[Counter[int], Counter[int]]:
    """Replica and preferred-leader counts per broker over several topics' assignments.

    Pass the assignments of every *other* topic to get the ``load`` and ``leader_load`` arguments.
    """
    replicas: Counter[int] = Counter()
    leaders: Counter[int] = Counter()
    for assignment in assignments:
        for partition_replicas in assignment.values():
            replicas.update(partition_replicas)
            if partition_replicas:
                leaders[partition_replicas[0]] += 1
    return replicas, leaders


def count_moves(current: Mapping[int, Sequence[int]], target: Mapping[int, Sequence[int]]) -> int:
    """How many replicas a reassignment from ``current`` to ``target`` copies to a new broker."""
    return sum(len(set(replicas) - set(current.get(p, ()))) for p, replicas in target.items())


def place_new_partitions(
    brokers: Sequence[BrokerSlot],
    partition_count: int,
    replication_factor: int,
    existing: Mapping[int, Sequence[int]] | None = None,
    first_partition: int = 0,
    load: Mapping[int, int] | None = None,
    leader_load: Mapping[int, int] | None = None,
) -> dict[int, list[int]]:
    """Assign replicas to partitions ``first_partition .. first_partition + partition_count - 1``.

    ``existing`` holds the topic's current partitions (when it grows): they count towards balance
    and are never changed. ``load`` / ``leader_load`` are replica / leader counts per broker from
    other topics. Returns only the new partitions: partition -> replicas, ``replicas[0]`` being the
    preferred leader.
    """
    if partition_count < 0:
        raise PlacementError(f"partition count must not be negative, got {partition_count}")
    state = _State(brokers, load, leader_load)
    state.check_replication_factor(replication_factor)
    new_partitions = range(first_partition, first_partition + partition_count)
    existing = existing or {}
    if clash := sorted(set(existing) & set(new_partitions)):
        raise PlacementError(f"partitions {clash} already exist")
    for partition, replicas in existing.items():
        state.add_partition(partition, [b for b in replicas if b in state.zone_of], movable=False)
    for partition in new_partitions:
        state.add_partition(partition, [], movable=True)
        state.fill(partition, replication_factor)
        state.pick_least_loaded_leader(partition)
    state.balance_replicas()
    state.balance_leaders()
    return {p: list(state.replicas[p]) for p in new_partitions}


def plan_reassignment(
    brokers: Sequence[BrokerSlot],
    current: Mapping[int, Sequence[int]],
    replication_factor: int | None = None,
    load: Mapping[int, int] | None = None,
    leader_load: Mapping[int, int] | None = None,
) -> dict[int, list[int]]:
    """Target assignment of one topic over ``brokers``, moving as few replicas as it can.

    Replicas on brokers not in ``brokers`` are drained; each partition keeps its replica count
    unless ``replication_factor`` sets a new one. ``load`` / ``leader_load`` are the counts other
    topics put on each broker. Returns every partition of ``current``.
    """
    state = _State(brokers, load, leader_load)
    wanted = {p: replication_factor if replication_factor is not None else len(replicas)
              for p, replicas in current.items()}
    for partition, replicas in current.items():
        state.check_replication_factor(wanted[partition])
        live = [b for b in replicas if b in state.zone_of]
        state.add_partition(partition, list(dict.fromkeys(live)), movable=True)
    for partition in current:
        state.trim(partition, wanted[partition])
    # Partitions that lost the most replicas first: they can go anywhere, so they take the least
    # loaded brokers, and the partitions that keep replicas (and zones) fill the gaps left.
    for partition in sorted(current, key=lambda p: (len(state.replicas[p]), p)):
        state.fill(partition, wanted[partition])
    state.balance_replicas()
    state.balance_leaders()
    return {p: list(state.replicas[p]) for p in current}


@dataclass
class _State:
    """A working assignment with the per-broker counts the rules above need."""

    brokers: Sequence[BrokerSlot]
    load: Mapping[int, int] | None
    leader_load: Mapping[int, int] | None
    zone_of: dict[int, str] = field(default_factory=dict)
    zone_size: Counter[str] = field(default_factory=Counter)
    replicas: Assignment = field(default_factory=dict)
    movable: set[int] = field(default_factory=set)
    replica_count: Counter[int] = field(default_factory=Counter)
    leader_count: Counter[int] = field(default_factory=Counter)
    zone_load: Counter[str] = field(default_factory=Counter)
    partitions_of: dict[int, set[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.brokers:
            raise PlacementError("no brokers to place replicas on")
        for slot in self.brokers:
            if slot.broker_id in self.zone_of:
                raise PlacementError(f"broker {slot.broker_id} listed twice")
            # A zone-less broker is its own failure domain; the NUL prefix cannot clash with a zone.
            zone = slot.zone if slot.zone is not None else f"\0broker-{slot.broker_id}"
            self.zone_of[slot.broker_id] = zone
            self.zone_size[zone] += 1
            self.partitions_of[slot.broker_id] = set()
        for broker, count in (self.load or {}).items():
            if broker in self.zone_of:
                self.replica_count[broker] += count
                self.zone_load[self.zone_of[broker]] += count
        for broker, count in (self.leader_load or {}).items():
            if broker in self.zone_of:
                self.leader_count[broker] += count

    # -- bookkeeping --------------------------------------------------------------------------

    def check_replication_factor(self, replication_factor: int) -> None:
        if replication_factor < 1:
            raise PlacementError(f"replication factor must be at least 1, got {replication_factor}")
        if replication_factor > len(self.zone_of):
            raise PlacementError(
                f"replication factor {replication_factor} exceeds the {len(self.zone_of)} "
                "available brokers"
            )

    def add_partition(self, partition: int, replicas: list[int], movable: bool) -> None:
        self.replicas[partition] = []
        if movable:
            self.movable.add(partition)
        for broker in replicas:
            self._add_replica(partition, broker)

    def _add_replica(self, partition: int, broker: int) -> None:
        replicas = self.replicas[partition]
        replicas.append(broker)
        if len(replicas) == 1:
            self.leader_count[broker] += 1
        self.replica_count[broker] += 1
        self.zone_load[self.zone_of[broker]] += 1
        self.partitions_of[broker].add(partition)

    def _remove_replica(self, partition: int, broker: int) -> None:
        replicas = self.replicas[partition]
        if replicas[0] == broker:
            self.leader_count[broker] -= 1
            if len(replicas) > 1:
                self.leader_count[replicas[1]] += 1
        replicas.remove(broker)
        self.replica_count[broker] -= 1
        self.zone_load[self.zone_of[broker]] -= 1
        self.partitions_of[broker].discard(partition)

    def _set_leader(self, partition: int, broker: int) -> None:
        replicas = self.replicas[partition]
        self.leader_count[replicas[0]] -= 1
        self.leader_count[broker] += 1
        replicas.remove(broker)
        replicas.insert(0, broker)

    def _zones_in(self, partition: int) -> Counter[str]:
        return Counter(self.zone_of[b] for b in self.replicas[partition])

    def zone_cap(self, replication_factor: int) -> int:
        """The fewest replicas per zone that still fits ``replication_factor`` replicas."""
        cap = 1
        while sum(min(size, cap) for size in self.zone_size.values()) < replication_factor:
            cap += 1
        return cap

    # -- rule 1: zones, and filling partitions up to their replication factor -----------------

    def trim(self, partition: int, replication_factor: int) -> None:
        """Drop surplus replicas and replicas that crowd a zone, so ``fill`` can re-place them."""
        cap = self.zone_cap(replication_factor)
        while True:
            replicas = self.replicas[partition]
            zones = self._zones_in(partition)
            crowded = [b for b in replicas if zones[self.zone_of[b]] > cap]
            if not crowded and len(replicas) <= replication_factor:
                return
            candidates = crowded or replicas
            # Keep the leader if possible; drop from the most loaded broker.
            victim = max(candidates, key=lambda b: (b != replicas[0], self.replica_count[b], b))
            self._remove_replica(partition, victim)

    def fill(self, partition: int, replication_factor: int) -> None:
        while len(self.replicas[partition]) < replication_factor:
            present = set(self.replicas[partition])
            zones = self._zones_in(partition)
            best = min((b for b in self.zone_of if b not in present),
                       key=lambda b: self._fill_preference(zones, b))
            self._add_replica(partition, best)

    def _fill_preference(self, zones: Counter[str],
                         broker: int) -> tuple[int, float, int, int, int]:
        # Emptiest zone in this partition, then least loaded zone, then least loaded broker
        # (fewest leaderships breaking ties, so leaders can be balanced afterwards).
        zone = self.zone_of[broker]
        return (zones[zone], self.zone_load[zone] / self.zone_size[zone],
                self.replica_count[broker], self.leader_count[broker], broker)

    def pick_least_loaded_leader(self, partition: int) -> None:
        replicas = self.replicas[partition]
        leader = min(replicas, key=lambda b: (self.leader_count[b], replicas.index(b)))
        self._set_leader(partition, leader)

    def _may_move(self, partition: int, source: int, target: int) -> bool:
        replicas = self.replicas[partition]
        if target in replicas or source not in replicas:
            return False
        target_zone = self.zone_of[target]
        if target_zone == self.zone_of[source]:
            return True
        return self._zones_in(partition)[target_zone] < self.zone_cap(len(replicas))

    # -- rule 2: balance, by moving along the shortest chain from most to least loaded --------

    def balance_replicas(self) -> None:
        while self._improve(self.replica_count, self._replica_edges, self._move_replica):
            pass

    def balance_leaders(self) -> None:
        while self._improve(self.leader_count, self._leader_edges, self._set_leader_edge):
            pass

    def _replica_edges(self, broker: int) -> Iterable[tuple[int, int]]:
        for partition in sorted(self.partitions_of[broker] & self.movable):
            for target in self.zone_of:
                if self._may_move(partition, broker, target):
                    yield partition, target

    def _leader_edges(self, broker: int) -> Iterable[tuple[int, int]]:
        for partition in sorted(self.partitions_of[broker] & self.movable):
            replicas = self.replicas[partition]
            if replicas[0] == broker:
                for target in replicas[1:]:
                    yield partition, target

    def _move_replica(self, partition: int, source: int, target: int) -> bool:
        if not self._may_move(partition, source, target):
            return False
        self._remove_replica(partition, source)
        self._add_replica(partition, target)
        return True

    def _set_leader_edge(self, partition: int, source: int, target: int) -> bool:
        replicas = self.replicas[partition]
        if replicas[0] != source or target not in replicas:
            return False
        self._set_leader(partition, target)
        return True

    def _improve(
        self,
        counts: Counter[int],
        edges: _EdgeFn,
        apply: _ApplyFn,
    ) -> bool:
        """Shift one unit of load from a heavy broker to a broker at least two lighter.

        Tries sources from heaviest to lightest; for each, a breadth-first search over possible
        single moves finds every reachable broker, and the lightest one (nearest on ties) gets the
        unit along the found chain. Returns False when no such chain exists.
        """
        for source in sorted(self.zone_of, key=lambda b: (-counts[b], b)):
            parent: dict[int, tuple[int, int] | None] = {source: None}
            depth = {source: 0}
            queue = deque([source])
            while queue:
                broker = queue.popleft()
                for partition, target in edges(broker):
                    if target not in parent:
                        parent[target] = (partition, broker)
                        depth[target] = depth[broker] + 1
                        queue.append(target)
            reachable = [b for b in parent if counts[b] <= counts[source] - 2]
            if not reachable:
                continue
            destination = min(reachable, key=lambda b: (counts[b], depth[b], b))
            chain: list[tuple[int, int, int]] = []
            node = destination
            while (step := parent[node]) is not None:
                partition, previous = step
                chain.append((partition, previous, node))
                node = previous
            # Apply from the source end; a chain that re-uses a partition may turn invalid
            # midway, in which case the applied prefix is undone and the search moves on.
            applied: list[tuple[int, int, int]] = []
            for partition, from_broker, to_broker in reversed(chain):
                if not apply(partition, from_broker, to_broker):
                    for undo_partition, undo_from, undo_to in reversed(applied):
                        apply(undo_partition, undo_to, undo_from)
                    break
                applied.append((partition, from_broker, to_broker))
            else:
                return True
        return False
