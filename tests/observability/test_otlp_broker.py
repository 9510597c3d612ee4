"""A ``headrace broker`` process exports its spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT
is set: an aiohttp stand-in collector receives the HTTP and Kafka spans."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.clients.conftest import BrokerProcess


async def test_broker_process_exports_spans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    received: list[ExportTraceServiceRequest] = []

    async def collect(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        received.append(message)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{runner.addresses[0][1]}")
    broker = await asyncio.to_thread(BrokerProcess(tmp_path / "data").start)
    try:
        base = f"http://127.0.0.1:{broker.http_port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/v3/clusters") as response:
                cluster = (await response.json())["data"][0]["cluster_id"]
            topics = f"{base}/v3/clusters/{cluster}/topics"
            async with session.post(topics, json={"topic_name": "exported"}) as response:
                assert response.status == 201
            async with session.post(f"{topics}/exported/records",
                                    data=json.dumps({"value": {"data": 1}})) as response:
                assert response.status == 200
        # A graceful stop flushes the batch span processor.
        assert await asyncio.to_thread(broker.stop) == 0
    finally:
        await asyncio.to_thread(broker.kill)
        await runner.cleanup()
    names = {span.name for message in received for resource_spans in message.resource_spans
             for scope_spans in resource_spans.scope_spans for span in scope_spans.spans}
    assert {"POST /v3/clusters/{cluster_id}/topics/{topic_name}/records", "produce",
            "GET /v3/clusters"} <= names
