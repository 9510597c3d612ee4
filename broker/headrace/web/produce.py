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

import asyncio
import functools
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from aiohttp import web

from headrace.core.errors import KafkaError
from headrace.core.internal_topics import is_internal
from headrace.observability.tracing import TRACEPARENT, traceparent_header
from headrace.storage import TopicMetadata
from headrace.web import errors
from headrace.web.context import (
    WebContext,
    body_timeout_error,
    context_of,
    json_response,
    path_int,
    read_body,
)
from headrace.web.errors import ApiError, from_kafka_error
from headrace.web.group_commit import Appended
from headrace.web.json_body import check_json_depth, too_deep_error
from headrace.web.records import (
    V2_FORMATS,
    AnswerShape,
    InvalidRecordError,
    JsonStream,
    MalformedJsonError,
    RequestBatches,
    UnknownPartitionError,
    format_timestamp,
    parse_produce_request,
    parse_v2_produce,
    split_json_body,
)


def _batches(ctx: WebContext, request: web.Request, topic: str, partitions: int
             ) -> RequestBatches:
    """An empty :class:`RequestBatches` for one request: now, the broker's round-robin
    position, and the trace context to put in every record when there is one (tracing is on,
    or the request carries a ``traceparent`` to pass on)."""
    trace_header = (traceparent_header() if ctx.tracing or TRACEPARENT in request.headers
                    else None)
    return RequestBatches(
        topic, partitions, int(time.time() * 1000), round_robin=ctx.round_robin,
        extra_header=None if trace_header is None else (TRACEPARENT, trace_header.encode()))


def _add_each(batches: RequestBatches, bodies: list[Any]) -> None:
    """The general path: validate each request object on its own (errors answer that record)."""
    for index, body in enumerate(bodies):
        try:
            batches.add(index, parse_produce_request(body))
        except InvalidRecordError as exc:
            batches.refuse(index, exc)


async def _write(ctx: WebContext, batches: RequestBatches) -> dict[int, Appended | ApiError]:
    """Append each partition's batch through ``Broker.produce`` (the Kafka produce path:
    validation, metrics, replication), grouped with other requests' (:mod:`group_commit`);
    what became of each, by partition."""
    ctx.round_robin = batches.round_robin
    topic, submit = batches.topic, ctx.group_commit.submit
    submitted = [(partition, submit(topic, partition, batch.build(), len(batch.indexes)))
                 for partition, batch in batches.batches.items()]
    outcomes: dict[int, Appended | ApiError] = {}
    for partition, appended in submitted:
        try:
            outcomes[partition] = await appended
        except KafkaError as exc:
            outcomes[partition] = from_kafka_error(exc)
    return outcomes


def _refusal(problem: InvalidRecordError) -> ApiError:
    if isinstance(problem, UnknownPartitionError):
        return ApiError(404, errors.UNKNOWN_PARTITION, str(problem))
    return ApiError(400, errors.INVALID_FIELD, str(problem))


#: How a written partition's answers look: the text before each record's offset, and the
#: text after it, the same for every record or given by the record's :data:`AnswerShape`.
AnswerForm = tuple[str, str | Callable[[AnswerShape], str]]


def _answers(batches: RequestBatches, outcomes: dict[int, Appended | ApiError], count: int,
             separator: str, render_failure: Callable[[ApiError], str],
             form_of: Callable[[int, Appended], AnswerForm]) -> bytes:
    """One answer per record, in request order, joined by ``separator``, as UTF-8.

    Between alike records of a partition only the offset differs: when all of a request's
    records went to one partition and look alike (the common case), their answers are one
    join over the offsets, in bytes, instead of a string per record."""
    batch_list = list(batches.batches.items())
    if not batches.refused and len(batch_list) == 1:
        ((partition, batch),) = batch_list
        outcome = outcomes[partition]
        if isinstance(outcome, Appended):
            head, tail_of = form_of(partition, outcome)
            tail = _shared_tail(tail_of, batch.shapes)
            if tail is not None:
                return _run_of_answers(head, tail, separator, outcome.base_offset,
                                       len(batch.indexes))
    answers = [""] * count
    for index, problem in batches.refused.items():
        answers[index] = render_failure(_refusal(problem))
    for partition, batch in batch_list:
        outcome = outcomes[partition]
        if isinstance(outcome, ApiError):
            failure = render_failure(outcome)
            for index in batch.indexes:
                answers[index] = failure
            continue
        head, tail_of = form_of(partition, outcome)
        if isinstance(tail_of, str):
            for offset, index in enumerate(batch.indexes, outcome.base_offset):
                answers[index] = f"{head}{offset}{tail_of}"
            continue
        for offset, (index, shape) in enumerate(zip(batch.indexes, batch.shapes, strict=True),
                                                outcome.base_offset):
            answers[index] = f"{head}{offset}{tail_of(shape)}"
    return separator.join(answers).encode()


#: "00" to "99", and "0" to "99": the last two digits of an offset, and a whole one below 100.
_LAST_TWO_DIGITS = tuple(f"{n:02d}" for n in range(100))
_BELOW_100 = tuple(map(str, range(100)))


def _run_of_answers(head: str, tail: str, separator: str, base: int, count: int) -> bytes:
    """``{head}{offset}{tail}`` for ``count`` offsets from ``base``, joined by ``separator``.

    Consecutive offsets share all but their last two digits within each hundred, so each
    hundred is one join over a table of two-digit endings: turning each offset into text on
    its own was most of the cost of a 100-record answer."""
    between = tail + separator + head
    parts = [head]
    offset, end = base, base + count
    while offset < end:
        hundreds, low = divmod(offset, 100)
        stop = min(end, offset - low + 100)
        if hundreds:
            leading = str(hundreds)
            parts.append(leading)
            parts.append((between + leading).join(_LAST_TWO_DIGITS[low:low + stop - offset]))
        else:
            parts.append(between.join(_BELOW_100[low:low + stop - offset]))
        if stop < end:
            parts.append(between)
        offset = stop
    parts.append(tail)
    return "".join(parts).encode()


def _shared_tail(tail_of: str | Callable[[AnswerShape], str], shapes: list[AnswerShape]
                 ) -> str | None:
    """The tail of every answer of a batch when they all have the same one."""
    if isinstance(tail_of, str):
        return tail_of
    first = shapes[0]
    return tail_of(first) if shapes.count(first) == len(shapes) else None


def _error_line(error: ApiError) -> str:
    return json.dumps({"error_code": error.error_code, "message": error.message}) + "\n"


@functools.lru_cache(maxsize=256)
def _json_text(value: str) -> str:
    return json.dumps(value)


def _data_json(field: str, data_type: str | None, size: int) -> str:
    """``,"key":{...}`` for a key or value the record has; nothing for one it lacks (as the
    REST Proxy leaves absent fields out)."""
    if data_type is None:
        return ""
    return f',"{field}":{{"type":"{data_type}","size":{size}}}'


@functools.lru_cache(maxsize=1024)  # records of a request mostly share it
def _result_tail(timestamp: int, shape: AnswerShape, log_time: bool) -> str:
    """The part of a v3 success line after the offset: ``timestamp`` unless the record has
    its own and the log keeps it (``log_time`` False)."""
    if isinstance(shape, int):  # a plain STRING value
        shape = (None, None, 0, "STRING", shape)
    own_timestamp, key_type, key_size, value_type, value_size = shape
    if own_timestamp is not None and not log_time:
        timestamp = own_timestamp
    return (f',"timestamp":"{format_timestamp(timestamp)}"'
            f'{_data_json("key", key_type, key_size)}'
            f'{_data_json("value", value_type, value_size)}}}\n')


async def _produce_v3(ctx: WebContext, batches: RequestBatches, count: int) -> bytes:
    """Append, then answer each of the ``count`` records with its v3 result as one NDJSON
    line, in order."""
    outcomes = await _write(ctx, batches)
    head_start = (f'{{"error_code":200,"cluster_id":{_json_text(ctx.broker.cluster_id)},'
                  f'"topic_name":{_json_text(batches.topic)},"partition_id":')
    now_ms = batches.now_ms

    def form_of(partition: int, written: Appended) -> AnswerForm:
        log_time = written.log_append_time_ms >= 0  # the log's time replaces the records' own
        timestamp = written.log_append_time_ms if log_time else now_ms
        return (f'{head_start}{partition},"offset":',
                lambda shape: _result_tail(timestamp, shape, log_time))

    return _answers(batches, outcomes, count, "", _error_line, form_of)


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
            return await _produce_body(ctx, request, topic_name, topic.partitions,
                                       await read_body(request))
        return await _produce_stream(request, ctx, topic_name, topic.partitions)


async def _produce_body(ctx: WebContext, request: web.Request, topic: str, partitions: int,
                        body: bytes) -> web.Response:
    """A whole body: one object is answered with one JSON result (a bad one with a 4xx),
    several with one NDJSON line each."""
    batches = _batches(ctx, request, topic, partitions)
    try:
        fast = batches.add_lines(body)
    except RecursionError:  # far deeper than the limit: refused before anything is written
        raise too_deep_error() from None
    # Before anything is written: a value nested too deep is refused (the parsers' own
    # recursion limit is higher, and such a value could not be read back over HTTP).
    await check_json_depth(body, one_value_per_line=fast)
    if fast:  # the fast path took it
        count = len(batches.refused) + sum(
            len(batch.indexes) for batch in batches.batches.values())
    else:  # the general path, which names each problem
        values, problem = split_json_body(body)
        if problem is not None:
            raise ApiError(400, errors.MALFORMED_JSON, problem)
        if not values:
            raise ApiError(400, errors.MALFORMED_JSON, "request body has no JSON object")
        _add_each(batches, values)
        count = len(values)
    if count > 1:
        return _ndjson(await _produce_v3(ctx, batches, count))
    if batches.refused:
        raise _refusal(batches.refused[0])
    result = json.loads(await _produce_v3(ctx, batches, 1))
    if result["error_code"] != 200:
        raise ApiError(int(str(result["error_code"])[:3]), result["error_code"],
                       result["message"])
    return json_response(result)


def _ndjson(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/x-ndjson")


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
        batches = _batches(ctx, request, topic_name, topic.partitions)
        body = await read_body(request)
        await check_json_depth(body)
        try:
            count = parse_v2_produce(body, data_type, batches, partition)
        except MalformedJsonError as exc:
            raise ApiError(400, errors.MALFORMED_JSON, str(exc)) from None
        except InvalidRecordError as exc:
            raise ApiError(422, errors.INVALID_RECORD, str(exc)) from None
        outcomes = await _write(ctx, batches)

    def form_of(partition: int, written: Appended) -> AnswerForm:
        return f'{{"partition":{partition},"offset":', ',"error_code":null,"error":null}'

    offsets = _answers(batches, outcomes, count, ",", _v2_failure, form_of)
    body = b"".join((b'{"offsets":[', offsets, b'],"key_schema_id":null,"value_schema_id":null}'))
    return web.Response(body=body, content_type="application/vnd.kafka.v2+json")


def _v2_failure(error: ApiError) -> str:
    return json.dumps({"partition": None, "offset": None, "error_code": error.error_code,
                       "error": error.message}, separators=(",", ":"))


async def _produce_stream(request: web.Request, ctx: WebContext, topic: str, partitions: int
                          ) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/x-ndjson"})
    response.enable_chunked_encoding()
    await response.prepare(request)

    async def answer(values: list[Any]) -> None:
        batches = _batches(ctx, request, topic, partitions)
        _add_each(batches, values)
        await response.write(await _produce_v3(ctx, batches, len(values)))

    stream = JsonStream()
    limit = ctx.max_body_bytes
    while True:
        try:
            async with asyncio.timeout(ctx.body_timeout):  # a stream may pause, not stall
                chunk = await request.content.readany()
        except TimeoutError:
            await _write_error(response, body_timeout_error(ctx))
            break
        if not chunk:
            problem = stream.finish()
            if problem is not None:
                await _write_error(response, ApiError(400, errors.MALFORMED_JSON, problem))
            break
        values = stream.feed(chunk)
        if values:
            await answer(values)
        if stream.too_deep:
            await _write_error(response, too_deep_error())
            break
        if stream.pending_chars > limit:
            await _write_error(response, ApiError(
                413, errors.BODY_TOO_LARGE, f"a record is over the {limit}-byte limit"))
            break
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
