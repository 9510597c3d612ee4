"""The broker's HTTP face: Kubernetes probes, Prometheus metrics and the REST API.

``headrace broker`` builds the app with :func:`create_app` and serves it on ``--http-listen``;
handlers call the broker's in-process services, so HTTP and Kafka clients share one code path,
and reach partitions and groups through the routers the composition root hands in (on a cluster,
forwarding to leaders and coordinators over the Kafka protocol).
One middleware wraps every request: it records the HTTP metrics and a tracing span (continuing
an incoming ``traceparent``), renders errors as ``{"error_code", "message"}`` JSON, writes the
audit line of an admin action (:mod:`headrace.web.audit`), and logs a client that went away
mid-answer (a closed SSE stream, a reset connection) at DEBUG: that is the client's choice, not
the broker's error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from headrace.observability.audit import AdminAudit
from headrace.observability.metrics import BrokerMetrics
from headrace.observability.tracing import extract_context, get_tracer
from headrace.web import errors
from headrace.web.audit import audit_http_request
from headrace.web.connections import HttpConnectionGuard
from headrace.web.context import (
    DEFAULT_MAX_BODY_BYTES,
    WEB_CONTEXT,
    WebContext,
    context_of,
    json_response,
)
from headrace.web.errors import ApiError

if TYPE_CHECKING:
    from headrace.core.broker import Broker
    from headrace.core.routing import PartitionRouter
    from headrace.groups.coordinator import GroupCoordinator
    from headrace.groups.routing import GroupRouter

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The status recorded for a request whose client left before its answer (nginx's 499).
CLIENT_CLOSED_REQUEST = 499


async def _healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    """Ready once storage has recovered and the Kafka listener is open.

    Other parts add conditions with ``broker.add_readiness_check`` (e.g. replication's "caught
    up with the leaders"); a check that raises counts as failed.
    """
    broker = context_of(request).broker
    checks = {
        "storage": broker.logs is not None,
        "kafka_listener": bool(broker.kafka_port),
        "started": broker.started.is_set(),
    }
    for name, check in broker.readiness_checks.items():
        try:
            checks[name] = bool(check())
        except Exception:
            log.exception("readiness check %s failed", name)
            checks[name] = False
    ready = all(checks.values())
    return json_response({"status": "ready" if ready else "not ready", "checks": checks},
                         status=200 if ready else 503)


async def _metrics(request: web.Request) -> web.Response:
    body = context_of(request).metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; "
                                                            "charset=utf-8"})


async def _openapi(request: web.Request) -> web.Response:
    from headrace.web.openapi import openapi_document

    return json_response(openapi_document())


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def _serve(request: web.Request, handler: Handler) -> web.StreamResponse:
    """HTTP metrics, a server span (continuing an incoming ``traceparent``) and errors as JSON.

    One middleware rather than one per concern: each costs a coroutine on every request."""
    ctx = context_of(request)
    route = _route_of(request)
    started = time.perf_counter()
    # The head is in: the connection's header deadline is met (see headrace.web.connections).
    guarded = ctx.connections.request_started(request) if ctx.connections is not None else None
    try:
        if ctx.tracing or "traceparent" in request.headers:
            response = await _traced(ctx, request, handler, route)
        else:  # no span to record nor context to pass on: skip the no-op span (~20 µs)
            response = await handler(request)
    except Exception as exc:  # every error becomes a JSON answer
        if isinstance(exc, ConnectionResetError) and _client_gone(request):
            # The client left (closed its SSE stream, reset the connection): nothing to
            # answer. nginx's 499 (client closed request) is what the metrics record; aiohttp
            # finds the transport closed and drops the answer quietly, where a raised error
            # would be logged as a 500 with a traceback.
            log.debug("HTTP %s %s: client %s went away: %s", request.method, request.path,
                      request.remote, exc)
            response = web.Response(status=CLIENT_CLOSED_REQUEST)
        else:
            response = _error_response(request, exc)
    finally:
        if guarded is not None:
            guarded.request_finished()
    ctx.observe_http(request.method, route, response.status, time.perf_counter() - started)
    if request.method != "GET":
        audit_http_request(ctx.audit, request, route, response)
    return response


def _client_gone(request: web.Request) -> bool:
    """Whether the client's connection is closed (a reset from elsewhere, e.g. a forwarded
    request's broker, is an error to report, not a client leaving)."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def _traced(ctx: WebContext, request: web.Request, handler: Handler, route: str
                  ) -> web.StreamResponse:
    parent = extract_context(request.headers) if "traceparent" in request.headers else None
    with ctx.tracer.start_as_current_span(
            f"{request.method} {route}", context=parent, kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "http.route": route,
                        "url.path": request.path}) as span:
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except (ApiError, web.HTTPException) as exc:
            status = exc.status
            raise
        finally:
            if span.is_recording():
                span.set_attribute("http.response.status_code", status)


def _error_response(request: web.Request, exc: Exception) -> web.Response:
    """The ``{"error_code", "message"}`` JSON answer to a request whose handler raised."""
    if isinstance(exc, ApiError):
        return json_response({"error_code": exc.error_code, "message": exc.message},
                             status=exc.status)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:  # a redirect is an answer, not an error
            raise exc
        code = {404: errors.NO_ROUTE, 405: errors.METHOD_NOT_ALLOWED,
                413: errors.BODY_TOO_LARGE, 415: errors.UNSUPPORTED_MEDIA_TYPE}.get(
                    exc.status, exc.status * 100)
        message = exc.reason if exc.status != 404 else f"no route for {request.path}"
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return web.json_response({"error_code": code, "message": message},
                                 status=exc.status, headers=headers)
    if isinstance(exc, RecursionError):  # a parser's last resort; bodies are depth-checked first
        return json_response({"error_code": errors.MALFORMED_JSON,
                              "message": "request nested too deeply"}, status=400)
    log.error("HTTP %s %s failed", request.method, request.path, exc_info=exc)
    return json_response({"error_code": errors.INTERNAL_ERROR,
                          "message": "internal error; see the broker log"}, status=500)


def create_app(
    broker: Broker,
    groups: GroupCoordinator | None,
    metrics: BrokerMetrics,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    body_timeout: float | None = None,
    connections: HttpConnectionGuard | None = None,
    consumer_instances: bool = True,
    partition_router: PartitionRouter | None = None,
    group_router: GroupRouter | None = None,
    audit: AdminAudit | None = None,
) -> web.Application:
    """Build the HTTP application over ``broker`` (the in-process services object) and its
    group coordinator; the composition root (:mod:`headrace.app`) supplies the telemetry:
    ``metrics`` for ``/metrics`` and ``tracer_provider`` (None: tracing off); on a cluster
    the routers that reach other brokers' partitions and groups (None: this broker's own); and
    the limits: ``max_body_bytes`` (aiohttp's client_max_size), ``body_timeout`` (seconds a
    body may stall) and ``connections``, the guard its site serves through."""
    from headrace.web import consumers, produce, stream, v3

    app = web.Application(middlewares=[_serve], client_max_size=max_body_bytes)
    ctx = WebContext(broker=broker, groups=groups, metrics=metrics,
                     tracer=get_tracer(tracer_provider), max_body_bytes=max_body_bytes,
                     body_timeout=body_timeout, connections=connections,
                     tracing=tracer_provider is not None, router=partition_router,
                     group_router=group_router, audit=audit or AdminAudit())
    app[WEB_CONTEXT] = ctx
    router = app.router
    router.add_get("/healthz", _healthz)
    router.add_get("/readyz", _readyz)
    router.add_get("/metrics", _metrics)
    router.add_get("/openapi.json", _openapi)
    produce.add_routes(app)
    v3.add_routes(app)
    stream.add_routes(app)
    consumers.add_routes(app)

    if consumer_instances:
        endpoint = broker.endpoint
        consumers.serve_instances(app, f"{endpoint.host}:{endpoint.port}")
    return app


__all__ = ["create_app"]
