"""Spans for HTTP requests and produce/fetch, W3C traceparent in and into record headers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from headrace.core.broker import Broker
from tests.support.brokers import http_broker
from tests.support.clients import consume_all
from tests.support.waiting import eventually_async

INCOMING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_SPAN = "00f067aa0ba902b7"


@contextlib.asynccontextmanager
async def traced_broker(tmp_path: Path) -> AsyncIterator[tuple[Broker, InMemorySpanExporter]]:
    """A broker with its HTTP server whose spans end up in the exporter it yields."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with http_broker(tmp_path / "data", tracer_provider=provider) as running:
        yield running.broker, exporter


async def test_http_produce_continues_the_trace_into_record_headers(tmp_path: Path) -> None:
    async with traced_broker(tmp_path) as (broker, exporter):
        base = f"http://127.0.0.1:{broker.http_port}/v3/clusters/{broker.cluster_id}"
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/topics", json={"topic_name": "traced"}) as response:
                assert response.status == 201
            exporter.clear()
            headers = {"traceparent": f"00-{INCOMING_TRACE}-{INCOMING_SPAN}-01"}
            async with session.post(f"{base}/topics/traced/records", headers=headers,
                                    json={"value": {"type": "STRING", "data": "hello"}}
                                    ) as response:
                assert response.status == 200, await response.text()
            async with session.get(f"{base}/topics/traced/stream?from=beginning&limit=1"
                                   ) as response:
                events = [json.loads(line[6:]) for line in (await response.text()).splitlines()
                          if line.startswith("data: ")]
        spans = {span.name: span for span in exporter.get_finished_spans()}
        server = spans["POST /v3/clusters/{cluster_id}/topics/{topic_name}/records"]
        produce = spans["produce"]
        assert server.kind is SpanKind.SERVER
        assert format_trace_id(server.context.trace_id) == INCOMING_TRACE
        assert server.parent is not None and format_span_id(server.parent.span_id) == INCOMING_SPAN
        assert server.attributes is not None
        assert server.attributes["http.response.status_code"] == 200
        assert produce.parent is not None and produce.parent.span_id == server.context.span_id
        assert produce.attributes is not None
        assert produce.attributes["messaging.destination.name"] == "traced"
        assert "fetch" in spans  # the SSE read

        # A Kafka consumer sees the producing span as the record's traceparent header.
        (message,) = await asyncio.to_thread(consume_all, f"127.0.0.1:{broker.kafka_port}",
                                             "traced", 1, 1)
        header = dict(message.headers())["traceparent"].decode()
        assert header == (f"00-{INCOMING_TRACE}-{format_span_id(produce.context.span_id)}-01")
        assert events[0]["headers"][0]["name"] == "traceparent"
        # Kafka requests are spans too, with their measured duration.
        kafka_spans = {s.name: s for s in exporter.get_finished_spans()
                       if s.name.startswith("kafka ")}
        assert {"kafka Metadata", "kafka Fetch"} <= set(kafka_spans)
        fetch = kafka_spans["kafka Fetch"]
        assert fetch.attributes is not None and fetch.attributes["rpc.method"] == "Fetch"
        assert fetch.end_time is not None and fetch.start_time is not None
        assert fetch.end_time >= fetch.start_time


async def test_without_tracing_only_an_incoming_traceparent_is_passed_on(tmp_path: Path
                                                                       ) -> None:
    async with http_broker(tmp_path / "data") as running:
        broker = running.broker
        base = f"http://127.0.0.1:{broker.http_port}/v3/clusters/{broker.cluster_id}"
        incoming = f"00-{INCOMING_TRACE}-{INCOMING_SPAN}-01"
        async with aiohttp.ClientSession() as session:
            await session.post(f"{base}/topics", json={"topic_name": "plain"})
            async with session.post(f"{base}/topics/plain/records",
                                    json={"value": {"data": 1}}) as response:
                assert response.status == 200
            async with session.post(f"{base}/topics/plain/records",
                                    headers={"traceparent": incoming},
                                    json={"value": {"data": 2}}) as response:
                assert response.status == 200
        first, second = sorted(
            await asyncio.to_thread(consume_all, f"127.0.0.1:{broker.kafka_port}", "plain", 1, 2),
            key=lambda m: m.offset())
        assert not first.headers()  # no span, no caller context: nothing added
        assert second.headers() == [("traceparent", incoming.encode())]


async def test_group_operations_are_traced(tmp_path: Path) -> None:
    async with traced_broker(tmp_path) as (broker, exporter):
        base = f"http://127.0.0.1:{broker.http_port}"
        topics = f"{base}/v3/clusters/{broker.cluster_id}/topics"
        async with aiohttp.ClientSession() as session:
            async with session.post(topics, json={"topic_name": "grouped"}) as response:
                assert response.status == 201
            async with session.post(f"{base}/consumers/traced-group",
                                    json={"name": "member"}) as response:
                instance = (await response.json())["base_uri"]
            async with session.post(instance + "/subscription",
                                    json={"topics": ["grouped"]}) as response:
                assert response.status == 204

            async def assigned() -> bool:
                async with session.get(instance + "/records?timeout=200") as response:
                    assert response.status == 200
                async with session.get(instance + "/assignments") as response:
                    return bool((await response.json())["partitions"])

            # A group join; generous on a busy machine.
            await eventually_async(assigned, timeout=45, message="the member's assignment")
            async with session.post(instance + "/offsets", json={"offsets": [
                    {"topic": "grouped", "partition": 0, "offset": 0}]}) as response:
                assert response.status == 204
            async with session.delete(instance) as response:
                assert response.status == 204
        names = {span.name for span in exporter.get_finished_spans()}
        assert {"kafka JoinGroup", "kafka SyncGroup", "kafka OffsetCommit", "commit_offsets",
                "fetch"} <= names, names


async def test_a_refused_request_records_its_error_status(tmp_path: Path) -> None:
    async with traced_broker(tmp_path) as (broker, exporter):
        base = f"http://127.0.0.1:{broker.http_port}/v3/clusters/{broker.cluster_id}"
        async with aiohttp.ClientSession() as session, session.post(
                f"{base}/topics/missing/records", json={"value": {"data": 1}}) as response:
            assert response.status == 404
            assert (await response.json())["error_code"] == 40401
        (server,) = [span for span in exporter.get_finished_spans()
                     if span.kind is SpanKind.SERVER]
        assert server.attributes is not None
        assert server.attributes["http.response.status_code"] == 404
