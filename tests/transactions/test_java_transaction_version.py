"""Apache Kafka's Java producer (4.x) negotiates KIP-890 part 2 from ApiVersions: against a
broker advertising ``transaction.version`` 2 it bumps its epoch with every EndTxn (v5) and adds
partitions by producing (v12); against one at level 1 it keeps the epoch and sends
AddPartitionsToTxn. Either way every committed record is read back under read_committed.

The producer is Kafka's ``kafka-producer-perf-test --transactional-id`` (ProducerPerformance),
committing every 100 ms; the epoch is read back with ``kafka-transactions describe``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.peers.kafka import kafka_missing_reason, run_kafka_tool
from tests.support.brokers import BrokerProcess
from tests.support.clients import create_topic
from tests.transactions.txn_clients import read_values

MISSING = kafka_missing_reason()
pytestmark = [pytest.mark.skipif(MISSING is not None, reason=str(MISSING)),
              pytest.mark.timeout(240)]

PRODUCER_PERFORMANCE = "org.apache.kafka.tools.ProducerPerformance"
TRANSACTIONS_COMMAND = "org.apache.kafka.tools.TransactionsCommand"
RECORDS = 3000


def _perf_test(bootstrap: str, topic: str) -> None:
    done = run_kafka_tool(
        PRODUCER_PERFORMANCE, "--topic", topic, "--num-records", str(RECORDS),
        "--record-size", "100", "--throughput", "3000",
        "--transactional-id", "perf-tx", "--transaction-duration-ms", "100",
        "--command-property", f"bootstrap.servers={bootstrap}", timeout=120,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert f"{RECORDS} records sent" in done.stdout, done.stdout


def _described_epoch(bootstrap: str, transactional_id: str) -> tuple[int, str]:
    done = run_kafka_tool(TRANSACTIONS_COMMAND, "--bootstrap-server", bootstrap, "describe",
                          "--transactional-id", transactional_id, timeout=60)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    header, row = (line.split() for line in done.stdout.strip().splitlines()[:2])
    return int(row[header.index("ProducerEpoch")]), row[header.index("TransactionState")]


@pytest.mark.parametrize("version", [2, 1])
def test_the_java_producer_bumps_its_epoch_per_transaction_only_at_transaction_version_2(
    tmp_path: Path, version: int,
) -> None:
    broker = BrokerProcess(tmp_path / "data", (
        "--transaction-state-log-num-partitions", "3", "--transaction-version", str(version),
    )).start()
    try:
        create_topic(broker.bootstrap, "perf", 2)
        _perf_test(broker.bootstrap, "perf")
        epoch, state = _described_epoch(broker.bootstrap, "perf-tx")
        assert state == "CompleteCommit"
        if version == 2:
            # Transactions of 100 ms over a second of records: a bump each (version 1: none).
            assert epoch >= 2, f"epoch {epoch}: the client did not use transaction version 2"
        else:
            assert epoch == 0
        values = read_values(broker.bootstrap, "perf", 2, "read_committed", RECORDS,
                             settle=1.0, timeout=60)
        assert len(values) == RECORDS
    finally:
        broker.kill()

