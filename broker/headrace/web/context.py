"""What every HTTP handler needs: the broker, its metrics and tracer, limits, and JSON helpers.

One :class:`WebContext` per app (``app[WEB_CONTEXT]``), so several brokers in one process keep
separate state.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from opentelemetry import trace

from headrace.core.routing import LocalRouter, PartitionRouter
from headrace.groups.routing import GroupRouter, LocalGroupRouter
from headrace.observability.audit import AdminAudit
from headrace.observability.metrics import BrokerMetrics
from headrace.storage import TopicMetadata
from headrace.web import errors
from headrace.web.broker_view import BrokerView
from headrace.web.connections import HttpConnectionGuard
from headrace.web.errors import ApiError
from headrace.web.group_commit import GroupCommit
from headrace.web.json_body import parse_json

if TYPE_CHECKING:
    from headrace.core.broker import Broker
    from headrace.groups.coordinator import GroupCoordinator

#: Default bound on one HTTP request body (and on one record in a streamed produce).
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
#: Where :func:`read_json` leaves the parsed body on the request (for the audit middleware).
JSON_BODY = "headrace.json_body"


@dataclass
class WebContext:
    broker: Broker
    groups: GroupCoordinator | None
    metrics: BrokerMetrics
    tracer: trace.Tracer
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: A request body may stall this long (None: no limit); see :func:`read_body`.
    body_timeout: float | None = None
    #: The connection guard the app is served through (None: served without one).
    connections: HttpConnectionGuard | None = None
    view: BrokerView = field(init=False)
    group_commit: GroupCommit = field(init=False)
    round_robin: int = 0
    #: A tracer provider is configured (else the tracer is OpenTelemetry's no-op).
    tracing: bool = False
    #: Where partitions' offsets, appends and reads go (None: this broker's own services).
    router: PartitionRouter | None = None
    #: Where group requests go (None: this broker's coordinator, if any).
    group_router: GroupRouter | None = None
    #: Where the middleware reports admin actions (the app's one audit trail).
    audit: AdminAudit = field(default_factory=AdminAudit)
    _http_series: dict[tuple[str, str, int], tuple[Any, Any]] = field(
        init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.view = BrokerView(self.broker, self.groups)
        if self.router is None:
            self.router = LocalRouter(self.broker)
        if self.group_router is None and self.groups is not None:
            self.group_router = LocalGroupRouter(self.groups, self.broker.config.node_id)
        router = self.router
        self.group_commit = GroupCommit(
            lambda topic, partition, batches: router.produce(topic, partition, batches, acks=-1))

    @property
    def partitions(self) -> PartitionRouter:
        """The partition router (always set once built)."""
        assert self.router is not None
        return self.router

    def require_groups(self) -> GroupRouter:
        if self.group_router is None:
            raise ApiError(503, errors.GROUPS_UNAVAILABLE, "this broker has no group coordinator")
        return self.group_router

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request; label children are looked up once per (method, route,
        status), as ``labels()`` costs microseconds on every call."""
        series = self._http_series.get((method, route, status))
        if series is None:
            series = (self.metrics.http_requests.labels(method, route, str(status)),
                      self.metrics.http_request_duration.labels(method, route))
            self._http_series[(method, route, status)] = series
        series[0].inc()
        series[1].observe(seconds)

    def span(self, name: str, attributes: dict[str, str]) -> AbstractContextManager[object]:
        """A child span when tracing is on; nothing otherwise (the no-op span would only
        re-enter the current context)."""
        if not self.tracing:
            return nullcontext()
        return self.tracer.start_as_current_span(name, attributes=attributes)

    def require_cluster(self, cluster_id: str) -> None:
        if cluster_id != self.broker.cluster_id:
            raise ApiError(404, errors.UNKNOWN_CLUSTER, f"cluster {cluster_id!r} not found")

    def require_topic(self, name: str) -> TopicMetadata:
        logs = self.broker.logs
        topic = logs.topic(name) if logs is not None else None
        if topic is None:
            raise ApiError(404, errors.UNKNOWN_TOPIC, f"topic {name!r} not found")
        return topic

    def require_partition(self, topic_name: str, partition: int) -> TopicMetadata:
        topic = self.require_topic(topic_name)
        if not 0 <= partition < topic.partitions:
            raise ApiError(404, errors.UNKNOWN_PARTITION,
                           f"partition {partition} of topic {topic_name!r} not found "
                           f"(it has {topic.partitions})")
        return topic


WEB_CONTEXT: web.AppKey[WebContext] = web.AppKey("headrace_web_context", WebContext)


def context_of(request: web.Request) -> WebContext:
    return request.app[WEB_CONTEXT]


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def read_body(request: web.Request) -> bytes:
    """The whole request body; 413 naming the limit when it is larger, 408 when it does not
    arrive within the body timeout."""
    ctx = context_of(request)
    limit = ctx.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, errors.BODY_TOO_LARGE,
                       f"request body of {request.content_length} bytes is over the "
                       f"{limit}-byte limit")
    try:
        async with asyncio.timeout(ctx.body_timeout):
            if request.content_length is not None:  # within the limit: read it as it came
                return await request.content.read()
            return await request.read()  # aiohttp enforces client_max_size (= the limit)
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, errors.BODY_TOO_LARGE,
                       f"request body is over the {limit}-byte limit") from None
    except TimeoutError:
        raise body_timeout_error(ctx) from None


def body_timeout_error(ctx: WebContext) -> ApiError:
    seconds = ctx.body_timeout or 0.0
    return ApiError(408, errors.REQUEST_TIMEOUT,
                    f"request body not received within {seconds * 1000:.0f} ms")


async def read_json(request: web.Request) -> Any:
    """The request body as JSON; 413 past the body limit, 400 naming a parse error or a
    body nested too deep (:mod:`headrace.web.json_body`)."""
    parsed = await parse_json(await read_body(request))
    request[JSON_BODY] = parsed  # the body is read once; the audit line names what it asked
    return parsed


def int_param(request: web.Request, name: str, default: int | None = None, *,
              minimum: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, errors.INVALID_FIELD,
                       f"query parameter {name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ApiError(400, errors.INVALID_FIELD, f"query parameter {name} must be >= {minimum}")
    return value


def path_int(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, errors.INVALID_FIELD,
                       f"{name} must be an integer, got {raw!r}") from None
    if value < 0:
        raise ApiError(404, errors.UNKNOWN_PARTITION, f"{name} {value} not found")
    return value


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def require_fields(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, errors.INVALID_FIELD, f"{what} must be a JSON object")
    return body


__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "WEB_CONTEXT",
    "WebContext",
    "base_url",
    "body_timeout_error",
    "context_of",
    "int_param",
    "json_response",
    "path_int",
    "read_body",
    "read_json",
    "require_fields",
]
