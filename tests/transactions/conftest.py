"""A subprocess broker for the transaction tests: real clients, a real socket, kill -9 able."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.brokers import BrokerProcess

#: Few __transaction_state partitions (quick to open); a short abort timer for timeout tests.
TXN_ARGS = (
    "--transaction-state-log-num-partitions", "3",
    "--transaction-abort-timed-out-transaction-cleanup-interval-ms", "500",
)


@pytest.fixture
def txn_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(tmp_path / "data", TXN_ARGS).start()
    try:
        yield broker
    finally:
        broker.kill()
