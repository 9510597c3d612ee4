"""Live stream of a topic as Server-Sent Events: ``GET /v3/clusters/{c}/topics/{t}/stream``.

Starts from an offset, a timestamp, a consumer group's committed position, the beginning or the
end, then follows the log: when caught up it parks on the broker's wake-on-append purgatory
(``Broker.wait_for_append``), so new records go out as soon as they are appended, with a
keep-alive comment every ``keepalive`` seconds. Each event's ``id`` is ``partition:offset``.
Reads go straight to the partition logs in-process; nothing is committed for the group.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from headrace import record
from headrace.core.errors import KafkaError
from headrace.web import errors
from headrace.web.context import WebContext, context_of, int_param
from headrace.web.errors import ApiError, from_kafka_error
from headrace.web.records import (
    RECORD_FORMATS,
    InvalidRecordError,
    RecordFormat,
    parse_timestamp,
    render_record,
)

STREAM = "/v3/clusters/{cluster_id}/topics/{topic_name}/stream"
#: One encoder for every event (json.dumps with options builds a new one per call).
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
READ_BYTES = 1 << 20
DEFAULT_KEEPALIVE_SECONDS = 15.0


def _start_positions(request: web.Request, ctx: WebContext, topic: str,
                     partitions: list[int]) -> dict[int, int]:
    query = request.query
    chosen = [name for name in ("offset", "timestamp", "group", "from") if name in query]
    if len(chosen) > 1:
        raise ApiError(400, errors.INVALID_FIELD,
                       f"give only one of offset, timestamp, group, from (got {', '.join(chosen)})")
    positions: dict[int, int] = {}
    try:
        if "offset" in query:
            offset = int_param(request, "offset", minimum=0)
            assert offset is not None
            for p in partitions:
                start, end = ctx.broker.offsets(topic, p)
                if not start <= offset <= end:
                    raise ApiError(400, errors.OFFSET_OUT_OF_RANGE,
                                   f"offset {offset} is outside [{start}, {end}] of partition {p}")
                positions[p] = offset
        elif "timestamp" in query:
            raw = query["timestamp"]
            try:
                millis = parse_timestamp("timestamp", int(raw) if raw.isdigit() else raw)
            except InvalidRecordError as exc:
                raise ApiError(400, errors.INVALID_FIELD, str(exc)) from None
            assert millis is not None
            for p in partitions:
                offset, _ = ctx.broker.list_offsets(topic, p, millis)
                positions[p] = offset if offset >= 0 else ctx.broker.offsets(topic, p)[1]
        elif "group" in query:
            coordinator = ctx.groups
            if coordinator is None:
                raise ApiError(503, errors.GROUPS_UNAVAILABLE, "this broker has no groups")
            committed = coordinator.committed_offsets(query["group"])
            reset = query.get("reset", "earliest")
            for p in partitions:
                start, end = ctx.broker.offsets(topic, p)
                found = committed.get((topic, p))
                if found is not None and start <= found.offset <= end:
                    positions[p] = found.offset
                else:
                    positions[p] = start if reset == "earliest" else end
        else:
            where = query.get("from", "end")
            if where not in ("beginning", "end"):
                raise ApiError(400, errors.INVALID_FIELD, "from must be beginning or end")
            for p in partitions:
                start, end = ctx.broker.offsets(topic, p)
                positions[p] = start if where == "beginning" else end
    except KafkaError as error:
        raise from_kafka_error(error) from None
    return positions


async def stream_topic(request: web.Request) -> web.StreamResponse:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    topic_name = request.match_info["topic_name"]
    topic = ctx.require_topic(topic_name)
    partition = int_param(request, "partition", None, minimum=0)
    if partition is not None:
        ctx.require_partition(topic_name, partition)
    partitions = [partition] if partition is not None else list(range(topic.partitions))
    record_format = request.query.get("format", "json")
    if record_format not in RECORD_FORMATS:
        raise ApiError(400, errors.INVALID_FIELD,
                       f"format must be one of {', '.join(RECORD_FORMATS)}")
    limit = int_param(request, "limit", None, minimum=1)
    keepalive = float(int_param(request, "keepalive_ms", None, minimum=10) or
                      DEFAULT_KEEPALIVE_SECONDS * 1000) / 1000
    positions = _start_positions(request, ctx, topic_name, partitions)

    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    sent = 0
    while limit is None or sent < limit:
        events, sent_now = await _read_events(ctx, topic_name, positions,
                                              record_format,
                                              None if limit is None else limit - sent)
        if events:
            await response.write(events.encode())
            sent += sent_now
            continue
        started = time.monotonic()
        woke = await ctx.broker.wait_for_append([(topic_name, p) for p in partitions], keepalive)
        if not woke and time.monotonic() - started >= keepalive * 0.9:
            await response.write(b": keep-alive\n\n")
    await response.write_eof()
    return response


async def _read_events(ctx: WebContext, topic: str, positions: dict[int, int],
                       record_format: RecordFormat, budget: int | None) -> tuple[str, int]:
    """SSE text for the records available now from ``positions`` (advanced in place).

    Reads run on the event loop (the logs are the loop's); decoding runs in a worker thread
    when the bytes read hold compressed or many records (:func:`record.costly_to_open`).
    """
    parts: list[str] = []
    count = 0
    for partition, position in positions.items():
        if budget is not None and count >= budget:
            break
        try:
            start, end = ctx.broker.offsets(topic, partition)
            if position < start:  # retention moved past us: continue from the new start
                position = positions[partition] = start
            if position >= end:
                continue
            with ctx.tracer.start_as_current_span("fetch", attributes={
                    "messaging.system": "kafka", "messaging.destination.name": topic,
                    "messaging.operation": "receive"}), \
                    ctx.broker.read(topic, partition, position, READ_BYTES) as read:
                data = read.to_bytes()
                high = read.high_offset
        except KafkaError:
            continue  # the topic vanished or moved; the next round re-checks
        left = None if budget is None else budget - count
        if record.costly_to_open(data):
            text, records, position, complete = await asyncio.to_thread(
                _render_events, topic, partition, data, position, record_format, left)
        else:
            text, records, position, complete = _render_events(
                topic, partition, data, position, record_format, left)
        parts.append(text)
        count += records
        positions[partition] = max(position, high) if complete else position
        ctx.metrics.on_fetched(topic, partition, len(data), records)
    return "".join(parts), count


def _render_events(topic: str, partition: int, data: bytes, position: int,
                   record_format: RecordFormat, budget: int | None
                   ) -> tuple[str, int, int, bool]:
    """(SSE text, records in it, the next position, whether all of ``data`` was rendered).

    A batch whose records cannot be opened (malformed, a codec we do not decode, or inflating
    past the bound of :mod:`headrace.record.compression`) becomes one ``error`` event and is
    skipped, so the stream neither dies nor retries it forever.
    """
    parts: list[str] = []
    count = 0
    for header, batch in record.whole_batches(data):
        if header.is_control or header.next_offset <= position:
            continue
        try:
            for entry in record.batch_records(batch, header):
                if entry.offset < position:
                    continue
                if budget is not None and count >= budget:
                    return "".join(parts), count, position, False
                payload: dict[str, Any] = render_record(topic, partition, entry, record_format)
                parts.append(f"id: {partition}:{entry.offset}\nevent: record\n"
                             f"data: {_encode(payload)}\n\n")
                position = entry.offset + 1
                count += 1
        except record.RecordError as error:
            problem = {"partition": partition, "offset": header.base_offset,
                       "last_offset": header.last_offset, "message": str(error)}
            parts.append(f"id: {partition}:{header.last_offset}\nevent: error\n"
                         f"data: {_encode(problem)}\n\n")
            position = header.next_offset
    return "".join(parts), count, position, True


def add_routes(app: web.Application) -> None:
    app.router.add_get(STREAM, stream_topic)


__all__ = ["add_routes", "stream_topic"]
