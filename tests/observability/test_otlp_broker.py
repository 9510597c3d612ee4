"""A ``headrace broker`` process exports its spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT
is set: an aiohttp stand-in collector receives the HTTP and Kafka spans."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from tests.observability.otlp_collector import otlp_collector
from tests.support.brokers import BrokerProcess


async def test_broker_process_exports_spans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    async with otlp_collector() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
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
    names = {span.name for span in collector.spans()}
    assert {"POST /v3/clusters/{cluster_id}/topics/{topic_name}/records", "produce",
            "GET /v3/clusters"} <= names
