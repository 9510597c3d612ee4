"""An in-process broker on an ephemeral port, for server tests that need no subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from headrace.app import BrokerApp
from headrace.core.broker import Broker
from headrace.core.config import BrokerConfig


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[BrokerApp]:
    instance = BrokerApp(
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


@pytest.fixture
def broker(app: BrokerApp) -> Broker:
    return app.broker
