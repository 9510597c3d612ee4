"""Follower replication: one fetch loop per leader broker, over the Kafka protocol.

For every partition this broker follows, the loop first reconciles the local log with the leader
by leader epoch (OffsetForLeaderEpoch, KIP-101/279: truncate a divergent tail), then keeps
fetching from its log end offset with ``replica_id`` set, appending the leader's batches
unchanged (``append_replica`` keeps the leader-assigned offsets and epochs, and the storage
engine rebuilds idempotent-producer state from them). Which partitions to follow and from whom
comes from :class:`~headrace.cluster.replica_manager.ClusteredReplicaManager`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

from kio.schema.errors import ErrorCode
from kio.schema.fetch.v12 import request as fetch_v12
from kio.schema.offset_for_leader_epoch.v4 import request as epoch_v4
from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import i8, i32, i32Timedelta, i64

from headrace.cluster.connections import PeerTls, no_tls
from headrace.cluster.replica_manager import ClusteredReplicaManager, FollowerRole
from headrace.cluster.wire import BrokerConnection
from headrace.storage import StorageError

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]
EndpointLookup = Callable[[int], tuple[str, int] | None]


class ReplicaFetcher:
    """Keeps one task per leader we follow partitions from."""

    def __init__(
        self,
        manager: ClusteredReplicaManager,
        endpoint_of: EndpointLookup,
        *,
        max_wait_ms: int = 500,
        partition_max_bytes: int = 1 << 20,
        max_bytes: int = 8 << 20,
        throttle_bytes_per_second: int = 0,
        tls: PeerTls = no_tls,
    ) -> None:
        self.manager = manager
        self.endpoint_of = endpoint_of
        self.tls = tls
        self.max_wait_ms = max_wait_ms
        self.partition_max_bytes = partition_max_bytes
        self.max_bytes = max_bytes
        #: Rate limit for replicas being added by a reassignment (0: none), like Kafka's
        #: follower.replication.throttled.rate; shared by all throttled partitions.
        self.throttle_bytes_per_second = throttle_bytes_per_second
        self._throttle_ready_at = 0.0
        self._tasks: dict[int, asyncio.Task[None]] = {}
        #: Partition -> leader epoch for which truncation has been done.
        self._reconciled: dict[PartitionKey, int] = {}
        self._closed = False
        self._wake: dict[int, asyncio.Event] = {}
        #: Called after a follower append (readiness tracking, tests).
        self.on_progress: Callable[[PartitionKey], None] = lambda key: None

    def update(self) -> None:
        """Start loops for new leaders; loops for leaders we no longer follow end by themselves."""
        if self._closed:
            return
        leaders = {role.leader_id for role in self.manager.followers.values()}
        for leader_id in leaders:
            task = self._tasks.get(leader_id)
            if task is None or task.done():
                self._wake[leader_id] = asyncio.Event()
                self._tasks[leader_id] = asyncio.create_task(
                    self._run(leader_id), name=f"replica-fetcher-{leader_id}"
                )
            else:
                self._wake[leader_id].set()

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _partitions_of(self, leader_id: int) -> dict[PartitionKey, FollowerRole]:
        return {
            key: role
            for key, role in self.manager.followers.items()
            if role.leader_id == leader_id
        }

    async def _run(self, leader_id: int) -> None:
        connection: BrokerConnection | None = None
        backoff = 0.05
        try:
            while not self._closed:
                partitions = self._partitions_of(leader_id)
                if not partitions:
                    return
                endpoint = self.endpoint_of(leader_id)
                if endpoint is None:
                    await self._pause(leader_id, 0.2)
                    continue
                if connection is None or (connection.host, connection.port) != endpoint:
                    if connection is not None:
                        await connection.close()
                    connection = BrokerConnection(
                        *endpoint,
                        client_id=f"headrace-replica-{self.manager.node_id}",
                        timeout=10.0 + self.max_wait_ms / 1000,
                        tls=self.tls(),
                    )
                try:
                    pending = [
                        key for key, role in partitions.items()
                        if self._reconciled.get(key) != role.leader_epoch
                    ]
                    if pending:
                        await self._reconcile(connection, pending, partitions)
                        partitions = {
                            k: r for k, r in partitions.items()
                            if self._reconciled.get(k) == r.leader_epoch
                        }
                        if not partitions:
                            await self._pause(leader_id, backoff)
                            backoff = min(backoff * 2, 1.0)
                            continue
                    failed = await self._fetch(connection, partitions)
                    if failed:
                        await self._pause(leader_id, backoff)
                        backoff = min(backoff * 2, 1.0)
                    else:
                        backoff = 0.05
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ConnectionError) as e:
                    log.debug("fetch from broker %d failed: %s", leader_id, e)
                    await connection.close()
                    await self._pause(leader_id, backoff)
                    backoff = min(backoff * 2, 1.0)
        finally:
            if connection is not None:
                await connection.close()

    async def _pause(self, leader_id: int, seconds: float) -> None:
        event = self._wake.setdefault(leader_id, asyncio.Event())
        event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    # -- truncation by leader epoch -------------------------------------------------------

    async def _reconcile(
        self,
        connection: BrokerConnection,
        keys: list[PartitionKey],
        roles: dict[PartitionKey, FollowerRole],
    ) -> None:
        asks: dict[str, list[Any]] = {}
        no_epoch: list[PartitionKey] = []
        for key in keys:
            log_ = self.manager.log(*key)
            latest = log_.latest_leader_epoch
            if latest < 0 or log_.log_end_offset == log_.log_start_offset:
                no_epoch.append(key)
                continue
            asks.setdefault(key[0], []).append(
                epoch_v4.OffsetForLeaderPartition(
                    partition=i32(key[1]),
                    current_leader_epoch=i32(roles[key].leader_epoch),
                    leader_epoch=i32(latest),
                )
            )
        for key in no_epoch:
            # Nothing local to diverge (empty log): start fetching from where we are.
            self._reconciled[key] = roles[key].leader_epoch
        if not asks:
            return
        request = epoch_v4.OffsetForLeaderEpochRequest(
            replica_id=BrokerId(self.manager.node_id),
            topics=tuple(
                epoch_v4.OffsetForLeaderTopic(topic=TopicName(topic), partitions=tuple(parts))
                for topic, parts in asks.items()
            ),
        )
        response = await connection.request(request)
        for topic in response.topics:
            for answer in topic.partitions:
                key = (topic.topic, int(answer.partition))
                role = roles.get(key)
                if role is None:
                    continue
                if answer.error_code != ErrorCode.none:
                    log.debug("OffsetForLeaderEpoch %s-%d: %s", *key, answer.error_code.name)
                    continue
                self._truncate(key, int(answer.leader_epoch), int(answer.end_offset), role)
                self._reconciled[key] = role.leader_epoch

    def _truncate(
        self, key: PartitionKey, leader_epoch: int, leader_end: int, role: FollowerRole
    ) -> None:
        log_ = self.manager.log(*key)
        end = log_.log_end_offset
        if leader_end < 0:
            # The leader knows no epoch as old as ours: keep only what was committed.
            target = min(role.high_watermark, end)
        elif leader_epoch == log_.latest_leader_epoch:
            target = min(leader_end, end)
        else:
            _epoch, local_end = log_.end_offset_for_epoch(leader_epoch)
            target = min(leader_end, end, local_end if local_end >= 0 else end)
        target = max(target, log_.log_start_offset)
        if target < end:
            log.info("truncating %s-%d from %d to %d (leader epoch %d)", *key, end, target,
                     leader_epoch)
            log_.truncate_to(target)

    # -- fetching -------------------------------------------------------------------------

    async def _fetch(
        self, connection: BrokerConnection, roles: dict[PartitionKey, FollowerRole]
    ) -> bool:
        """One Fetch round; returns True when the leader answered with errors (back off)."""
        by_topic: dict[str, list[Any]] = {}
        rate = self.throttle_bytes_per_second
        throttling = rate > 0 and any(role.throttled for role in roles.values())
        if throttling:
            delay = self._throttle_ready_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        for key, role in roles.items():
            log_ = self.manager.log(*key)
            limit = self.partition_max_bytes
            if throttling and role.throttled:
                limit = max(1, min(limit, rate // 4))  # small steps keep the rate smooth
            by_topic.setdefault(key[0], []).append(
                fetch_v12.FetchPartition(
                    partition=i32(key[1]),
                    current_leader_epoch=i32(role.leader_epoch),
                    fetch_offset=i64(log_.log_end_offset),
                    log_start_offset=i64(log_.log_start_offset),
                    partition_max_bytes=i32(limit),
                )
            )
        request = fetch_v12.FetchRequest(
            replica_id=BrokerId(self.manager.node_id),
            max_wait=i32Timedelta.parse(datetime.timedelta(milliseconds=self.max_wait_ms)),
            min_bytes=i32(1),
            max_bytes=i32(self.max_bytes),
            isolation_level=i8(0),
            topics=tuple(
                fetch_v12.FetchTopic(topic=TopicName(topic), partitions=tuple(parts))
                for topic, parts in by_topic.items()
            ),
            forgotten_topics_data=(),
        )
        response = await connection.request(request)
        any_error = False
        for topic in response.responses:
            for data in topic.partitions:
                key = (topic.topic, int(data.partition_index))
                current = self.manager.followers.get(key)
                if current is None or current is not roles.get(key):
                    continue  # leadership moved while the fetch was in flight
                if data.error_code == ErrorCode.none:
                    size = self._append(key, data)
                    if throttling and roles[key].throttled and size:
                        start = max(self._throttle_ready_at, time.monotonic())
                        self._throttle_ready_at = start + size / rate
                elif data.error_code == ErrorCode.offset_out_of_range:
                    self._out_of_range(key, int(data.log_start_offset), int(data.high_watermark))
                    any_error = True
                else:
                    if data.error_code == ErrorCode.fenced_leader_epoch:
                        self._reconciled.pop(key, None)
                    any_error = True
        return any_error

    def _append(self, key: PartitionKey, data: Any) -> int:
        """Append the leader's batches; returns how many bytes were appended."""
        log_ = self.manager.log(*key)
        records = data.records
        size = len(records) if records else 0
        if records:
            try:
                log_.append_replica(bytes(records))
            except StorageError as error:
                log.warning("follower append to %s-%d failed: %s", *key, error)
                self._reconciled.pop(key, None)
                return 0
        high_watermark = int(data.high_watermark)
        self.manager.follower_high_watermark(key, min(high_watermark, log_.log_end_offset))
        self.on_progress(key)
        return size

    def _out_of_range(self, key: PartitionKey, leader_start: int, leader_hw: int) -> None:
        log_ = self.manager.log(*key)
        end = log_.log_end_offset
        if end < leader_start:
            log.info("%s-%d is behind the leader's log start %d: restarting there",
                     *key, leader_start)
            log_.truncate_fully_and_start_at(leader_start)
        elif leader_hw >= 0 and end > leader_hw:
            log_.truncate_to(max(leader_hw, log_.log_start_offset))
        self._reconciled.pop(key, None)
