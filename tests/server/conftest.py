"""An in-process broker on an ephemeral port, for server tests that need no subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from headrace.core.broker import Broker
from tests.support.brokers import in_process_broker


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    async with in_process_broker(
        tmp_path / "data", offsets_topic_partitions=2, max_request_bytes=1 << 20
    ) as running:
        yield running.broker
