"""Internal topics (``__consumer_offsets``, later ``__transaction_state``): one registry of what
they are, who owns them and what protects them, and one way for their owners to follow
partition leadership.

Protection: clients never write an internal topic (only its coordinator does, through
``Broker.produce(..., internal=True)``), never delete it, and cannot change the configs its owner
registered (:meth:`InternalTopics.check_configs`).

A coordinator keeps its state in an internal topic and serves the keys of the partitions this
broker leads. It registers its topic here (name, partition count, the configs it needs) with a
:class:`LeadershipListener`; whoever knows leadership — the app for a lone broker, which leads
every partition, or the cluster layer as etcd moves leaders — reports it through
:meth:`InternalTopics.lead`, and the registry loads and unloads the owner's partitions one at a
time, in order, as Kafka's ``onElection``/``onResignation`` do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from kio.schema.errors import ErrorCode

from headrace.core.errors import KafkaError

log = logging.getLogger(__name__)

#: Names Kafka reserves for internal topics: never created, deleted or written by clients,
#: whether or not their owner runs on this broker.
RESERVED_NAMES: frozenset[str] = frozenset({"__consumer_offsets", "__transaction_state"})


def is_internal(name: str) -> bool:
    """Whether ``name`` is one of Kafka's internal topics."""
    return name in RESERVED_NAMES


class LeadershipListener(Protocol):
    """An internal topic's owner: told which of the topic's partitions this broker leads."""

    async def load_partition(self, partition: int, leader_epoch: int) -> None:
        """This broker became leader of ``partition`` (or its epoch changed): serve its keys."""

    async def unload_partition(self, partition: int) -> None:
        """This broker no longer leads ``partition``: forget its keys."""


@dataclass(frozen=True, slots=True)
class InternalTopic:
    """An internal topic as its owner needs it created."""

    name: str
    partitions: int
    #: Configs the owner needs and nobody may change.
    configs: Mapping[str, str] = field(default_factory=dict)
    #: On a cluster: its replication factor (None: the offsets topic's) and min ISR.
    replication_factor: int | None = None
    min_insync_replicas: int | None = None


class InternalTopics:
    """The registry: each internal topic, its owner, and the partitions the owner has loaded."""

    def __init__(self) -> None:
        self._topics: dict[str, InternalTopic] = {}
        self._owners: dict[str, LeadershipListener] = {}
        self._loaded: dict[tuple[str, int], int] = {}
        self._wanted: dict[tuple[str, int], int] = {}
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()

    def register(self, topic: InternalTopic, owner: LeadershipListener) -> None:
        if topic.name not in RESERVED_NAMES:
            raise ValueError(f"{topic.name} is not an internal topic name")
        if topic.name in self._topics:
            raise ValueError(f"{topic.name} already has an owner")
        self._topics[topic.name] = topic
        self._owners[topic.name] = owner

    def get(self, name: str) -> InternalTopic | None:
        return self._topics.get(name)

    def topics(self) -> list[InternalTopic]:
        return list(self._topics.values())

    def check_configs(self, name: str, configs: Mapping[str, str]) -> None:
        """Refuse overrides that would drop what the owner needs (``cleanup.policy=compact``
        for ``__consumer_offsets``: without it retention would delete live commits)."""
        topic = self._topics.get(name)
        if topic is None:
            return
        for key, required in topic.configs.items():
            if configs.get(key) != required:
                raise KafkaError(
                    ErrorCode.invalid_config,
                    f"{key} of internal topic {name} must stay {required}",
                )

    def owned(self, name: str) -> bool:
        """Whether some coordinator on this broker owns ``name`` (and so follows its leaders)."""
        return name in self._owners

    async def lead(self, leaders: Mapping[tuple[str, int], int]) -> None:
        """Make the owners' loaded partitions exactly ``leaders`` ((topic, partition) → epoch)
        and return once they are; partitions of unowned topics are ignored."""
        self._wanted = {key: epoch for key, epoch in leaders.items() if key[0] in self._owners}
        async with self._lock:
            await self._apply()

    def lead_soon(self, leaders: Mapping[tuple[str, int], int]) -> None:
        """:meth:`lead` without waiting, for callbacks: :meth:`follow` applies it."""
        self._wanted = {key: epoch for key, epoch in leaders.items() if key[0] in self._owners}
        self._changed.set()

    async def follow(self) -> None:
        """Apply :meth:`lead_soon` changes as they come (a task of the cluster layer); a failed
        load is retried shortly after."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                async with self._lock:
                    await self._apply()
            except Exception:
                log.exception("internal topic leadership change failed")
                self._changed.set()
                await asyncio.sleep(0.5)

    async def _apply(self) -> None:
        wanted = self._wanted
        for key in sorted(set(self._loaded) - set(wanted)):
            del self._loaded[key]
            await self._owners[key[0]].unload_partition(key[1])
        for key, epoch in sorted(wanted.items()):
            if self._loaded.get(key) != epoch:
                await self._owners[key[0]].load_partition(key[1], epoch)
                self._loaded[key] = epoch
