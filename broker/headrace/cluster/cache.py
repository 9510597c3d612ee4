"""The broker's local mirror of the etcd metadata, fed by key events.

Pure bookkeeping (no etcd client): the store feeds it a full read and then watch events; it keeps
each key's ``mod_revision`` so writers can compare-and-swap against exactly what they saw, and
hands out immutable :class:`~headrace.cluster.model.ClusterSnapshot` values.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from headrace.cluster.model import (
    BrokerRegistration,
    ClusterSnapshot,
    ControllerRecord,
    KeySpace,
    PartitionState,
    SeenBroker,
    TopicRecord,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """One key's new value (``value is None`` = deleted) at a store revision."""

    key: bytes
    value: bytes | None
    mod_revision: int
    create_revision: int


class MetadataCache:
    def __init__(self, keys: KeySpace) -> None:
        self.keys = keys
        self.revision = 0
        self.brokers: dict[int, BrokerRegistration] = {}
        self.seen: dict[int, SeenBroker] = {}
        self.controller: ControllerRecord | None = None
        self.controller_raw: bytes | None = None
        self.controller_epoch = 0
        self.topics: dict[str, TopicRecord] = {}
        self.partitions: dict[tuple[str, int], PartitionState] = {}
        self.mod_revisions: dict[bytes, int] = {}

    def reset(self, events: Iterable[KeyEvent], revision: int) -> None:
        """Replace everything by a full read taken at ``revision``."""
        self.brokers.clear()
        self.seen.clear()
        self.controller = None
        self.controller_raw = None
        self.controller_epoch = 0
        self.topics.clear()
        self.partitions.clear()
        self.mod_revisions.clear()
        for event in events:
            self._apply(event)
        self.revision = revision

    def apply(self, events: Iterable[KeyEvent]) -> bool:
        """Apply watch events; returns whether anything changed."""
        changed = False
        for event in events:
            if event.mod_revision <= self.mod_revisions.get(event.key, 0):
                continue  # already reflected by a later full read
            self._apply(event)
            self.revision = max(self.revision, event.mod_revision)
            changed = True
        return changed

    def _apply(self, event: KeyEvent) -> None:
        kind, parts = self.keys.classify(event.key)
        if event.value is None:
            self.mod_revisions.pop(event.key, None)
        else:
            self.mod_revisions[event.key] = event.mod_revision
        try:
            self._apply_kind(kind, parts, event)
        except (ValueError, KeyError, TypeError) as error:
            log.warning("ignoring malformed metadata key %r: %s", event.key, error)

    def _apply_kind(self, kind: str, parts: tuple[str, ...], event: KeyEvent) -> None:
        value = event.value
        if kind == "broker":
            broker_id = int(parts[0])
            if value is None:
                self.brokers.pop(broker_id, None)
            else:
                self.brokers[broker_id] = BrokerRegistration.from_json(
                    value, broker_epoch=event.create_revision
                )
        elif kind == "seen":
            broker_id = int(parts[0])
            if value is None:
                self.seen.pop(broker_id, None)
            else:
                self.seen[broker_id] = SeenBroker.from_json(value)
        elif kind == "controller":
            self.controller = None if value is None else ControllerRecord.from_json(value)
            self.controller_raw = value
        elif kind == "controller_epoch":
            self.controller_epoch = 0 if value is None else int(value)
        elif kind == "topic":
            if value is None:
                self.topics.pop(parts[0], None)
            else:
                self.topics[parts[0]] = TopicRecord.from_json(value)
        elif kind == "partition":
            key = (parts[0], int(parts[1]))
            if value is None:
                self.partitions.pop(key, None)
            else:
                self.partitions[key] = PartitionState.from_json(value)

    def snapshot(self) -> ClusterSnapshot:
        return ClusterSnapshot(
            brokers=dict(self.brokers),
            controller=self.controller,
            topics=dict(self.topics),
            partitions=dict(self.partitions),
            seen=dict(self.seen),
            revision=self.revision,
        )

    def partition_revision(self, topic: str, partition: int) -> int:
        return self.mod_revisions.get(self.keys.partition(topic, partition), 0)
