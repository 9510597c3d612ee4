"""Cluster metadata as the Kafka handlers see it, behind an interface etcd can back later.

:class:`MetadataView` answers "which brokers exist, who is controller, which partitions does a
topic have and who leads them". :class:`LocalMetadataView` is the single-broker answer: this
broker leads every partition and is the only replica and ISR member.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from headrace.storage import LogManagerAPI

#: Leader epoch reported to clients; -1 keeps librdkafka from validating epochs (pitfall 7).
UNKNOWN_LEADER_EPOCH = -1


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    node_id: int
    host: str
    port: int
    rack: str | None = None


@dataclass(frozen=True, slots=True)
class PartitionState:
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TopicState:
    name: str
    topic_id: uuid.UUID
    partitions: tuple[PartitionState, ...]
    is_internal: bool


class MetadataView(Protocol):
    """Read-only cluster view used by Metadata, FindCoordinator, DescribeCluster and HTTP."""

    @property
    def cluster_id(self) -> str: ...

    def brokers(self, listener: str | None = None) -> list[BrokerEndpoint]:
        """The live brokers, by their endpoint on ``listener`` (a client's answer holds the
        endpoints of the listener it connected to; brokers without one are left out, as in
        Kafka); None: their inter-broker endpoints."""
        ...

    def controller_id(self) -> int: ...

    def topic(self, name: str) -> TopicState | None: ...

    def topic_names(self) -> list[str]: ...


class LocalMetadataView:
    """Single-broker metadata computed from the local topic table."""

    def __init__(
        self,
        endpoint: Callable[[], BrokerEndpoint],
        logs: LogManagerAPI,
        is_internal: Callable[[str], bool],
        cluster_id: str,
        *,
        listener_endpoint: Callable[[str], BrokerEndpoint | None] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._listener_endpoint = listener_endpoint
        self._logs = logs
        self._is_internal = is_internal
        self._cluster_id = cluster_id
        self._cache: dict[tuple[str, uuid.UUID, int], TopicState] = {}

    @property
    def cluster_id(self) -> str:
        return self._cluster_id

    def brokers(self, listener: str | None = None) -> list[BrokerEndpoint]:
        if listener is None or self._listener_endpoint is None:
            return [self._endpoint()]
        endpoint = self._listener_endpoint(listener)
        return [endpoint] if endpoint is not None else []

    def controller_id(self) -> int:
        return self._endpoint().node_id

    def topic_names(self) -> list[str]:
        return sorted(self._logs.topics())

    def topic(self, name: str) -> TopicState | None:
        meta = self._logs.topic(name)
        if meta is None:
            return None
        key = (name, meta.topic_id, meta.partitions)
        state = self._cache.get(key)
        if state is None:
            me = self._endpoint().node_id
            partition = PartitionState(me, UNKNOWN_LEADER_EPOCH, (me,), (me,))
            state = TopicState(
                name, meta.topic_id, (partition,) * meta.partitions, self._is_internal(name)
            )
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = state
        return state
