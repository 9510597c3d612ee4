"""A real broker running in-process on the test's event loop, with its HTTP app.

Kafka clients (confluent-kafka) block, so tests call them through ``asyncio.to_thread`` while
the broker keeps serving on the loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.brokers import RunningBroker, http_broker


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningBroker]:
    async with (http_broker(tmp_path / "data", max_body_bytes=64 * 1024) as started,
                aiohttp.ClientSession() as session):
        yield RunningBroker(started.broker, f"http://127.0.0.1:{started.http_port}", session)
