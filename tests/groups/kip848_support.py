"""A fake topic catalog and a model client for the pure KIP-848 tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from kio.schema.errors import ErrorCode

from headrace.groups.consumer.machine import (
    ConsumerGroupMachine,
    HeartbeatRequest,
    HeartbeatResult,
)


@dataclass(frozen=True)
class FakeTopic:
    topic_id: uuid.UUID
    partitions: range
    is_internal: bool = False


class FakeCatalog:
    def __init__(self, **topics: int) -> None:
        self.topics: dict[str, FakeTopic] = {}
        for name, count in topics.items():
            self.add(name, count)

    def add(self, name: str, partitions: int) -> None:
        existing = self.topics.get(name)
        topic_id = existing.topic_id if existing else uuid.uuid4()
        self.topics[name] = FakeTopic(topic_id, range(partitions), name.startswith("__"))

    def topic_names(self) -> list[str]:
        return sorted(self.topics)

    def topic(self, name: str) -> FakeTopic | None:
        return self.topics.get(name)

    def name_of(self, topic_id: uuid.UUID) -> str:
        return next(n for n, t in self.topics.items() if t.topic_id == topic_id)


@dataclass
class ModelClient:
    """What a KIP-848 consumer does with heartbeat answers: it owns what it was last given."""

    member_id: str
    topics: tuple[str, ...] = ()
    regex: str | None = None
    instance_id: str | None = None
    assignor: str | None = None
    epoch: int = 0
    owned: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    last: HeartbeatResult | None = None

    def heartbeat(
        self, machine: ConsumerGroupMachine, catalog: FakeCatalog, now_ms: int,
        group: str = "g", epoch: int | None = None,
    ) -> HeartbeatResult:
        joining = self.epoch == 0
        by_topic: dict[str, list[int]] = {}
        for topic, partition in self.owned:
            by_topic.setdefault(topic, []).append(partition)
        result = machine.heartbeat(
            HeartbeatRequest(
                group_id=group,
                member_id=self.member_id,
                member_epoch=self.epoch if epoch is None else epoch,
                instance_id=self.instance_id,
                rebalance_timeout_ms=60_000 if joining else -1,
                subscribed_topic_names=(
                    (self.topics if self.regex is None else None) if joining else None
                ),
                subscribed_topic_regex=self.regex if joining else None,
                server_assignor=self.assignor if joining else None,
                owned=tuple(
                    (catalog.topics[t].topic_id, tuple(sorted(ps)))
                    for t, ps in sorted(by_topic.items())
                ),
            ),
            now_ms,
            catalog,
        )
        self.last = result
        if result.error is ErrorCode.none and epoch is None:
            self.epoch = result.member_epoch
            if result.assignment is not None:
                self.owned = frozenset(
                    (catalog.name_of(topic_id), p)
                    for topic_id, partitions in result.assignment
                    for p in partitions
                )
        return result
