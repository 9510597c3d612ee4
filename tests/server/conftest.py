"""An in-process broker on an ephemeral port, for server tests that need no subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from headrace.app import BrokerApp
from headrace.core.broker import Broker
from tests.support.brokers import in_process_broker


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[BrokerApp]:
    async with in_process_broker(
        tmp_path / "data", offsets_topic_partitions=2, max_request_bytes=1 << 20
    ) as running:
        yield running.app


@pytest.fixture
def broker(app: BrokerApp) -> Broker:
    return app.broker
