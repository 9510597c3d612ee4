"""The cluster controller: one broker at a time turns metadata changes into partition decisions.

Every broker runs a :class:`Controller`; the one holding the ``controller`` key (bound to its
lease, numbered by a monotonically increasing controller epoch) acts. On every metadata change it
computes :func:`~headrace.cluster.decisions.reconcile` and writes the results with
compare-and-swap transactions that also check it is still the controller, so a deposed controller
cannot overwrite its successor's decisions. The active controller is also the one broker that
counts offline partitions for /metrics (Kafka's OfflinePartitionsCount), so that summing the
gauge over brokers counts each partition once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

import aetcd.exceptions

from headrace.cluster.decisions import (
    initial_states,
    offline,
    preferred_leader_elections,
    reconcile,
    unclean_leader_elections,
)
from headrace.cluster.model import ClusterSnapshot, ControllerRecord, PartitionState, TopicRecord
from headrace.cluster.store import EtcdMetadataStore

log = logging.getLogger(__name__)


class Controller:
    """Campaigns for controllership and, while controller, keeps partition states consistent."""

    def __init__(self, store: EtcdMetadataStore, broker_id: int, *, tick: float = 1.0) -> None:
        self.store = store
        self.broker_id = broker_id
        self.tick = tick
        self.record: ControllerRecord | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        store.add_listener(lambda _snapshot: self._wake.set())

    @property
    def is_active(self) -> bool:
        snapshot = self.store.cache
        return self.record is not None and snapshot.controller == self.record

    def offline_partitions(self) -> int:
        """Partitions without a live leader while we are the active controller, else 0."""
        if not self.is_active:
            return 0
        cache = self.store.cache
        return sum(offline(state, cache.brokers) for state in list(cache.partitions.values()))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="controller")

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        record, self.record = self.record, None
        if record is not None:
            with contextlib.suppress(Exception):
                await self.store.resign(record)

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick)
            self._wake.clear()
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except (aetcd.exceptions.ClientError, OSError) as error:
                log.info("controller step failed (etcd): %s", error)
            except Exception:
                log.exception("controller step failed")

    async def step(self) -> None:
        """Campaign if there is no controller; reconcile if we are it."""
        snapshot = self.store.snapshot()
        if snapshot.controller is None:
            registration = self.store.registration
            if registration is None or registration.shutting_down:
                return
            record = await self.store.campaign(self.broker_id)
            if record is not None:
                log.info("broker %d is controller (epoch %d)", self.broker_id, record.epoch)
                self.record = record
                await self.store.wait_until(lambda s: s.controller == record, timeout=5.0)
                snapshot = self.store.snapshot()
        if self.record is None or snapshot.controller != self.record:
            self.record = None
            return
        await self._reconcile(snapshot)

    async def _reconcile(self, snapshot: ClusterSnapshot) -> None:
        record = self.record
        assert record is not None
        plan = reconcile(snapshot)
        missing = _missing_partition_states(snapshot)
        failed = await self._write_all(plan.partitions + missing, record)
        for broker_id, seen in plan.seen.items():
            # A broker's new incarnation is accounted for once every partition that named
            # the old one has been rewritten (a race elsewhere must not hold this up, or a
            # busy leader re-admitting it could keep the controller removing it forever).
            if not plan.seen_after.get(broker_id, set()) & failed:
                await self.store.write_seen(broker_id, seen, controller=record)
        if failed:
            self._wake.set()  # someone raced us: look again with fresh metadata
        else:
            await self._sync_assignments(snapshot)

    async def _sync_assignments(self, snapshot: ClusterSnapshot) -> None:
        """After reassignments complete, make the topic records name the new replicas."""
        def settled(topic: TopicRecord) -> dict[int, tuple[int, ...]]:
            assignment = dict(topic.assignment)
            for partition in topic.assignment:
                state = snapshot.partitions.get((topic.name, partition))
                if state is not None and not state.adding and not state.removing:
                    assignment[partition] = state.replicas
            return assignment

        def sync(topic: TopicRecord) -> tuple[TopicRecord, list[PartitionState]] | None:
            assignment = settled(topic)
            if assignment == dict(topic.assignment):
                return None
            return TopicRecord(topic.name, topic.topic_id, assignment, topic.configs), []

        for topic in snapshot.topics.values():
            if settled(topic) != dict(topic.assignment):
                # Rewritten from etcd's current record: configs or partitions changed since
                # ``snapshot`` was taken must survive.
                await self.store.modify_topic(topic.name, sync)

    async def _write_all(
        self, states: Iterable[PartitionState], record: ControllerRecord
    ) -> set[tuple[str, int]]:
        """CAS each state; returns the partitions whose write lost a race."""
        failed: set[tuple[str, int]] = set()
        for state in states:
            if not await self.write_states([state], record):
                failed.add((state.topic, state.partition))
        return failed

    async def write_states(
        self, states: Iterable[PartitionState], record: ControllerRecord | None = None
    ) -> bool:
        """CAS each state against the revision we last saw; False if any write lost a race."""
        all_written = True
        for state in states:
            expected = self.store.cache.partition_revision(state.topic, state.partition)
            written = await self.store.write_partition(
                state, expected_revision=expected, controller=record
            )
            if written:
                log.info(
                    "partition %s-%d: leader %d epoch %d isr %s",
                    state.topic, state.partition, state.leader, state.leader_epoch, state.isr,
                )
            all_written = all_written and written
        return all_written

    async def elect_preferred_leaders(
        self, partitions: Iterable[tuple[str, int]] | None = None, *, unclean: bool = False
    ) -> list[PartitionState]:
        """ElectLeaders: CAS-write the moves; returns the states written.

        Preferred: back to each partition's first replica. Unclean: leaderless partitions get
        any live replica (data not in that replica is lost), Kafka's ``--election-type unclean``.
        """
        snapshot = self.store.snapshot()
        if unclean:
            moves = unclean_leader_elections(snapshot, partitions)
        else:
            moves = preferred_leader_elections(snapshot, partitions)
        written: list[PartitionState] = []
        for state in moves:
            expected = self.store.cache.partition_revision(state.topic, state.partition)
            if await self.store.write_partition(state, expected_revision=expected):
                written.append(state)
        return written


def _missing_partition_states(snapshot: ClusterSnapshot) -> list[PartitionState]:
    """Partitions of a known topic without a state (a creator died mid-way): initialise them."""
    result: list[PartitionState] = []
    for topic in snapshot.topics.values():
        missing = [p for p in topic.assignment if (topic.name, p) not in snapshot.partitions]
        if missing:
            result.extend(initial_states(topic, snapshot.brokers, missing))
    return result
