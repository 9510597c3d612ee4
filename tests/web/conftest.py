"""A real broker running in-process on the test's event loop, with its HTTP app.

Kafka clients (confluent-kafka) block, so tests call them through ``asyncio.to_thread`` while
the broker keeps serving on the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace import TracerProvider

from headrace.app import BrokerApp
from headrace.core.broker import Broker
from headrace.core.config import BrokerConfig
from headrace.observability.metrics import BrokerMetrics


@dataclass
class RunningBroker:
    broker: Broker
    base_url: str
    session: aiohttp.ClientSession

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker.kafka_port}"

    @property
    def cluster_url(self) -> str:
        return f"{self.base_url}/v3/clusters/{self.broker.cluster_id}"

    @property
    def metrics(self) -> BrokerMetrics:
        observer = self.broker.observer
        assert isinstance(observer, BrokerMetrics)
        return observer

    async def create_topic(self, name: str, partitions: int = 1, **configs: str) -> None:
        body: dict[str, Any] = {"topic_name": name, "partitions_count": partitions,
                                "configs": [{"name": k.replace("_", "."), "value": v}
                                            for k, v in configs.items()]}
        async with self.session.post(f"{self.cluster_url}/topics", json=body) as response:
            assert response.status == 201, await response.text()


async def start_running_broker(data_dir: Path, tracer_provider: TracerProvider | None = None,
                               max_body_bytes: int | None = None) -> BrokerApp:
    config = BrokerConfig(data_dir=data_dir, kafka_port=0, http_port=0,
                          offsets_topic_partitions=3, group_initial_rebalance_delay_ms=0)
    if max_body_bytes is not None:
        config.http_max_body_bytes = max_body_bytes
    app = BrokerApp(config, observer=BrokerMetrics(config.node_id, "test"),
                    tracer_provider=tracer_provider)
    await app.start()
    return app


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningBroker]:
    app = await start_running_broker(tmp_path / "data", max_body_bytes=64 * 1024)
    async with aiohttp.ClientSession() as session:
        yield RunningBroker(app.broker, f"http://127.0.0.1:{app.http_port}", session)
    await app.stop()


async def poll_until(condition: Callable[[], Any], within: float = 20.0,
                     interval: float = 0.02) -> Any:
    """Await ``condition()`` (sync or async) until truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)
