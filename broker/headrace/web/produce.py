"""HTTP produce: v3 ``POST /v3/clusters/{cluster_id}/topics/{topic}/records`` and v2
``POST /topics/{topic}[/partitions/{partition}]``; one append path, each answering in its shape.

v3: one JSON object in the body gets one JSON answer (and any bad input is a 4xx with nothing
written). Several objects concatenated in the body, or a chunked body, is Confluent's streaming
mode: records are parsed as they arrive, each group of records available at once is appended as
one RecordBatch per partition through ``Broker.produce`` (the Kafka produce path: validation,
metrics, replication), and the response streams one JSON result per record, in order, as
newline-delimited JSON; a bad record gets an error result of its own and does not stop the
stream. v2 (Confluent REST Proxy v2, Redpanda, Strimzi's bridge): ``{"records": [...]}`` checked as
a whole, answered with one ``offsets`` entry per record. When tracing is on, every record carries
the request's ``traceparent`` header.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple

from aiohttp import web

from headrace.observability.tracing import TRACEPARENT, traceparent_header
from headrace.server.errors import KafkaError
from headrace.server.topics import is_internal
from headrace.storage import TopicMetadata
from headrace.web import errors
from headrace.web.context import WebContext, context_of, json_response, path_int, read_body
from headrace.web.errors import ApiError, from_kafka_error
from headrace.web.records import (
    V2_FORMATS,
    InvalidRecordError,
    JsonStream,
    MalformedJsonError,
    ProduceRecord,
    choose_partition,
    format_timestamp,
    new_batch_builder,
    parse_produce_lines,
    parse_produce_request,
    parse_v2_produce,
    split_json_body,
)


def _parse_each(bodies: list[Any]) -> list[ProduceRecord | ApiError]:
    """The general path: validate each request object on its own (errors answer that record)."""
    parsed: list[ProduceRecord | ApiError] = []
    add = parsed.append
    for body in bodies:
        try:
            add(parse_produce_request(body))
        except InvalidRecordError as exc:
            add(ApiError(400, errors.INVALID_FIELD, str(exc)))
    return parsed


class _PartitionBatch:
    """The records of one request bound for one partition: their batch, where they answer, and
    (once appended) the outcome."""

    __slots__ = ("append", "base_offset", "builder", "error", "indexes", "log_append_time_ms")

    def __init__(self) -> None:
        self.builder = new_batch_builder()
        self.append = self.builder.append
        self.indexes: list[int] = []
        self.base_offset = -1
        self.log_append_time_ms = -1
        self.error: ApiError | None = None


class _Appended(NamedTuple):
    """What became of a request's records: an error for each record that was not placed, and
    the batch (with its outcome) of each partition written to."""

    now_ms: int
    refused: dict[int, ApiError]
    batches: dict[int, _PartitionBatch]


async def _append(ctx: WebContext, topic: str, partitions: int,
                   records: Sequence[ProduceRecord | ApiError]) -> _Appended:
    """Append the valid records of one request, one RecordBatch per partition.

    One pass picks each record's partition and writes it into that partition's batch: this is
    the per-record cost of HTTP produce, so it is kept to one loop."""
    refused: dict[int, ApiError] = {}
    batches: dict[int, _PartitionBatch] = {}
    now_ms = int(time.time() * 1000)
    trace_header = traceparent_header()
    trace_entry = (TRACEPARENT, trace_header.encode()) if trace_header is not None else None
    for index, record in enumerate(records):
        if isinstance(record, ApiError):
            refused[index] = record
            continue
        # Unpacking beats attribute access on this path (it runs once per record).
        partition, key, value, headers, timestamp, _, _ = record
        if partition is None:
            ctx.round_robin += 1
            partition = choose_partition(key, partitions, ctx.round_robin)
        elif partition >= partitions:
            refused[index] = ApiError(
                404, errors.UNKNOWN_PARTITION,
                f"partition {partition} of topic {topic!r} not found (it has {partitions})")
            continue
        batch = batches.get(partition)
        if batch is None:
            batch = batches[partition] = _PartitionBatch()
        if trace_entry is not None and all(name != TRACEPARENT for name, _ in headers):
            headers = [*headers, trace_entry]
        indexes = batch.indexes
        batch.append(len(indexes), now_ms if timestamp is None else timestamp, key, value,
                     headers)
        indexes.append(index)
    for partition, batch in batches.items():
        try:
            appended = await ctx.broker.produce(topic, partition, bytes(batch.builder.build()),
                                              acks=-1)
        except KafkaError as exc:
            batch.error = from_kafka_error(exc)
        else:
            batch.base_offset = appended.base_offset
            batch.log_append_time_ms = appended.log_append_time_ms
    return _Appended(now_ms, refused, batches)


def _error_line(error: ApiError) -> str:
    return json.dumps({"error_code": error.error_code, "message": error.message}) + "\n"


@functools.lru_cache(maxsize=256)
def _json_text(value: str) -> str:
    return json.dumps(value)


def _data_json(data_type: str | None, size: int) -> str:
    if data_type is None:
        return "null"
    return f'{{"type":"{data_type}","size":{size}}}'


def _result_tail(timestamp: int, key_type: str | None, key_size: int,
                 value_type: str | None, value_size: int) -> str:
    """The part of a success line after the offset; records of a request mostly share it."""
    return (f',"timestamp":"{format_timestamp(timestamp)}",'
            f'"key":{_data_json(key_type, key_size)},'
            f'"value":{_data_json(value_type, value_size)}}}\n')


def _answer_slots(appended: _Appended, count: int, render: Callable[[ApiError], str]
                  ) -> list[str]:
    """One answer per record, the refused ones and those of failed batches already rendered;
    the caller fills in the written ones."""
    answers = [""] * count
    for index, error in appended.refused.items():
        answers[index] = render(error)
    for batch in appended.batches.values():
        if batch.error is not None:
            failure = render(batch.error)
            for index in batch.indexes:
                answers[index] = failure
    return answers


async def _produce_v3(ctx: WebContext, topic: str, partitions: int,
                      records: Sequence[ProduceRecord | ApiError]) -> list[str]:
    """Append, then answer each record with its v3 result as one NDJSON line, in order.

    Success lines are formatted from a cached tail: between alike records of a request only
    the offset differs."""
    appended = await _append(ctx, topic, partitions, records)
    lines = _answer_slots(appended, len(records), _error_line)
    now_ms = appended.now_ms
    tails: dict[tuple[int, str | None, int, str | None, int], str] = {}
    for partition, batch in appended.batches.items():
        if batch.error is not None:
            continue
        head = (f'{{"error_code":200,"cluster_id":{_json_text(ctx.broker.cluster_id)},'
                f'"topic_name":{_json_text(topic)},"partition_id":{partition},"offset":')
        append_time = batch.log_append_time_ms
        offset = batch.base_offset
        for index in batch.indexes:
            record = records[index]
            assert not isinstance(record, ApiError)
            _, key, value, _, timestamp, key_type, value_type = record
            shape = (append_time if append_time >= 0 else
                     now_ms if timestamp is None else timestamp,
                     key_type, 0 if key is None else len(key),
                     value_type, 0 if value is None else len(value))
            tail = tails.get(shape)
            if tail is None:
                tail = tails[shape] = _result_tail(*shape)
            lines[index] = f"{head}{offset}{tail}"
            offset += 1
    return lines


def _producible_topic(ctx: WebContext, topic_name: str) -> TopicMetadata:
    """The topic a produce request names: 404 if unknown, 403 if internal."""
    topic = ctx.require_topic(topic_name)
    if is_internal(topic_name):
        raise ApiError(403, errors.FORBIDDEN,
                       f"cannot produce to internal topic {topic_name!r}")
    return topic


def _produce_span(ctx: WebContext, topic_name: str) -> AbstractContextManager[object]:
    return ctx.span("produce", {"messaging.system": "kafka",
                                "messaging.destination.name": topic_name,
                                "messaging.operation": "publish"})


async def produce_records(request: web.Request) -> web.StreamResponse:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    topic_name = request.match_info["topic_name"]
    topic = _producible_topic(ctx, topic_name)
    with _produce_span(ctx, topic_name):
        if request.headers.get("Transfer-Encoding", "").lower() != "chunked":
            body = await read_body(request)
            records = parse_produce_lines(body)
            if records is not None and len(records) > 1:  # the fast path accepted the body
                lines = await _produce_v3(ctx, topic_name, topic.partitions, records)
                return web.Response(body="".join(lines).encode(),
                                    content_type="application/x-ndjson")
            values, problem = split_json_body(body)
            if problem is not None:
                raise ApiError(400, errors.MALFORMED_JSON, problem)
            if not values:
                raise ApiError(400, errors.MALFORMED_JSON, "request body has no JSON object")
            if len(values) == 1:
                return await _produce_one(ctx, topic_name, topic.partitions, values[0])
            # The whole body is here: answer every record in one response body.
            lines = await _produce_v3(ctx, topic_name, topic.partitions,
                                      _parse_each(values))
            return web.Response(body="".join(lines).encode(),
                                content_type="application/x-ndjson")
        return await _produce_stream(request, ctx, topic_name, topic.partitions)


async def produce_v2(request: web.Request) -> web.Response:
    """``POST /topics/{topic_name}[/partitions/{partition_id}]``: v2 produce.

    The request's records are checked as a whole (a bad one fails the request with nothing
    written), appended one batch per partition, and answered with one ``offsets`` entry per
    record, in order; a record whose partition or append failed gets its error there."""
    ctx = context_of(request)
    topic_name = request.match_info["topic_name"]
    data_type = V2_FORMATS.get(request.content_type)
    if data_type is None:
        raise ApiError(415, errors.UNSUPPORTED_MEDIA_TYPE,
                       f"Content-Type {request.content_type!r} is not a v2 embedded format; "
                       f"use one of {', '.join(V2_FORMATS)}")
    topic = _producible_topic(ctx, topic_name)
    partition: int | None = None
    if "partition_id" in request.match_info:
        partition = path_int(request, "partition_id")
        ctx.require_partition(topic_name, partition)
    with _produce_span(ctx, topic_name):
        try:
            records = parse_v2_produce(await read_body(request), data_type, partition)
        except MalformedJsonError as exc:
            raise ApiError(400, errors.MALFORMED_JSON, str(exc)) from None
        except InvalidRecordError as exc:
            raise ApiError(422, errors.INVALID_RECORD, str(exc)) from None
        appended = await _append(ctx, topic_name, topic.partitions, records)
    offsets = _answer_slots(appended, len(records), _v2_failure)
    for number, batch in appended.batches.items():
        if batch.error is not None:
            continue
        offset = batch.base_offset
        for index in batch.indexes:
            offsets[index] = (f'{{"partition":{number},"offset":{offset},'
                              f'"error_code":null,"error":null}}')
            offset += 1
    body = ('{"offsets":[' + ",".join(offsets)
            + '],"key_schema_id":null,"value_schema_id":null}')
    return web.Response(body=body.encode(), content_type="application/vnd.kafka.v2+json")


def _v2_failure(error: ApiError) -> str:
    return json.dumps({"partition": None, "offset": None, "error_code": error.error_code,
                       "error": error.message}, separators=(",", ":"))


async def _produce_one(ctx: WebContext, topic: str, partitions: int, body: Any
                       ) -> web.Response:
    (record,) = _parse_each([body])
    if isinstance(record, ApiError):
        raise record
    (line,) = await _produce_v3(ctx, topic, partitions, [record])
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
        lines = await _produce_v3(ctx, topic, partitions, _parse_each(values))
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


def add_routes(app: web.Application) -> None:
    # Registered before the other routes: aiohttp tries routes in order, and produce is the
    # hot one (each failed pattern match costs about a microsecond).
    router = app.router
    router.add_post("/v3/clusters/{cluster_id}/topics/{topic_name}/records", produce_records)
    router.add_post("/topics/{topic_name}", produce_v2)
    router.add_post("/topics/{topic_name}/partitions/{partition_id}", produce_v2)


__all__ = ["add_routes", "produce_records", "produce_v2"]
