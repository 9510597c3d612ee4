"""/metrics values move with traffic, and a real Prometheus server scrapes and queries them."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import struct
import subprocess
import urllib.parse
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.brokers import RunningBroker
from tests.support.clients import consume_all
from tests.support.waiting import eventually_async
from tests.web.test_rest_interop import produce_with_confluent


async def _scrape(running: RunningBroker) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with running.session.get(running.base_url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_move_with_kafka_and_http_traffic(running: RunningBroker) -> None:
    await running.create_topic("metered", partitions=2)
    before = await _scrape(running)
    assert _value(before, "headrace_broker_info", broker_id="1", version="test") == 1
    records = [(f"k{i}".encode(), b"x" * 100) for i in range(50)]
    await asyncio.to_thread(produce_with_confluent, running.bootstrap, "metered", records)
    await asyncio.to_thread(consume_all, running.bootstrap, "metered", 2, 50)
    async with running.session.post(f"{running.cluster_url}/topics/metered/records",
                                    json={"partition_id": 0, "value": {"data": 1}}) as response:
        assert response.status == 200
    after = await _scrape(running)

    assert _value(after, "headrace_topic_records_in_total", topic="metered") == 51
    assert _value(after, "headrace_topic_bytes_in_total", topic="metered") > 50 * 100
    assert _value(after, "headrace_topic_bytes_out_total", topic="metered") > 50 * 100
    produce_requests = (_value(after, "headrace_requests_total", api="Produce")
                        - _value(before, "headrace_requests_total", api="Produce"))
    assert produce_requests >= 1
    assert _value(after, "headrace_request_duration_seconds_count", api="Fetch") >= 1
    assert _value(after, "headrace_connections_total") >= 2
    ends = [running.broker.offsets("metered", p)[1] for p in (0, 1)]
    assert sum(ends) == 51
    for partition, end in enumerate(ends):
        labels = {"topic": "metered", "partition": str(partition)}
        assert _value(after, "headrace_log_end_offset", **labels) == end
        assert _value(after, "headrace_high_watermark", **labels) == end
        assert _value(after, "headrace_log_segments", **labels) >= 1
    assert _value(after, "headrace_log_size_bytes", topic="metered", partition="0") > 0
    assert _value(after, "headrace_partitions") >= 2
    assert _value(after, "headrace_log_dir_total_bytes",
                  dir=str(running.broker.config.data_dir)) > 0
    route = "/v3/clusters/{cluster_id}/topics/{topic_name}/records"
    assert _value(after, "headrace_http_requests_total", method="POST", route=route,
                  status="200") == 1
    assert _value(after, "process_cpu_seconds_total") > 0


async def test_request_errors_are_counted_by_kafka_error_name(running: RunningBroker) -> None:
    # ApiVersions at a version nobody supports: the broker answers UNSUPPORTED_VERSION (35).
    reader, writer = await asyncio.open_connection("127.0.0.1", running.broker.kafka_port)
    client_id = b"metrics-test"
    body = struct.pack(">hhih", 18, 99, 7, len(client_id)) + client_id
    writer.write(struct.pack(">i", len(body)) + body)
    await writer.drain()
    size = struct.unpack(">i", await reader.readexactly(4))[0]
    response = await reader.readexactly(size)
    assert struct.unpack(">ih", response[:6]) == (7, 35)
    writer.close()
    await writer.wait_closed()
    samples = await _scrape(running)
    assert _value(samples, "headrace_request_errors_total", api="ApiVersions",
                  error="UNSUPPORTED_VERSION") == 1
    assert _value(samples, "headrace_requests_total", api="ApiVersions") >= 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian prometheus not installed")
async def test_prometheus_scrapes_the_broker(running: RunningBroker, tmp_path: Path) -> None:
    await running.create_topic("scraped", partitions=1)
    await asyncio.to_thread(produce_with_confluent, running.bootstrap, "scraped",
                            [(b"k", b"v")] * 7)
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "headrace", "scrape_interval": "1s",
                            "static_configs": [{"targets": [
                                f"127.0.0.1:{running.broker.http_port}"]}]}],
    }))
    process = await asyncio.create_subprocess_exec(
        "prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    query = urllib.parse.quote('headrace_log_end_offset{topic="scraped",partition="0"}')
    try:
        async with aiohttp.ClientSession() as session:
            async def answered() -> float | None:
                try:
                    async with session.get(
                            f"http://127.0.0.1:{port}/api/v1/query?query={query}") as response:
                        if response.status != 200:
                            return None
                        result = (await response.json())["data"]["result"]
                except aiohttp.ClientError:
                    return None
                return float(result[0]["value"][1]) if result else None

            assert await eventually_async(answered, timeout=45, interval=0.25,
                                          message="Prometheus to answer the query") == 7.0
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)
