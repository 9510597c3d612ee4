"""Live stream of a topic as Server-Sent Events: ``GET /v3/clusters/{c}/topics/{t}/stream``.

Starts from an offset, a timestamp, a consumer group's committed position, the beginning or the
end, then follows the log through the app's partition router: partitions this broker leads are
read in-process and, when caught up, park on the wake-on-append purgatory; on a cluster the
others are long-polled from their leaders with Fetch. New records go out as soon as they are
appended, with a keep-alive comment every ``keepalive`` seconds. Each event's ``id`` is
``partition:offset``. Nothing is committed for the group.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from headrace import record
from headrace.core.errors import KafkaError
from headrace.core.routing import Fetched, Offsets
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
DEFAULT_KEEPALIVE_SECONDS = 15.0


async def _ranges(ctx: WebContext, topic: str, partitions: list[int]) -> dict[int, Offsets]:
    """Each partition's readable range from its leader; an error answers the request."""
    found = await ctx.partitions.offsets((topic, p) for p in partitions)
    ranges = {}
    for p in partitions:
        outcome = found[(topic, p)]
        if isinstance(outcome, KafkaError):
            raise from_kafka_error(outcome)
        ranges[p] = outcome
    return ranges


async def _start_positions(request: web.Request, ctx: WebContext, topic: str,
                           partitions: list[int]) -> dict[int, int]:
    query = request.query
    chosen = [name for name in ("offset", "timestamp", "group", "from") if name in query]
    if len(chosen) > 1:
        raise ApiError(400, errors.INVALID_FIELD,
                       f"give only one of offset, timestamp, group, from (got {', '.join(chosen)})")
    positions: dict[int, int] = {}
    if "timestamp" in query:
        raw = query["timestamp"]
        try:
            millis = parse_timestamp("timestamp", int(raw) if raw.isdigit() else raw)
        except InvalidRecordError as exc:
            raise ApiError(400, errors.INVALID_FIELD, str(exc)) from None
        assert millis is not None
        ranges = await _ranges(ctx, topic, partitions)
        for p in partitions:
            try:
                offset = await ctx.partitions.offset_for_time(topic, p, millis)
            except KafkaError as error:
                raise from_kafka_error(error) from None
            positions[p] = offset if offset >= 0 else ranges[p].high_watermark
        return positions
    wanted: int | None = None
    if "offset" in query:
        wanted = int_param(request, "offset", minimum=0)
    where = query.get("from", "end")
    if "from" in query and where not in ("beginning", "end"):
        raise ApiError(400, errors.INVALID_FIELD, "from must be beginning or end")
    committed: dict[tuple[str, int], int] = {}
    if "group" in query:
        try:
            committed = await ctx.require_groups().committed_offsets(query["group"])
        except KafkaError as error:
            raise from_kafka_error(error) from None
    ranges = await _ranges(ctx, topic, partitions)
    for p in partitions:
        start, end = ranges[p].log_start_offset, ranges[p].high_watermark
        if wanted is not None:
            if not start <= wanted <= end:
                raise ApiError(400, errors.OFFSET_OUT_OF_RANGE,
                               f"offset {wanted} is outside [{start}, {end}] of partition {p}")
            positions[p] = wanted
        elif "group" in query:
            found = committed.get((topic, p))
            if found is not None and start <= found <= end:
                positions[p] = found
            else:
                positions[p] = start if query.get("reset", "earliest") == "earliest" else end
        else:
            positions[p] = start if where == "beginning" else end
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
    positions = await _start_positions(request, ctx, topic_name, partitions)

    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    sent = 0
    last_write = time.monotonic()
    source = ctx.partitions.reader(topic_name)
    try:
        while limit is None or sent < limit:
            with ctx.span("fetch", {"messaging.system": "kafka",
                                    "messaging.destination.name": topic_name,
                                    "messaging.operation": "receive"}):
                fetched = await source.poll(dict(positions), keepalive)
            events, sent_now = await _events(ctx, topic_name, positions, fetched, record_format,
                                       None if limit is None else limit - sent)
            now = time.monotonic()
            if events:
                await response.write(events.encode())
                sent += sent_now
                last_write = now
            elif now - last_write >= keepalive * 0.9:
                await response.write(b": keep-alive\n\n")
                last_write = now
    finally:
        await source.close()
    await response.write_eof()
    return response


async def _events(ctx: WebContext, topic: str, positions: dict[int, int],
                  fetched: list[Fetched], record_format: RecordFormat, budget: int | None
                  ) -> tuple[str, int]:
    """SSE text for the records ``fetched`` from ``positions`` (advanced in place).

    Decoding runs in a worker thread when the bytes read hold compressed or many records
    (:func:`record.costly_to_open`).
    """
    parts: list[str] = []
    count = 0
    for read in fetched:
        partition = read.partition
        if read.error is not None or partition not in positions:
            continue  # the topic vanished or its leader moved; the next poll re-checks
        if budget is not None and count >= budget:
            break
        position = positions[partition]
        if position < read.log_start_offset:  # retention moved past us: continue from there
            positions[partition] = read.log_start_offset
            continue
        data = read.data
        left = None if budget is None else budget - count
        if record.costly_to_open(data):
            text, records, position, complete = await asyncio.to_thread(
                _render_events, topic, partition, data, position, record_format, left)
        else:
            text, records, position, complete = _render_events(
                topic, partition, data, position, record_format, left)
        parts.append(text)
        count += records
        if complete:  # past batches with nothing to show (control records, compacted away)
            position = max([position] + [h.next_offset for h, _ in record.whole_batches(data)])
        positions[partition] = position
        if data:
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
