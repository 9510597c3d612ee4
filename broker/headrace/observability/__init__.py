"""Observability of a broker: Prometheus metrics, OpenTelemetry tracing and structured logs.

Kept apart from the HTTP app and the Kafka server so both can report through the same objects
and so the metric, span and log shapes can be tested without running servers.
"""
