"""A cluster member's :class:`~headrace.core.routing.PartitionRouter`: partitions this broker
leads are served in-process, the others are forwarded to their leader over the Kafka protocol
(Produce, ListOffsets, Fetch), as a Kafka client would send them.

Leaders come from the cluster metadata (the etcd cache every broker keeps), so no Metadata round
trip precedes a forwarded request. When the leader answers that it no longer leads (or cannot
be reached), the request waits for the metadata to move on (at most ``refresh_timeout``) and is
tried once more; a second failure is the caller's KafkaError (HTTP 503 NOT_LEADER).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode
from kio.schema.fetch.v12 import request as fetch_v12
from kio.schema.list_offsets.v7 import request as list_offsets_v7
from kio.schema.produce.v9 import request as produce_v9
from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import Records, i8, i16, i32, i32Timedelta, i64

from headrace.cluster.connections import CONNECTION_ERRORS, ConnectionPool
from headrace.cluster.model import NO_LEADER
from headrace.core.errors import KafkaError
from headrace.core.replica import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from headrace.core.routing import (
    READ_BYTES,
    Fetched,
    LocalRecordSource,
    LocalRouter,
    Offsets,
    PartitionKey,
    RecordSource,
)
from headrace.storage import AppendResult

if TYPE_CHECKING:
    from headrace.cluster.store import EtcdMetadataStore
    from headrace.cluster.wire import BrokerConnection

#: Errors after which the request is worth one more try once the metadata has moved on.
RETRIABLE = frozenset({
    ErrorCode.not_leader_or_follower, ErrorCode.leader_not_available,
    ErrorCode.fenced_leader_epoch, ErrorCode.unknown_leader_epoch,
    ErrorCode.not_coordinator, ErrorCode.coordinator_not_available,
    ErrorCode.coordinator_load_in_progress,
})

PRODUCE_TIMEOUT = datetime.timedelta(seconds=30)


def retriable(outcome: object) -> bool:
    return isinstance(outcome, KafkaError) and outcome.code in RETRIABLE


def _millis(delta: datetime.timedelta) -> i32Timedelta:
    return i32Timedelta.parse(delta)


class ForwardingRouter:
    """Routes each partition to its leader: this broker's services or a Kafka request."""

    def __init__(self, local: LocalRouter, store: EtcdMetadataStore, node_id: int,
                 pool: ConnectionPool, *, refresh_timeout: float = 2.0) -> None:
        self.local = local
        self.store = store
        self.node_id = node_id
        self.pool = pool
        self.refresh_timeout = refresh_timeout

    # -- leadership -----------------------------------------------------------------------

    def leader_of(self, topic: str, partition: int) -> tuple[int, int]:
        """(leader id or NO_LEADER, partition epoch) from the cluster metadata."""
        state = self.store.cache.partitions.get((topic, partition))
        if state is None:
            return NO_LEADER, -1
        return state.leader, state.partition_epoch

    async def refresh(self, seen: dict[PartitionKey, tuple[int, int]]) -> None:
        """Wait (bounded) until the metadata of any of ``seen`` moved past what was seen."""

        def moved(snapshot: Any) -> bool:
            for key, (leader, epoch) in seen.items():
                state = snapshot.partitions.get(key)
                if state is not None and state.leader != NO_LEADER and (
                        state.leader != leader or state.partition_epoch != epoch):
                    return True
            return False

        with contextlib.suppress(TimeoutError):
            await self.store.wait_until(moved, timeout=self.refresh_timeout)

    async def _twice(self, key: PartitionKey,
                     attempt: Callable[[int], Awaitable[Any]]) -> Any:
        """``attempt(leader)``, once more after a metadata refresh if the leader moved."""
        seen = self.leader_of(*key)
        try:
            return await attempt(seen[0])
        except KafkaError as error:
            if not retriable(error):
                raise
        await self.refresh({key: seen})
        leader = self.leader_of(*key)[0]
        try:
            return await attempt(leader)
        except KafkaError as error:
            if not retriable(error):
                raise
            raise KafkaError(error.code, f"{key[0]}-{key[1]}: the leader moved or is unavailable"
                                         f" ({error.message or error.code.name}); retry") from None

    # -- offsets --------------------------------------------------------------------------

    async def offsets(self, partitions: Iterable[PartitionKey]
                      ) -> dict[PartitionKey, Offsets | KafkaError]:
        keys = list(dict.fromkeys(partitions))
        seen = {key: self.leader_of(*key) for key in keys}
        results = await self._offsets_once({key: seen[key][0] for key in keys})
        again = {key: seen[key] for key, outcome in results.items() if retriable(outcome)}
        if again:
            await self.refresh(again)
            results.update(await self._offsets_once(
                {key: self.leader_of(*key)[0] for key in again}))
        return results

    async def _offsets_once(self, leaders: dict[PartitionKey, int]
                            ) -> dict[PartitionKey, Offsets | KafkaError]:
        by_leader: dict[int, list[PartitionKey]] = {}
        results: dict[PartitionKey, Offsets | KafkaError] = {}
        for key, leader in leaders.items():
            if leader == self.node_id:
                results[key] = self.local.local_offsets(*key)
            elif leader == NO_LEADER:
                results[key] = KafkaError(ErrorCode.leader_not_available,
                                          f"{key[0]}-{key[1]} has no leader")
            else:
                by_leader.setdefault(leader, []).append(key)
        answers = await asyncio.gather(
            *(self._remote_offsets(leader, keys) for leader, keys in by_leader.items()))
        for answer in answers:
            results.update(answer)
        return results

    async def _remote_offsets(self, leader: int, keys: list[PartitionKey]
                              ) -> dict[PartitionKey, Offsets | KafkaError]:
        try:
            starts, ends = await asyncio.gather(
                self._list_offsets(leader, {key: EARLIEST_TIMESTAMP for key in keys}),
                self._list_offsets(leader, {key: LATEST_TIMESTAMP for key in keys}))
        except KafkaError as error:
            return dict.fromkeys(keys, error)
        results: dict[PartitionKey, Offsets | KafkaError] = {}
        for key in keys:
            start, end = starts[key], ends[key]
            if isinstance(start, KafkaError):
                results[key] = start
            elif isinstance(end, KafkaError):
                results[key] = end
            else:
                results[key] = Offsets(start, end)
        return results

    async def _list_offsets(self, leader: int, asks: dict[PartitionKey, int]
                            ) -> dict[PartitionKey, int | KafkaError]:
        by_topic: dict[str, list[Any]] = {}
        for (topic, partition), timestamp in asks.items():
            by_topic.setdefault(topic, []).append(list_offsets_v7.ListOffsetsPartition(
                partition_index=i32(partition), timestamp=i64(timestamp)))
        request = list_offsets_v7.ListOffsetsRequest(
            replica_id=BrokerId(-1), isolation_level=i8(0),
            topics=tuple(list_offsets_v7.ListOffsetsTopic(name=TopicName(t), partitions=tuple(p))
                         for t, p in by_topic.items()))
        response = await self.pool.request(leader, request)
        results: dict[PartitionKey, int | KafkaError] = {
            key: KafkaError(ErrorCode.unknown_server_error, "not answered") for key in asks}
        for topic in response.topics:
            for answer in topic.partitions:
                key = (str(topic.name), int(answer.partition_index))
                if answer.error_code != ErrorCode.none:
                    results[key] = KafkaError(answer.error_code, f"from broker {leader}")
                else:
                    results[key] = int(answer.offset)
        return results

    async def offset_for_time(self, topic: str, partition: int, timestamp: int) -> int:
        key = (topic, partition)

        async def attempt(leader: int) -> int:
            if leader == self.node_id:
                return await self.local.offset_for_time(topic, partition, timestamp)
            self._check_leader(key, leader)
            outcome = (await self._list_offsets(leader, {key: timestamp}))[key]
            if isinstance(outcome, KafkaError):
                raise outcome
            return outcome

        result: int = await self._twice(key, attempt)
        return result

    def _check_leader(self, key: PartitionKey, leader: int) -> None:
        if leader == NO_LEADER:
            raise KafkaError(ErrorCode.leader_not_available, f"{key[0]}-{key[1]} has no leader")

    # -- produce --------------------------------------------------------------------------

    async def produce(self, topic: str, partition: int, records: bytes, *, acks: int = -1
                      ) -> AppendResult:
        key = (topic, partition)

        async def attempt(leader: int) -> AppendResult:
            if leader == self.node_id:
                return await self.local.produce(topic, partition, records, acks=acks)
            self._check_leader(key, leader)
            return await self._remote_produce(leader, key, records, acks)

        result: AppendResult = await self._twice(key, attempt)
        return result

    async def _remote_produce(self, leader: int, key: PartitionKey, records: bytes, acks: int
                              ) -> AppendResult:
        request = produce_v9.ProduceRequest(
            acks=i16(acks), timeout=_millis(PRODUCE_TIMEOUT),
            topic_data=(produce_v9.TopicProduceData(
                name=TopicName(key[0]),
                partition_data=(produce_v9.PartitionProduceData(
                    index=i32(key[1]), records=Records(records)),)),))
        response = await self.pool.request(leader, request)
        for topic in response.responses:
            for answer in topic.partition_responses:
                if answer.error_code != ErrorCode.none:
                    raise KafkaError(answer.error_code,
                                     answer.error_message or f"from broker {leader}")
                appended = answer.log_append_time
                return AppendResult(
                    base_offset=int(answer.base_offset),
                    last_offset=int(answer.base_offset),  # not in the answer; unused here
                    log_append_time_ms=(-1 if appended is None
                                        else int(appended.timestamp() * 1000)),
                    log_start_offset=int(answer.log_start_offset),
                )
        raise KafkaError(ErrorCode.unknown_server_error, f"broker {leader} did not answer "
                                                         f"for {key[0]}-{key[1]}")

    # -- reads ----------------------------------------------------------------------------

    def reader(self, topic: str) -> RecordSource:
        return ForwardingRecordSource(self, topic)


class ForwardingRecordSource:
    """Long-polls each leader of the topic's partitions at once: this broker's own partitions
    through the wake-on-append purgatory, the others with a Fetch (consumer, ``replica_id``
    -1) on a connection of this stream's own. A poll returns as soon as one leader has
    records; the other leaders' fetches stay in flight for the next poll."""

    def __init__(self, router: ForwardingRouter, topic: str) -> None:
        self.router = router
        self.topic = topic
        self.local = LocalRecordSource(router.local.broker, topic)
        self._inflight: dict[asyncio.Task[list[Fetched]], tuple[int, frozenset[int]]] = {}
        self._connections: dict[int, BrokerConnection] = {}

    async def poll(self, positions: dict[int, int], max_wait: float) -> list[Fetched]:
        busy = {p for _, partitions in self._inflight.values() for p in partitions}
        # One fetch per leader at a time (each leader's connection carries one request).
        busy_leaders = {leader for leader, _ in self._inflight.values()}
        groups: dict[int, dict[int, int]] = {}
        for partition, position in positions.items():
            if partition in busy:
                continue
            leader = self.router.leader_of(self.topic, partition)[0]
            if leader != NO_LEADER and leader not in busy_leaders:
                groups.setdefault(leader, {})[partition] = position
        for leader, wanted in groups.items():
            task = asyncio.ensure_future(self._poll_leader(leader, wanted, max_wait))
            self._inflight[task] = (leader, frozenset(wanted))
        if not self._inflight:  # no partition has a leader right now
            await self.router.refresh(
                {(self.topic, p): self.router.leader_of(self.topic, p) for p in positions})
            return []
        done, _ = await asyncio.wait(list(self._inflight), timeout=max_wait,
                                     return_when=asyncio.FIRST_COMPLETED)
        fetched: list[Fetched] = []
        for task in done:
            del self._inflight[task]
            fetched.extend(task.result())
        return fetched

    async def _poll_leader(self, leader: int, positions: dict[int, int], max_wait: float
                           ) -> list[Fetched]:
        if leader == self.router.node_id:
            return await self.local.poll(positions, max_wait)
        try:
            return await self._fetch(leader, positions, max_wait)
        except (KafkaError, *CONNECTION_ERRORS) as error:
            connection = self._connections.pop(leader, None)
            if connection is not None:
                await connection.close()
            failure = error if isinstance(error, KafkaError) else KafkaError(
                ErrorCode.leader_not_available, f"broker {leader}: {error}")
            await asyncio.sleep(min(max_wait, 0.2))  # a peer that is down: no busy loop
            return [Fetched(p, error=failure) for p in positions]

    async def _fetch(self, leader: int, positions: dict[int, int], max_wait: float
                     ) -> list[Fetched]:
        connection = self._connections.get(leader)
        if connection is None:
            connection = self._connections[leader] = self.router.pool.connection(leader)
        request = fetch_v12.FetchRequest(
            replica_id=BrokerId(-1),
            max_wait=_millis(datetime.timedelta(seconds=max_wait)),
            min_bytes=i32(1),
            max_bytes=i32(8 * READ_BYTES),
            isolation_level=i8(0),
            topics=(fetch_v12.FetchTopic(topic=TopicName(self.topic), partitions=tuple(
                fetch_v12.FetchPartition(
                    partition=i32(partition), fetch_offset=i64(position),
                    log_start_offset=i64(-1), partition_max_bytes=i32(READ_BYTES))
                for partition, position in positions.items())),),
            forgotten_topics_data=(),
        )
        response = await connection.request(request)
        fetched = []
        for topic in response.responses:
            for data in topic.partitions:
                partition = int(data.partition_index)
                if data.error_code not in (ErrorCode.none, ErrorCode.offset_out_of_range):
                    fetched.append(Fetched(partition, error=KafkaError(
                        data.error_code, f"from broker {leader}")))
                    continue
                fetched.append(Fetched(partition, bytes(data.records or b""),
                                       int(data.log_start_offset), int(data.high_watermark)))
        return fetched

    async def close(self) -> None:
        tasks = list(self._inflight)
        self._inflight.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            await connection.close()


__all__ = ["ForwardingRecordSource", "ForwardingRouter", "retriable"]
