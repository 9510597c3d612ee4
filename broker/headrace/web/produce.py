"""HTTP produce: ``POST /v3/clusters/{cluster_id}/topics/{topic}/records``.

One JSON object in the body gets one JSON answer (and any bad input is a 4xx with nothing
written). Several objects concatenated in the body, or a chunked body, is Confluent's streaming
mode: records are parsed as they arrive, each group of records available at once is appended as
one RecordBatch per partition through ``Broker.produce`` (the Kafka produce path: validation,
metrics, replication), and the response streams one JSON result per record, in order, as
newline-delimited JSON; a bad record gets an error result of its own and does not stop the
stream. When tracing is on, every record carries the request's ``traceparent`` header.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from headrace.observability.tracing import TRACEPARENT, traceparent_header
from headrace.server.errors import KafkaError
from headrace.server.topics import is_internal
from headrace.web import errors
from headrace.web.context import WebContext, context_of, json_response, read_body
from headrace.web.errors import ApiError, from_kafka_error
from headrace.web.records import (
    InvalidRecordError,
    JsonStream,
    ProduceRecord,
    build_batch,
    choose_partition,
    format_timestamp,
    parse_produce_request,
    split_json_body,
)

#: (record, partition, error): one parsed request awaiting its append.
_Pending = tuple[ProduceRecord | None, int, ApiError | None]


def _prepare(ctx: WebContext, topic: str, partitions: int, bodies: list[Any]
             ) -> list[_Pending]:
    """Validate each request object and pick its partition (one loop: this runs per record)."""
    pending: list[_Pending] = []
    add = pending.append
    for body in bodies:
        try:
            record = parse_produce_request(body)
        except InvalidRecordError as exc:
            add((None, -1, ApiError(400, errors.INVALID_FIELD, str(exc))))
            continue
        partition = record.partition
        if partition is None:
            ctx.round_robin += 1
            add((record, choose_partition(record.key, partitions, ctx.round_robin), None))
        elif partition < partitions:
            add((record, partition, None))
        else:
            add((record, -1, ApiError(
                404, errors.UNKNOWN_PARTITION,
                f"partition {partition} of topic {topic!r} not found (it has {partitions})")))
    return pending


def _error_line(error: ApiError) -> str:
    return json.dumps({"error_code": error.error_code, "message": error.message}) + "\n"


@functools.lru_cache(maxsize=256)
def _json_text(value: str) -> str:
    return json.dumps(value)


def _data_json(data_type: str | None, size: int) -> str:
    if data_type is None:
        return "null"
    return f'{{"type":"{data_type}","size":{size}}}'


@functools.lru_cache(maxsize=1024)
def _result_tail(timestamp: int, key_type: str | None, key_size: int,
                 value_type: str | None, value_size: int) -> str:
    """The part of a success line after the offset; records of a request mostly share it."""
    return (f',"timestamp":"{format_timestamp(timestamp)}",'
            f'"key":{_data_json(key_type, key_size)},'
            f'"value":{_data_json(value_type, value_size)}}}\n')


async def _append(ctx: WebContext, topic: str, pending: Sequence[_Pending]) -> list[str]:
    """Append the valid records (one batch per partition); one NDJSON result line per record.

    Success lines are formatted from a cached tail (json.dumps per record was the hot spot):
    between alike records of a request only the offset differs."""
    lines: list[str] = [""] * len(pending)
    by_partition: dict[int, list[int]] = {}
    for index, (_, partition, error) in enumerate(pending):
        if error is not None:
            lines[index] = _error_line(error)
        else:
            by_partition.setdefault(partition, []).append(index)
    now_ms = int(time.time() * 1000)
    trace_header = traceparent_header()
    trace_entry = (TRACEPARENT, trace_header.encode()) if trace_header is not None else None
    for partition, indexes in by_partition.items():
        records = [pending[index][0] for index in indexes]
        entries = []
        for record in records:
            assert record is not None
            headers = record.headers
            if trace_entry is not None and all(name != TRACEPARENT for name, _ in headers):
                headers = (*headers, trace_entry)
            timestamp = record.timestamp_ms
            entries.append((now_ms if timestamp is None else timestamp, record.key,
                            record.value, headers))
        try:
            appended = await ctx.broker.produce(topic, partition, build_batch(entries), acks=-1)
        except KafkaError as exc:
            failure = _error_line(from_kafka_error(exc))
            for index in indexes:
                lines[index] = failure
            continue
        head = (f'{{"error_code":200,"cluster_id":{_json_text(ctx.broker.cluster_id)},'
                f'"topic_name":{_json_text(topic)},"partition_id":{partition},"offset":')
        append_time = appended.log_append_time_ms
        offset = appended.base_offset
        for index, entry, record in zip(indexes, entries, records, strict=True):
            assert record is not None
            key, value = entry[1], entry[2]
            tail = _result_tail(append_time if append_time >= 0 else entry[0],
                                record.key_type, 0 if key is None else len(key),
                                record.value_type, 0 if value is None else len(value))
            lines[index] = f"{head}{offset}{tail}"
            offset += 1
    return lines


async def produce_records(request: web.Request) -> web.StreamResponse:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    topic_name = request.match_info["topic_name"]
    topic = ctx.require_topic(topic_name)
    if is_internal(topic_name):
        raise ApiError(403, errors.FORBIDDEN,
                       f"cannot produce to internal topic {topic_name!r}")
    with ctx.span("produce", {
            "messaging.system": "kafka", "messaging.destination.name": topic_name,
            "messaging.operation": "publish"}):
        if request.headers.get("Transfer-Encoding", "").lower() != "chunked":
            values, problem = split_json_body(await read_body(request))
            if problem is not None:
                raise ApiError(400, errors.MALFORMED_JSON, problem)
            if not values:
                raise ApiError(400, errors.MALFORMED_JSON, "request body has no JSON object")
            if len(values) == 1:
                return await _produce_one(ctx, topic_name, topic.partitions, values[0])
            # The whole body is here: answer every record in one response body.
            lines = await _append(ctx, topic_name, _prepare(ctx, topic_name, topic.partitions,
                                                            values))
            return web.Response(body="".join(lines).encode(),
                                content_type="application/x-ndjson")
        return await _produce_stream(request, ctx, topic_name, topic.partitions)


async def _produce_one(ctx: WebContext, topic: str, partitions: int, body: Any
                       ) -> web.Response:
    (pending,) = _prepare(ctx, topic, partitions, [body])
    if pending[2] is not None:
        raise pending[2]
    (line,) = await _append(ctx, topic, [pending])
    result = json.loads(line)
    if result["error_code"] != 200:
        status = int(str(result["error_code"])[:3])
        raise ApiError(status, result["error_code"], result["message"])
    return json_response(result)


async def _produce_stream(request: web.Request, ctx: WebContext, topic: str, partitions: int
                          ) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/x-ndjson"})
    response.enable_chunked_encoding()
    await response.prepare(request)

    async def answer(values: list[Any]) -> None:
        lines = await _append(ctx, topic, _prepare(ctx, topic, partitions, values))
        await response.write("".join(lines).encode())

    stream = JsonStream()
    limit = ctx.max_body_bytes
    async for chunk in request.content.iter_any():
        values = stream.feed(chunk)
        if values:
            await answer(values)
        if stream.pending_chars > limit:
            await _write_error(response, ApiError(
                413, errors.BODY_TOO_LARGE, f"a record is over the {limit}-byte limit"))
            break
    else:
        problem = stream.finish()
        if problem is not None:
            await _write_error(response, ApiError(400, errors.MALFORMED_JSON, problem))
    await response.write_eof()
    return response


async def _write_error(response: web.StreamResponse, error: ApiError) -> None:
    await response.write(_error_line(error).encode())


__all__ = ["produce_records"]
