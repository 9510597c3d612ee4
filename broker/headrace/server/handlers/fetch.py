"""Fetch v4-12 for consumers and follower brokers: long polling woken by appends, zero-copy.

The one Fetch loop of the broker, single or clustered. Each round asks the replica manager (the
seam, :class:`~headrace.core.replica.ReplicaManager`) where each requested partition may be
read: it fences leaders and epochs, records a follower's progress and puts consumers' reads below
the high watermark and followers' up to the log end. Each round reads every requested partition
(whole batches, at least one batch for the first partition with data even when it exceeds the
limits); if fewer than ``min_bytes`` came back the reads are released and the request parks in
the broker's purgatory until an append to one of its partitions or ``max_wait`` runs out.
Records leave as file slices for ``os.sendfile``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from kio.schema.errors import ErrorCode

from headrace.core.broker import Broker
from headrace.core.errors import KafkaError
from headrace.core.replica import ReplicaManager
from headrace.core.requests import KafkaApi, RequestContext
from headrace.core.security import CLUSTER_NAME, Action, Operation, ResourceType
from headrace.protocol.codec import PreEncodedResponse
from headrace.protocol.fetch import (
    API_KEY,
    MAX_VERSION,
    MIN_VERSION,
    PartitionData,
    encode_fetch_body,
)
from headrace.server.handlers.binding import BrokerApi
from headrace.storage import LogRead

if TYPE_CHECKING:
    from headrace.core.api_types import FetchRequests

#: Requests are kio's; responses are framed by :mod:`headrace.protocol.fetch` (file slices).
FETCH: KafkaApi[FetchRequests, PreEncodedResponse] = KafkaApi(API_KEY)

_FETCH_SESSION_ID_NOT_FOUND = 70
#: The first Fetch version that carries the leader epoch the fetcher believes in (KIP-320).
_FIRST_VERSION_WITH_LEADER_EPOCH = 9


def _read_round(
    replicas: ReplicaManager, request: FetchRequests, version: int, reads: list[LogRead],
    refused: frozenset[str] = frozenset(),
) -> tuple[list[tuple[str, list[PartitionData]]], int, bool]:
    """One pass over the requested partitions: (topics, bytes read, any partition error);
    the ``refused`` topics' partitions are answered TOPIC_AUTHORIZATION_FAILED."""
    replica_id = int(getattr(request, "replica_id", -1))
    read_committed = (
        int(getattr(request, "isolation_level", 0)) == 1
        and not replicas.is_replica_fetch(replica_id)
    )
    budget = max(int(request.max_bytes), 0)
    total = 0
    any_error = False
    topics: list[tuple[str, list[PartitionData]]] = []
    for fetch_topic in request.topics:
        name = fetch_topic.topic
        partitions = []
        for fetch_partition in fetch_topic.partitions:
            index = int(fetch_partition.partition)
            if name in refused:
                any_error = True
                partitions.append(PartitionData(
                    index, ErrorCode.topic_authorization_failed, -1, -1, -1))
                continue
            offset = int(fetch_partition.fetch_offset)
            leader_epoch = (
                int(getattr(fetch_partition, "current_leader_epoch", -1))
                if version >= _FIRST_VERSION_WITH_LEADER_EPOCH
                else -1
            )
            try:
                bounds = replicas.fetch_bounds(
                    name,
                    index,
                    fetch_offset=offset,
                    current_leader_epoch=leader_epoch,
                    replica_id=replica_id,
                )
            except KafkaError as error:
                any_error = True
                partitions.append(PartitionData(index, error.code, -1, -1, -1))
                continue
            high_watermark = bounds.high_watermark
            try:
                log_ = replicas.log(name, index)
            except KafkaError as error:
                any_error = True
                partitions.append(PartitionData(index, error.code, -1, -1, -1))
                continue
            stable = log_.last_stable_offset(high_watermark)
            if read_committed:
                # read_committed stops at the Last Stable Offset: nothing undecided leaves.
                bounds = replace(bounds, readable_end=min(bounds.readable_end, stable))
            data = PartitionData(index, 0, high_watermark, stable, bounds.log_start_offset)
            if offset < bounds.log_start_offset or offset > bounds.log_end_offset:
                data.error_code = ErrorCode.offset_out_of_range
                any_error = True
            elif offset < bounds.readable_end and (budget > 0 or total == 0):
                limit = min(int(fetch_partition.partition_max_bytes), budget)
                try:
                    read = replicas.read_for_fetch(name, index, offset, max(limit, 1), bounds)
                except KafkaError as error:
                    data.error_code = error.code
                    any_error = True
                else:
                    if total > 0 and read.size > limit:
                        # Only the first partition with data may exceed the limits.
                        read.close()
                    else:
                        reads.append(read)
                        data.records = list(read.regions)
                        if read_committed:
                            data.aborted_transactions = log_.aborted_transactions(
                                offset, read.high_offset
                            )
                        total += read.size
                        budget -= read.size
            partitions.append(data)
        topics.append((name, partitions))
    return topics, total, any_error


async def handle_fetch(
    broker: Broker, request: FetchRequests, ctx: RequestContext
) -> PreEncodedResponse:
    replicas = broker.replicas
    version = ctx.api_version
    session_id = int(getattr(request, "session_id", 0))
    session_epoch = int(getattr(request, "session_epoch", -1))
    if session_id != 0 and session_epoch not in (0, -1):
        # We never create sessions, so an incremental fetch names one we do not know.
        return PreEncodedResponse(
            API_KEY,
            version >= 12,
            encode_fetch_body(version, [], error_code=_FETCH_SESSION_ID_NOT_FOUND),
            _FETCH_SESSION_ID_NOT_FOUND,
        )
    max_wait = request.max_wait.total_seconds()
    deadline = time.monotonic() + max_wait
    min_bytes = int(request.min_bytes)
    refused = _refused_topics(request, ctx)
    keys: list[tuple[str, int]] = [
        (t.topic, int(p.partition)) for t in request.topics for p in t.partitions
        if t.topic not in refused
    ]
    while True:
        reads: list[LogRead] = []
        try:
            topics, total, any_error = _read_round(replicas, request, version, reads, refused)
        except BaseException:
            _close_all(reads)
            raise
        remaining = deadline - time.monotonic()
        if total >= min_bytes or any_error or remaining <= 0 or not keys:
            break
        _close_all(reads)
        await broker.wait_for_append(keys, remaining)
    if not replicas.is_replica_fetch(int(getattr(request, "replica_id", -1))):
        observer = broker.observer
        for name, partitions in topics:
            for partition in partitions:
                size = partition.records_size
                if size:
                    observer.on_fetched(name, partition.partition, size)
    body = encode_fetch_body(version, topics)
    first_error = next(
        (p.error_code for _, ps in topics for p in ps if p.error_code), 0
    )
    # v1+ bodies open with throttle_time_ms.
    return PreEncodedResponse(
        API_KEY, version >= 12, body, int(first_error), lambda: _close_all(reads),
        throttle_at=0 if version >= 1 else None,
    )


def _is_follower(request: FetchRequests) -> bool:
    return int(getattr(request, "replica_id", -1)) >= 0


def fetch_actions(request: FetchRequests) -> Sequence[Action]:
    """Kafka's: a follower needs CLUSTER_ACTION on the cluster, a consumer READ on each topic."""
    if _is_follower(request):
        return [Action(Operation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME)]
    return [Action(Operation.READ, ResourceType.TOPIC, t.topic) for t in request.topics]


def _refused_topics(request: FetchRequests, ctx: RequestContext) -> frozenset[str]:
    if not ctx.denied:
        return frozenset()
    if _is_follower(request) and ctx.refused(ResourceType.CLUSTER, CLUSTER_NAME):
        return frozenset(t.topic for t in request.topics)
    return frozenset(t.topic for t in request.topics if ctx.refused(ResourceType.TOPIC, t.topic))


def _close_all(reads: list[LogRead]) -> None:
    for read in reads:
        read.close()


HANDLERS = (BrokerApi(FETCH, MIN_VERSION, MAX_VERSION, handle_fetch, fetch_actions),)
