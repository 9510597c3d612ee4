"""KIP-848's server-side assignors: the coordinator, not a group leader, splits the partitions.

Kafka ships two, chosen per group by ``group.remote.assignor`` on the clients (the most
common choice among members wins) from the broker's ``group.consumer.assignors`` (the first
is the default):

* ``uniform`` spreads every partition a member subscribes to as evenly as possible over the
  members, and keeps each partition where it is when that does not unbalance the group
  (sticky, so a rebalance moves as few partitions as it can);
* ``range`` gives each member of a topic a contiguous range of its partitions, members in
  member-id order, so members subscribing to co-partitioned topics get matching ranges.

Both are pure functions of an :class:`AssignmentSpec`; they are deterministic, so every
coordinator computes the same target from the same group. Written from KIP-848's description
of the assignors; Kafka's own ``UniformAssignor``/``RangeAssignor`` are more elaborate (rack
awareness, which Headrace has no racks for) but give the same balance guarantees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

TopicPartition = tuple[str, int]
Assignment = dict[str, frozenset[TopicPartition]]


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """What the assignor knows of one member: the topics it reads, what it holds now."""

    topics: frozenset[str]
    current: frozenset[TopicPartition] = frozenset()


@dataclass(frozen=True, slots=True)
class AssignmentSpec:
    members: Mapping[str, MemberSpec]
    #: partition count of every topic some member subscribes to (and that exists)
    partitions: Mapping[str, int]


Assignor = Callable[[AssignmentSpec], Assignment]


def uniform(spec: AssignmentSpec) -> Assignment:
    """Balanced and sticky: member loads differ by at most one among members that could take
    the same partitions; a partition stays with its owner unless that owner is over quota."""
    members = sorted(spec.members)
    result: dict[str, set[TopicPartition]] = {m: set() for m in members}
    if not members:
        return {}
    eligible: dict[TopicPartition, list[str]] = {}
    for topic, count in sorted(spec.partitions.items()):
        readers = [m for m in members if topic in spec.members[m].topics]
        if readers:
            for partition in range(count):
                eligible[(topic, partition)] = readers
    # A member's quota: its fair share of all the partitions it may read, as if every member
    # read everything; with identical subscriptions that is exactly floor/ceil of P/M.
    total = len(eligible)
    quota = {m: -(-total // len(members)) for m in members}
    # Stickiness: keep what members hold while they are under quota.
    for member in members:
        for tp in sorted(spec.members[member].current):
            may_read = eligible.get(tp)
            if (
                may_read is not None
                and member in may_read
                and len(result[member]) < quota[member]
                and not any(tp in held for held in result.values())
            ):
                result[member].add(tp)
    held = {tp for owned in result.values() for tp in owned}
    unassigned = [tp for tp in eligible if tp not in held]
    # Hand the rest, partition by partition, to the least-loaded member that may read it.
    for tp in unassigned:
        readers = eligible[tp]
        target = min(readers, key=lambda m: (len(result[m]), m))
        result[target].add(tp)
    _rebalance(result, eligible)
    return {m: frozenset(owned) for m, owned in result.items()}


def _rebalance(
    result: dict[str, set[TopicPartition]], eligible: dict[TopicPartition, list[str]]
) -> None:
    """Move partitions from the most to the least loaded member that may read them until no
    move lowers the spread (bounded: every move strictly shrinks the sum of squared loads)."""
    moved = True
    while moved:
        moved = False
        for donor in sorted(result, key=lambda m: (-len(result[m]), m)):
            for tp in sorted(result[donor]):
                taker = min(eligible[tp], key=lambda m: (len(result[m]), m))
                if len(result[taker]) + 1 < len(result[donor]):
                    result[donor].discard(tp)
                    result[taker].add(tp)
                    moved = True
                    break
            if moved:
                break


def range_(spec: AssignmentSpec) -> Assignment:
    """Per topic: its subscribers in member-id order, each a contiguous range of partitions,
    the first ``partitions % subscribers`` one larger."""
    result: dict[str, set[TopicPartition]] = {m: set() for m in spec.members}
    for topic, count in sorted(spec.partitions.items()):
        readers = sorted(m for m, s in spec.members.items() if topic in s.topics)
        if not readers:
            continue
        base, extra = divmod(count, len(readers))
        start = 0
        for index, member in enumerate(readers):
            size = base + (1 if index < extra else 0)
            result[member].update((topic, p) for p in range(start, start + size))
            start += size
    return {m: frozenset(owned) for m, owned in result.items()}


#: The assignors by the names clients ask for in ``group.remote.assignor``.
ASSIGNORS: dict[str, Assignor] = {"uniform": uniform, "range": range_}
