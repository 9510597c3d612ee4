"""An in-process broker on an ephemeral port, for server tests that need no subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from headrace.server.broker import Broker, BrokerConfig


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    instance = Broker(
        BrokerConfig(
            data_dir=tmp_path / "data", kafka_port=0, http_host=None,
            offsets_topic_partitions=2, max_request_bytes=1 << 20,
        )
    )
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()
