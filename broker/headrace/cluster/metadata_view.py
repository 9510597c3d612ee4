"""The broker's metadata view on a cluster member: brokers, controller and partition states
answered from the etcd cache, so every broker gives clients the same answer."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from headrace.cluster.model import NO_LEADER
from headrace.cluster.store import EtcdMetadataStore
from headrace.core.internal_topics import is_internal
from headrace.core.metadata import BrokerEndpoint, TopicState
from headrace.core.metadata import PartitionState as ViewPartition

if TYPE_CHECKING:
    from headrace.core.broker import Broker


class EtcdMetadataView:
    """The server's ``MetadataView`` answered from the etcd cache (consistent on every broker)."""

    def __init__(self, store: EtcdMetadataStore, node_id: int, broker: Broker) -> None:
        self._store = store
        self._node_id = node_id
        self._broker = broker

    @property
    def cluster_id(self) -> str:
        return self._broker.cluster_id  # etcd's, adopted when the node starts

    def brokers(self, listener: str | None = None) -> list[BrokerEndpoint]:
        endpoints = []
        for registration in sorted(self._store.cache.brokers.values(),
                                   key=lambda r: r.broker_id):
            endpoint = registration.endpoint(listener)
            if endpoint is not None:
                endpoints.append(BrokerEndpoint(registration.broker_id, *endpoint,
                                                registration.rack))
        return endpoints

    def controller_id(self) -> int:
        controller = self._store.cache.controller
        if controller is not None and controller.broker_id in self._store.cache.brokers:
            return controller.broker_id
        brokers = self._store.cache.brokers
        return min(brokers) if brokers else self._node_id

    def topic_names(self) -> list[str]:
        return sorted(self._store.cache.topics)

    def topic(self, name: str) -> TopicState | None:
        cache = self._store.cache
        record = cache.topics.get(name)
        if record is None:
            return None
        count = max(record.assignment, default=-1) + 1
        partitions = []
        for index in range(count):
            state = cache.partitions.get((name, index))
            if state is None:
                replicas = tuple(record.assignment.get(index, ()))
                partitions.append(ViewPartition(NO_LEADER, -1, replicas, ()))
            else:
                partitions.append(
                    ViewPartition(state.leader, state.leader_epoch, state.replicas, state.isr)
                )
        return TopicState(name, uuid.UUID(record.topic_id), tuple(partitions), is_internal(name))
