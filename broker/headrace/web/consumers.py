"""REST Proxy v2-style consumer instances: ``/consumers/{group}/instances/{name}/...``.

Each instance is a real Kafka consumer (aiokafka) connected to this broker's own Kafka listener,
so HTTP consumers join consumer groups, rebalance with Kafka consumers, commit offsets and
long-poll exactly like any other client; nothing here re-implements group membership. Idle
instances are closed after ``instance_timeout_seconds`` without a request, as in REST Proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from headrace.record import Record, RecordError
from headrace.record.client_codecs import bound_client_inflation
from headrace.web import errors
from headrace.web.context import (
    context_of,
    int_param,
    json_response,
    read_json,
    require_fields,
)
from headrace.web.errors import ApiError
from headrace.web.records import RECORD_FORMATS, RecordFormat, render_record

CONSUMERS = "/consumers/{group_name}"
INSTANCE = CONSUMERS + "/instances/{instance}"
SUBSCRIPTION = INSTANCE + "/subscription"
ASSIGNMENTS = INSTANCE + "/assignments"
POSITIONS = INSTANCE + "/positions"
POSITIONS_BEGINNING = POSITIONS + "/beginning"
POSITIONS_END = POSITIONS + "/end"
RECORDS = INSTANCE + "/records"
OFFSETS = INSTANCE + "/offsets"

DEFAULT_INSTANCE_TIMEOUT_SECONDS = 300.0
#: The longest a GET records call may wait for data.
MAX_POLL_TIMEOUT_MS = 30_000
_NAME = re.compile(r"[a-zA-Z0-9._-]{1,200}")


@dataclass
class ConsumerInstance:
    group: str
    name: str
    consumer: Any  # aiokafka.AIOKafkaConsumer (untyped library)
    record_format: RecordFormat
    last_used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ConsumerInstances:
    """The instances of one broker's HTTP API."""

    def __init__(self, bootstrap: str,
                 instance_timeout_seconds: float = DEFAULT_INSTANCE_TIMEOUT_SECONDS) -> None:
        self.bootstrap = bootstrap
        self.instance_timeout_seconds = instance_timeout_seconds
        self._instances: dict[tuple[str, str], ConsumerInstance] = {}

    async def create(self, group: str, name: str, record_format: RecordFormat,
                     config: dict[str, Any]) -> ConsumerInstance:
        from aiokafka import AIOKafkaConsumer

        await self.expire_idle()
        if (group, name) in self._instances:
            raise ApiError(409, errors.CONSUMER_INSTANCE_EXISTS,
                           f"consumer instance {name!r} already exists in group {group!r}")
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=group,
            client_id=f"headrace-http-{name}",
            **config,
        )
        # Register before the first await so a concurrent create of the same name conflicts.
        instance = ConsumerInstance(group, name, consumer, record_format)
        self._instances[(group, name)] = instance
        try:
            await consumer.start()
        except Exception as exc:
            del self._instances[(group, name)]
            raise ApiError(503, errors.NOT_LEADER,
                           f"cannot start a consumer against {self.bootstrap}: {exc}") from None
        return instance

    def names(self) -> set[tuple[str, str]]:
        """(group, instance name) of every live instance (does not count as use)."""
        return set(self._instances)

    def get(self, group: str, name: str) -> ConsumerInstance:
        instance = self._instances.get((group, name))
        if instance is None:
            raise ApiError(404, errors.UNKNOWN_CONSUMER_INSTANCE,
                           f"consumer instance {name!r} not found in group {group!r}")
        instance.last_used = time.monotonic()
        return instance

    async def delete(self, group: str, name: str) -> None:
        instance = self.get(group, name)
        del self._instances[(group, name)]
        await instance.consumer.stop()

    async def expire_idle(self) -> None:
        deadline = time.monotonic() - self.instance_timeout_seconds
        for key, instance in list(self._instances.items()):
            if instance.last_used < deadline and not instance.lock.locked():
                del self._instances[key]
                await instance.consumer.stop()

    async def run_expiry(self) -> None:
        """Close idle instances every ``instance_timeout_seconds / 10`` (at least every 1 s)."""
        while True:
            await asyncio.sleep(max(1.0, self.instance_timeout_seconds / 10))
            await self.expire_idle()

    async def close(self) -> None:
        instances, self._instances = list(self._instances.values()), {}
        for instance in instances:
            await instance.consumer.stop()


CONSUMER_INSTANCES: web.AppKey[ConsumerInstances] = web.AppKey(
    "consumer_instances", ConsumerInstances
)
_EXPIRY_TASK: web.AppKey[asyncio.Task[None]] = web.AppKey("consumer_expiry", asyncio.Task)


def serve_instances(app: web.Application, bootstrap: str) -> None:
    """Run the app's consumer instances (Kafka consumers of ``bootstrap``) while it serves."""

    async def start(app: web.Application) -> None:
        bound_client_inflation()  # the instances' aiokafka inflates gzip within our bound
        instances = app[CONSUMER_INSTANCES] = ConsumerInstances(bootstrap)
        app[_EXPIRY_TASK] = asyncio.create_task(instances.run_expiry())

    async def stop(app: web.Application) -> None:
        task = app.get(_EXPIRY_TASK)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        instances = app.get(CONSUMER_INSTANCES)
        if instances is not None:
            await instances.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


def _instances(request: web.Request) -> ConsumerInstances:
    consumers = request.app.get(CONSUMER_INSTANCES)
    if consumers is None:
        raise ApiError(503, errors.GROUPS_UNAVAILABLE, "consumer instances are not available")
    return consumers


def _instance(request: web.Request) -> ConsumerInstance:
    return _instances(request).get(request.match_info["group_name"],
                                   request.match_info["instance"])


_BOOL = {"true": True, "false": False}


async def create_instance(request: web.Request) -> web.Response:
    group = request.match_info["group_name"]
    body = require_fields(await read_json(request), "the consumer instance")
    name = body.get("name") or f"rest-consumer-{secrets.token_hex(6)}"
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ApiError(400, errors.INVALID_FIELD, "name must match [a-zA-Z0-9._-]{1,200}")
    record_format = str(body.get("format", "binary")).lower()
    if record_format not in RECORD_FORMATS:
        raise ApiError(400, errors.INVALID_FIELD,
                       f"format must be one of {', '.join(RECORD_FORMATS)}")
    reset = str(body.get("auto.offset.reset", "latest")).lower()
    if reset not in ("earliest", "latest"):
        raise ApiError(400, errors.INVALID_FIELD, "auto.offset.reset must be earliest or latest")
    auto_commit = _BOOL.get(str(body.get("auto.commit.enable", "true")).lower())
    if auto_commit is None:
        raise ApiError(400, errors.INVALID_FIELD, "auto.commit.enable must be true or false")
    config: dict[str, Any] = {"auto_offset_reset": reset, "enable_auto_commit": auto_commit}
    for key, option in (("fetch.min.bytes", "fetch_min_bytes"),
                        ("session.timeout.ms", "session_timeout_ms"),
                        ("heartbeat.interval.ms", "heartbeat_interval_ms")):
        if key in body:
            try:
                config[option] = int(body[key])
            except (TypeError, ValueError):
                raise ApiError(400, errors.INVALID_FIELD, f"{key} must be an integer") from None
    await _instances(request).create(group, name, record_format, config)
    base = f"{request.scheme}://{request.host}/consumers/{group}/instances/{name}"
    return json_response({"instance_id": name, "base_uri": base})


async def delete_instance(request: web.Request) -> web.Response:
    await _instances(request).delete(request.match_info["group_name"],
                                     request.match_info["instance"])
    return web.Response(status=204)


async def subscribe(request: web.Request) -> web.Response:
    instance = _instance(request)
    body = require_fields(await read_json(request), "the subscription")
    topics, pattern = body.get("topics"), body.get("topic_pattern")
    if pattern is not None:
        if not isinstance(pattern, str):
            raise ApiError(400, errors.INVALID_FIELD, "topic_pattern must be a string")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ApiError(400, errors.INVALID_FIELD, f"topic_pattern is invalid: {exc}") from None
        instance.consumer.subscribe(pattern=pattern)
    elif (isinstance(topics, list) and topics
          and all(isinstance(t, str) and t for t in topics)):
        instance.consumer.subscribe(topics=topics)
    else:
        raise ApiError(400, errors.INVALID_FIELD,
                       "give topics (a non-empty list of names) or topic_pattern")
    return web.Response(status=204)


async def get_subscription(request: web.Request) -> web.Response:
    instance = _instance(request)
    return json_response({"topics": sorted(instance.consumer.subscription())})


async def unsubscribe(request: web.Request) -> web.Response:
    _instance(request).consumer.unsubscribe()
    return web.Response(status=204)


def _partitions_from(body: dict[str, Any], field_name: str = "partitions") -> list[Any]:
    from aiokafka import TopicPartition

    raw = body.get(field_name)
    if not isinstance(raw, list):
        raise ApiError(400, errors.INVALID_FIELD, f"{field_name} must be a list")
    result = []
    for index, entry in enumerate(raw):
        if (not isinstance(entry, dict) or not isinstance(entry.get("topic"), str)
                or not isinstance(entry.get("partition"), int)
                or isinstance(entry.get("partition"), bool) or entry["partition"] < 0):
            raise ApiError(400, errors.INVALID_FIELD,
                           f"{field_name}[{index}] needs a string topic and a partition >= 0")
        result.append(TopicPartition(entry["topic"], entry["partition"]))
    return result


def _check_partitions_exist(request: web.Request, partitions: list[Any]) -> None:
    ctx = context_of(request)
    for tp in partitions:
        ctx.require_partition(tp.topic, tp.partition)


async def assign(request: web.Request) -> web.Response:
    instance = _instance(request)
    body = require_fields(await read_json(request), "the assignment")
    partitions = _partitions_from(body)
    _check_partitions_exist(request, partitions)
    instance.consumer.assign(partitions)
    return web.Response(status=204)


async def get_assignment(request: web.Request) -> web.Response:
    instance = _instance(request)
    partitions = sorted(instance.consumer.assignment())
    return json_response({"partitions": [{"topic": tp.topic, "partition": tp.partition}
                                         for tp in partitions]})


async def seek(request: web.Request) -> web.Response:
    from aiokafka import TopicPartition

    instance = _instance(request)
    body = require_fields(await read_json(request), "the positions")
    raw = body.get("offsets")
    if not isinstance(raw, list):
        raise ApiError(400, errors.INVALID_FIELD, "offsets must be a list")
    for index, entry in enumerate(raw):
        offset = entry.get("offset") if isinstance(entry, dict) else None
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ApiError(400, errors.INVALID_FIELD, f"offsets[{index}].offset must be >= 0")
    partitions = _partitions_from(body, "offsets")
    _check_partitions_exist(request, partitions)
    assigned = instance.consumer.assignment()
    for tp, entry in zip(partitions, raw, strict=True):
        if TopicPartition(tp.topic, tp.partition) not in assigned:
            raise ApiError(409, 40903, f"{tp.topic}-{tp.partition} is not assigned to this "
                           "instance")
        instance.consumer.seek(tp, entry["offset"])
    return web.Response(status=204)


async def _seek_edge(request: web.Request, beginning: bool) -> web.Response:
    instance = _instance(request)
    body = require_fields(await read_json(request), "the partitions")
    partitions = _partitions_from(body)
    _check_partitions_exist(request, partitions)
    if beginning:
        await instance.consumer.seek_to_beginning(*partitions)
    else:
        await instance.consumer.seek_to_end(*partitions)
    return web.Response(status=204)


async def seek_beginning(request: web.Request) -> web.Response:
    return await _seek_edge(request, beginning=True)


async def seek_end(request: web.Request) -> web.Response:
    return await _seek_edge(request, beginning=False)


async def get_records(request: web.Request) -> web.Response:
    instance = _instance(request)
    timeout_ms = int_param(request, "timeout", 1000, minimum=0) or 0
    max_bytes = int_param(request, "max_bytes", None, minimum=1)
    ctx = context_of(request)
    with ctx.tracer.start_as_current_span("fetch", attributes={
            "messaging.system": "kafka", "messaging.operation": "receive",
            "messaging.consumer.group.name": instance.group}):
        async with instance.lock:
            try:
                batches = await instance.consumer.getmany(
                    timeout_ms=min(timeout_ms, MAX_POLL_TIMEOUT_MS))
            except RecordError as error:  # e.g. a batch inflating past the bound
                raise ApiError(500, errors.INTERNAL_ERROR,
                               f"records cannot be decoded: {error}") from None
    records: list[dict[str, Any]] = []
    size = 0
    for tp, messages in sorted(batches.items()):
        for message in messages:
            record = Record(
                offset=message.offset,
                timestamp_ms=message.timestamp,
                timestamp_type=message.timestamp_type,
                key=message.key,
                value=message.value,
                headers=tuple(message.headers),
            )
            size += len(message.key or b"") + len(message.value or b"")
            records.append(render_record(tp.topic, tp.partition, record, instance.record_format))
        ctx.metrics.on_fetched(tp.topic, tp.partition, 0, len(messages))
    if max_bytes is not None and size > max_bytes and len(records) > 1:
        # aiokafka has no per-poll byte cap: rewind past what doesn't fit so nothing is lost.
        records = _trim_to_bytes(instance, records, max_bytes)
    return json_response(records)


def _trim_to_bytes(instance: ConsumerInstance, records: list[dict[str, Any]], max_bytes: int
                   ) -> list[dict[str, Any]]:
    from aiokafka import TopicPartition

    kept: list[dict[str, Any]] = []
    used = 0
    rewound: set[tuple[str, int]] = set()
    for record in records:
        size = len(str(record["key"] or "")) + len(str(record["value"] or ""))
        key = (record["topic"], record["partition"])
        if key in rewound or (kept and used + size > max_bytes):
            if key not in rewound:
                rewound.add(key)
                instance.consumer.seek(TopicPartition(*key), record["offset"])
            continue
        kept.append(record)
        used += size
    return kept


async def commit_offsets(request: web.Request) -> web.Response:
    from aiokafka import TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    instance = _instance(request)
    offsets = None
    if request.can_read_body and request.content_length != 0:
        body = require_fields(await read_json(request), "the offsets")
        partitions = _partitions_from(body, "offsets")
        offsets = {}
        for index, (tp, entry) in enumerate(zip(partitions, body["offsets"], strict=True)):
            offset = entry.get("offset")
            if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
                raise ApiError(400, errors.INVALID_FIELD, f"offsets[{index}].offset must be >= 0")
            metadata = entry.get("metadata") or ""
            offsets[TopicPartition(tp.topic, tp.partition)] = OffsetAndMetadata(offset, metadata)
    ctx = context_of(request)
    with ctx.tracer.start_as_current_span("commit_offsets", attributes={
            "messaging.consumer.group.name": instance.group}):
        try:
            async with instance.lock:
                await instance.consumer.commit(offsets)
        except Exception as exc:
            raise ApiError(409, 40904, f"commit failed: {type(exc).__name__}: {exc}") from None
    return web.Response(status=204)


async def get_committed(request: web.Request) -> web.Response:
    instance = _instance(request)
    if request.can_read_body and request.content_length != 0:
        body = require_fields(await read_json(request), "the partitions")
        partitions = _partitions_from(body)
    else:
        partitions = sorted(instance.consumer.assignment())
    result = []
    for tp in partitions:
        committed = await instance.consumer.committed(tp)
        result.append({"topic": tp.topic, "partition": tp.partition,
                       "offset": -1 if committed is None else committed, "metadata": ""})
    return json_response({"offsets": result})


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_post(CONSUMERS, create_instance)
    router.add_delete(INSTANCE, delete_instance)
    router.add_post(SUBSCRIPTION, subscribe)
    router.add_get(SUBSCRIPTION, get_subscription)
    router.add_delete(SUBSCRIPTION, unsubscribe)
    router.add_post(ASSIGNMENTS, assign)
    router.add_get(ASSIGNMENTS, get_assignment)
    router.add_post(POSITIONS, seek)
    router.add_post(POSITIONS_BEGINNING, seek_beginning)
    router.add_post(POSITIONS_END, seek_end)
    router.add_get(RECORDS, get_records)
    router.add_post(OFFSETS, commit_offsets)
    router.add_get(OFFSETS, get_committed)


__all__ = ["ConsumerInstances", "add_routes"]
