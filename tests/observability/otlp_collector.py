"""A stand-in OTLP/HTTP trace collector for tests: an aiohttp server on an ephemeral port that
keeps every export request it receives, so tests check what really went over HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@dataclass
class OtlpCollector:
    #: What ``OTEL_EXPORTER_OTLP_ENDPOINT`` should be set to.
    endpoint: str = ""
    received: list[ExportTraceServiceRequest] = field(default_factory=list)

    def spans(self) -> list[Any]:
        """Every span of every export request, in arrival order."""
        return [span for message in self.received for resource_spans in message.resource_spans
                for scope_spans in resource_spans.scope_spans for span in scope_spans.spans]


@contextlib.asynccontextmanager
async def otlp_collector() -> AsyncIterator[OtlpCollector]:
    collector = OtlpCollector()

    async def collect(request: web.Request) -> web.Response:
        if request.content_type != "application/x-protobuf":
            raise web.HTTPUnsupportedMediaType()
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        collector.received.append(message)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        collector.endpoint = f"http://127.0.0.1:{runner.addresses[0][1]}"
        yield collector
    finally:
        await runner.cleanup()
