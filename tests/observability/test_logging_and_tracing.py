"""Structured logs and OpenTelemetry helpers."""

from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

from headrace.observability import logging as hlogging
from headrace.observability.tracing import (
    extract_context,
    get_tracer,
    setup_tracing,
    traceparent_header,
)


@pytest.fixture
def restore_root_logger() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_logs_carry_fields_and_trace_ids(restore_root_logger: object) -> None:
    stream = io.StringIO()
    hlogging.setup("debug", "json", stream=stream)
    hlogging.setup("info", "json", stream=stream)  # replaces, doesn't stack
    exporter = InMemorySpanExporter()
    tracer = get_tracer(setup_tracing(exporter=exporter))
    log = logging.getLogger("headrace.test")
    log.debug("hidden at info")
    with tracer.start_as_current_span("work") as span:
        log.info("listening on %s", "127.0.0.1:1", extra={"port": 1})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["message"] == "listening on 127.0.0.1:1"
    assert entry["level"] == "info" and entry["logger"] == "headrace.test" and entry["port"] == 1
    assert entry["trace_id"] == format_trace_id(span.get_span_context().trace_id)
    assert entry["span_id"] == format_span_id(span.get_span_context().span_id)


def test_bad_log_level_is_named() -> None:
    with pytest.raises(ValueError, match="loud"):
        hlogging.parse_level("loud")
    assert hlogging.parse_level("WARNING") == logging.WARNING


def test_tracing_is_off_without_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert setup_tracing() is None
    with get_tracer(None).start_as_current_span("noop") as span:
        assert not span.is_recording()
        assert traceparent_header() is None


def test_otlp_endpoint_enables_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    provider = setup_tracing()
    assert provider is not None
    provider.shutdown()


def test_traceparent_round_trip() -> None:
    exporter = InMemorySpanExporter()
    tracer = get_tracer(setup_tracing(exporter=exporter))
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with tracer.start_as_current_span("child", context=extract_context({"traceparent": incoming})):
        header = traceparent_header()
    assert header is not None and header.startswith("00-0af7651916cd43dd8448eb211c80319c-")
    (span,) = exporter.get_finished_spans()
    assert span.parent is not None and format_span_id(span.parent.span_id) == "b7ad6b7169203331"


async def test_spans_are_exported_over_otlp_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real OTLP/HTTP exchange: an aiohttp server stands in for the collector."""
    import asyncio

    from tests.observability.otlp_collector import otlp_collector

    async with otlp_collector() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
        provider = setup_tracing(broker_id=3)
        assert provider is not None
        with get_tracer(provider).start_as_current_span("exported-span"):
            pass
        # The batch processor exports from its own thread; flush without blocking the loop.
        assert await asyncio.to_thread(provider.force_flush, 10_000)
        provider.shutdown()
    assert [span.name for span in collector.spans()] == ["exported-span"]
    resource = collector.received[0].resource_spans[0].resource
    attributes = {a.key: a.value for a in resource.attributes}
    assert attributes["service.name"].string_value == "headrace-broker"
    assert attributes["headrace.broker_id"].int_value == 3
