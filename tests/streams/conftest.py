"""A subprocess broker for the stream-processing tests: real clients, a real socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.brokers import BrokerProcess


@pytest.fixture
def streams_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    # Few __transaction_state partitions: quick to open.
    broker = BrokerProcess(tmp_path / "data", ("--transaction-state-log-num-partitions", "3"))
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()
