"""Partition roles on a clustered broker: leader (HW, acks=all, ISR upkeep) or follower.

:class:`ClusteredReplicaManager` extends the server's single-broker
:class:`~headrace.core.replica.ReplicaManager`, so every handler keeps going through the same
methods, but now:

* only the elected leader (leader id and broker epoch as written by the controller) appends;
  anything else answers NOT_LEADER_OR_FOLLOWER;
* consumers read and see offsets only below the high watermark (min log end over the ISR);
* acks=all completes once every ISR member has fetched past the batch, min.insync.replicas is
  enforced before (NOT_ENOUGH_REPLICAS) and after (NOT_ENOUGH_REPLICAS_AFTER_APPEND) the append;
* followers' Fetch requests (``replica_id >= 0``) move their progress, the high watermark and,
  through ``propose_isr``, ISR expansion; a periodic check proposes shrinking laggards;
* every ISR shrink and expansion that reaches a leader (its own proposal or the controller's
  removal of a lost broker) is reported to ``isr_observer``, and ``replication_health`` counts
  the led partitions that are under-replicated or under min ISR (the /metrics gauges).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from typing import Protocol

from kio.schema.errors import ErrorCode

from headrace import record
from headrace.cluster.decisions import expand_isr, shrink_isr, under_min_isr, under_replicated
from headrace.cluster.model import NO_LEADER, PartitionState
from headrace.cluster.replication import LeaderPartitionState
from headrace.core.errors import KafkaError
from headrace.core.replica import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    FetchBounds,
    ReplicaManager,
)
from headrace.core.topics import kafka_error_from_storage
from headrace.storage import AppendResult, LogManagerAPI, LogRead, PartitionLogAPI, StorageError

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]


class IsrChangeObserver(Protocol):
    """Told of ISR changes of partitions this broker leads (``BrokerMetrics`` counts them)."""

    def on_isr_shrink(self, topic: str, partition: int) -> None: ...

    def on_isr_expand(self, topic: str, partition: int) -> None: ...


def min_insync_replicas(log_: PartitionLogAPI) -> int:
    """The partition's ``min.insync.replicas`` (at least 1)."""
    return max(1, int(getattr(log_.config, "min_insync_replicas", 1)))


@dataclass(slots=True)
class FollowerRole:
    leader_id: int
    leader_epoch: int
    high_watermark: int = 0
    #: A reassignment target still catching up: its fetches obey the replication throttle.
    throttled: bool = False


class LeaderRole:
    """A partition we lead: replication progress plus producers waiting for acks=all."""

    def __init__(self, state: PartitionState, progress: LeaderPartitionState) -> None:
        self.state = state
        self.progress = progress
        self.ack_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.isr_change_pending = False

    @property
    def leader_epoch(self) -> int:
        return self.state.leader_epoch

    def release_waiters(self) -> None:
        hw = self.progress.high_watermark
        remaining = []
        for offset, waiter in self.ack_waiters:
            if offset <= hw:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                remaining.append((offset, waiter))
        self.ack_waiters = remaining

    def fail_waiters(self, error: KafkaError) -> None:
        for _offset, waiter in self.ack_waiters:
            if not waiter.done():
                waiter.set_exception(error)
        self.ack_waiters = []


class ClusteredReplicaManager(ReplicaManager):
    """Leader/follower roles driven by the etcd partition states."""

    def __init__(
        self,
        logs: LogManagerAPI,
        node_id: int,
        *,
        replica_lag_time_max: float = 10.0,
        ack_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(logs, node_id)
        self.replica_lag_time_max = replica_lag_time_max
        self.ack_timeout = ack_timeout
        self.clock = clock
        self.leaders: dict[PartitionKey, LeaderRole] = {}
        self.followers: dict[PartitionKey, FollowerRole] = {}
        #: Called with a proposed new state (ISR change) for a partition we lead.
        self.propose_isr: Callable[[PartitionState], None] = lambda state: None
        self.broker_epoch = -1
        self._peer_epochs: dict[int, int] = {}
        self.isr_candidates: Set[int] = frozenset()
        self.isr_observer: IsrChangeObserver | None = None

    # -- roles from metadata ------------------------------------------------------------

    def apply_states(
        self,
        states: Mapping[PartitionKey, PartitionState],
        broker_epoch: int,
        broker_epochs: Mapping[int, int] | None = None,
        isr_candidates: Set[int] = frozenset(),
    ) -> tuple[set[PartitionKey], set[PartitionKey]]:
        """Adopt the roles the metadata gives us; returns (became leader, became follower).

        ``broker_epochs`` (broker id -> current broker epoch) lets leaders forget the recorded
        positions of followers that restarted since they last fetched. Only
        ``isr_candidates`` (see :func:`~headrace.cluster.decisions.isr_candidates`) are
        re-admitted to an ISR when they catch up.
        """
        self.broker_epoch = broker_epoch
        self.isr_candidates = isr_candidates
        if broker_epochs is not None:
            restarted = {
                b for b, epoch in broker_epochs.items()
                if self._peer_epochs.get(b, epoch) != epoch
            }
            self._peer_epochs.update(broker_epochs)  # absent brokers keep their last epoch
            if restarted:
                now_ = self.clock()
                for role in self.leaders.values():
                    for replica in restarted:
                        role.progress.forget(replica, now_)
        me = self.node_id
        now = self.clock()
        new_leaders: set[PartitionKey] = set()
        new_followers: set[PartitionKey] = set()
        for key, state in states.items():
            if me not in state.replicas:
                self._drop(key)
                continue
            leads = state.leader == me and state.leader_broker_epoch == broker_epoch
            if leads:
                current = self.leaders.get(key)
                if current is None or current.leader_epoch != state.leader_epoch:
                    self._become_leader(key, state, now)
                    new_leaders.add(key)
                else:
                    self._report_isr_change(current.state, state)
                    current.state = state
                    current.isr_change_pending = False
                    current.progress.update_membership(state.replicas, state.isr, now)
                    self._advance(key, current)
            elif state.leader not in (NO_LEADER, me):
                following = self.followers.get(key)
                if following is not None:
                    following.throttled = me in state.adding
                if following is None or (following.leader_id, following.leader_epoch) != (
                    state.leader,
                    state.leader_epoch,
                ):
                    self._stop_leading(key)
                    hw = following.high_watermark if following is not None else 0
                    self.followers[key] = FollowerRole(
                        state.leader, state.leader_epoch, hw, throttled=me in state.adding
                    )
                    new_followers.add(key)
            else:
                self._drop(key)
        for key in list(self.leaders.keys() | self.followers.keys()):
            if key not in states:
                self._drop(key)
        return new_leaders, new_followers

    def _report_isr_change(self, before: PartitionState, after: PartitionState) -> None:
        """One shrink and/or one expansion per partition whose ISR changed while we lead it.

        Replicas a completed reassignment removed leave the ISR with the replica set: that is a
        planned move, not a shrink.
        """
        observer = self.isr_observer
        if observer is None or before.isr == after.isr:
            return
        old, new = set(before.isr), set(after.isr)
        if (old - new) & set(after.replicas):
            observer.on_isr_shrink(after.topic, after.partition)
        if new - old:
            observer.on_isr_expand(after.topic, after.partition)

    def _become_leader(self, key: PartitionKey, state: PartitionState, now: float) -> None:
        self._stop_leading(key)
        following = self.followers.pop(key, None)
        try:
            end = self.log(*key).log_end_offset
        except KafkaError:
            end = 0
        known_hw = following.high_watermark if following is not None else 0
        progress = LeaderPartitionState(
            leader_id=self.node_id,
            leader_epoch=state.leader_epoch,
            replicas=state.replicas,
            isr=state.isr,
            high_watermark=min(known_hw, end),
            now=now,
            epoch_start_offset=end,
        )
        role = LeaderRole(state, progress)
        self.leaders[key] = role
        log.info("leading %s-%d at epoch %d (isr %s)", *key, state.leader_epoch, state.isr)
        self._advance(key, role)

    def _stop_leading(self, key: PartitionKey) -> None:
        role = self.leaders.pop(key, None)
        if role is not None:
            role.fail_waiters(
                KafkaError(ErrorCode.not_leader_or_follower, f"no longer leader of {key}")
            )

    def _drop(self, key: PartitionKey) -> None:
        self._stop_leading(key)
        self.followers.pop(key, None)

    def is_leader(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self.leaders

    def leader_role(self, topic: str, partition: int) -> LeaderRole:
        role = self.leaders.get((topic, partition))
        if role is None:
            raise KafkaError(
                ErrorCode.not_leader_or_follower,
                f"broker {self.node_id} does not lead {topic}-{partition}",
            )
        return role

    def check_epoch(self, role: LeaderRole, current_leader_epoch: int) -> None:
        """Kafka's fencing of requests that carry the leader epoch the client believes in."""
        if current_leader_epoch < 0:
            return
        if current_leader_epoch < role.leader_epoch:
            raise KafkaError(ErrorCode.fenced_leader_epoch, "leader epoch is newer")
        if current_leader_epoch > role.leader_epoch:
            raise KafkaError(ErrorCode.unknown_leader_epoch, "leader epoch not known yet")

    # -- leader: high watermark and ISR ----------------------------------------------------

    def _advance(self, key: PartitionKey, role: LeaderRole) -> None:
        try:
            end = self.log(*key).log_end_offset
        except KafkaError:
            return
        if role.progress.advance_high_watermark(end):
            role.release_waiters()
            super().notify_append(*key)  # consumers waiting for newly committed records

    def record_follower_fetch(
        self, topic: str, partition: int, replica_id: int, fetch_offset: int
    ) -> None:
        key = (topic, partition)
        role = self.leaders.get(key)
        if role is None:
            return
        end = self.log(topic, partition).log_end_offset
        role.progress.record_fetch(replica_id, fetch_offset, end, self.clock())
        self._advance(key, role)
        if not role.isr_change_pending:
            caught_up = role.progress.caught_up_followers(end) & self.isr_candidates
            for replica in sorted(caught_up):
                proposal = expand_isr(role.state, replica)
                if proposal is not None:
                    role.isr_change_pending = True
                    self.propose_isr(proposal)
                    break

    def check_lagging(self) -> None:
        """Propose dropping ISR followers that lag more than replica.lag.time.max."""
        now = self.clock()
        for role in self.leaders.values():
            if role.isr_change_pending:
                continue
            lagging = role.progress.lagging_followers(now, self.replica_lag_time_max)
            if lagging:
                proposal = shrink_isr(role.state, lagging)
                if proposal is not None:
                    log.info(
                        "shrinking ISR of %s-%d: %s lag more than %.1fs",
                        role.state.topic, role.state.partition, sorted(lagging),
                        self.replica_lag_time_max,
                    )
                    role.isr_change_pending = True
                    self.propose_isr(proposal)

    def isr_change_failed(self, key: PartitionKey) -> None:
        role = self.leaders.get(key)
        if role is not None:
            role.isr_change_pending = False

    def replication_health(self) -> tuple[int, int]:
        """(under-replicated, under min ISR) counts of the partitions we lead, from their
        current states (Kafka's UnderReplicatedPartitions and UnderMinIsrPartitionCount)."""
        under = below_min = 0
        for key, role in list(self.leaders.items()):
            try:
                min_isr = min_insync_replicas(self.log(*key))
            except KafkaError:  # its topic was just deleted: the next metadata drops the role
                continue
            under += under_replicated(role.state)
            below_min += under_min_isr(role.state, min_isr)
        return under, below_min

    # -- ReplicaManager overrides (client-facing paths) -------------------------------------

    async def append(
        self, topic: str, partition: int, records: bytes | memoryview, *, acks: int = -1,
        coordinator: bool = False,
    ) -> AppendResult:
        key = (topic, partition)
        role = self.leader_role(topic, partition)
        log_ = self.log(topic, partition)
        min_isr = min_insync_replicas(log_)
        if acks == -1 and len(role.state.isr) < min_isr:
            raise KafkaError(
                ErrorCode.not_enough_replicas,
                f"ISR {list(role.state.isr)} is smaller than min.insync.replicas={min_isr}",
            )
        try:
            checked = None
            if not coordinator and record.costly_to_open(records):
                checked = await self.check_off_loop(log_, records)
                role = self.leader_role(topic, partition)  # it may have moved meanwhile
            result = log_.append(records, leader_epoch=role.leader_epoch, checked=checked,
                                 coordinator=coordinator)
        except StorageError as error:
            raise kafka_error_from_storage(error) from error
        if not result.duplicate:
            # Wakes followers' long-polling fetches (and consumers, who re-check the HW).
            super().notify_append(topic, partition)
        self._advance(key, role)
        if acks != -1:
            return result
        await self._wait_committed(key, role, result.last_offset + 1)
        if len(role.state.isr) < min_isr:
            raise KafkaError(
                ErrorCode.not_enough_replicas_after_append,
                f"ISR shrank below min.insync.replicas={min_isr} while waiting",
            )
        return result

    async def _wait_committed(self, key: PartitionKey, role: LeaderRole, offset: int) -> None:
        if role.progress.high_watermark >= offset:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        role.ack_waiters.append((offset, waiter))
        try:
            await asyncio.wait_for(waiter, self.ack_timeout)
        except TimeoutError as error:
            raise KafkaError(
                ErrorCode.request_timed_out, "followers did not replicate in time"
            ) from error
        finally:
            if not waiter.done():
                waiter.cancel()
            with contextlib.suppress(ValueError):
                role.ack_waiters.remove((offset, waiter))

    def high_watermark(self, topic: str, partition: int) -> int:
        return self.leader_role(topic, partition).progress.high_watermark

    def hosted_high_watermark(self, topic: str, partition: int) -> int | None:
        leader = self.leaders.get((topic, partition))
        if leader is not None:
            return leader.progress.high_watermark
        follower = self.followers.get((topic, partition))
        return None if follower is None else follower.high_watermark

    def read(self, topic: str, partition: int, offset: int, max_bytes: int) -> LogRead:
        role = self.leader_role(topic, partition)
        log_ = self.log(topic, partition)
        try:
            return log_.read(offset, max_bytes, max_offset=role.progress.high_watermark)
        except StorageError as error:
            raise kafka_error_from_storage(error) from error

    # -- the Fetch handler's seam: leaders serve consumers and followers ------------------

    def is_replica_fetch(self, replica_id: int) -> bool:
        return replica_id >= 0

    def fetch_bounds(
        self, topic: str, partition: int, fetch_offset: int, current_leader_epoch: int,
        replica_id: int,
    ) -> FetchBounds:
        """Only the leader serves fetches, fenced by the epoch the fetcher believes in; a
        follower's fetch offset is its progress (HW, acks=all, ISR expansion) and it may read
        up to the log end, consumers only up to the high watermark."""
        role = self.leader_role(topic, partition)
        self.check_epoch(role, current_leader_epoch)
        log_ = self.log(topic, partition)
        from_follower = self.is_replica_fetch(replica_id)
        if from_follower:
            self.record_follower_fetch(topic, partition, replica_id, fetch_offset)
        log_end = log_.log_end_offset
        high_watermark = role.progress.high_watermark
        return FetchBounds(
            log_.log_start_offset,
            high_watermark,
            log_end,
            log_end if from_follower else high_watermark,
        )

    def list_offset(self, topic: str, partition: int, timestamp: int) -> tuple[int, int]:
        role = self.leader_role(topic, partition)
        if timestamp == LATEST_TIMESTAMP:
            return role.progress.high_watermark, -1
        if timestamp == EARLIEST_TIMESTAMP:
            return self.log(topic, partition).log_start_offset, -1
        offset, found_timestamp = super().list_offset(topic, partition, timestamp)
        if offset >= role.progress.high_watermark:
            return -1, -1
        return offset, found_timestamp

    def delete_records(self, topic: str, partition: int, offset: int) -> int:
        role = self.leader_role(topic, partition)
        target = role.progress.high_watermark if offset == -1 else offset
        if target > role.progress.high_watermark:
            raise KafkaError(ErrorCode.offset_out_of_range, "beyond the high watermark")
        return super().delete_records(topic, partition, target)

    def notify_append(self, topic: str, partition: int) -> None:
        super().notify_append(topic, partition)

    # -- follower side --------------------------------------------------------------------

    def follower_high_watermark(self, key: PartitionKey, high_watermark: int) -> None:
        role = self.followers.get(key)
        if role is not None:
            role.high_watermark = high_watermark

    def shutdown(self) -> None:
        for key in list(self.leaders):
            self._stop_leading(key)
        self.followers.clear()
