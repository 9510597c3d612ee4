"""OpenTelemetry tracing for the broker: off and free by default, OTLP when asked.

:func:`setup_tracing` installs a tracer provider only when an OTLP endpoint is given (flag or
``OTEL_EXPORTER_OTLP_ENDPOINT``) or a test passes its own span exporter; otherwise the API's
no-op tracer is used and a span costs one function call. :func:`traceparent_header` gives the W3C
``traceparent`` of the current span so HTTP produce can write it into record headers, and
:func:`extract_context` reads an incoming one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACER_NAME = "headrace"
TRACEPARENT = "traceparent"

_propagator = TraceContextTextMapPropagator()


def setup_tracing(
    *,
    endpoint: str | None = None,
    service_name: str = "headrace-broker",
    broker_id: int | None = None,
    exporter: SpanExporter | None = None,
) -> TracerProvider | None:
    """A tracer provider exporting to ``endpoint``/``exporter``; ``None`` when tracing is off.

    The provider is returned (not installed globally) so several brokers in one process keep
    separate pipelines; pass it to :func:`get_tracer`.
    """
    endpoint = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if exporter is None and not endpoint:
        return None
    attributes: dict[str, str | int] = {"service.name": service_name}
    if broker_id is not None:
        attributes["headrace.broker_id"] = broker_id
    provider = TracerProvider(resource=Resource.create(attributes))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        traces_endpoint = endpoint.rstrip("/") + "/v1/traces" if endpoint else None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_endpoint)))
    return provider


def get_tracer(provider: trace.TracerProvider | None) -> trace.Tracer:
    """A tracer from ``provider``, or the global (no-op unless configured) one."""
    if provider is None:
        return trace.get_tracer(TRACER_NAME)
    return provider.get_tracer(TRACER_NAME)


def extract_context(headers: Mapping[str, str]) -> Context:
    """The parent context carried by a W3C ``traceparent`` header (empty context if none)."""
    return _propagator.extract(carrier=dict(headers))


def traceparent_header() -> str | None:
    """The W3C ``traceparent`` of the current span, or None when no span is recording."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACEPARENT)


__all__ = [
    "TRACEPARENT",
    "extract_context",
    "get_tracer",
    "setup_tracing",
    "traceparent_header",
]
