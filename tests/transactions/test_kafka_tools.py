"""Apache Kafka's ``kafka-transactions.sh`` (TransactionsCommand, KIP-664) against a headrace
broker: its admin client's ListTransactions, DescribeTransactions (after FindCoordinator key
type 1) and DescribeProducers find an open transaction and its first offset."""

from __future__ import annotations

import pytest

from tests.peers.kafka import kafka_missing_reason, run_kafka_tool
from tests.support.brokers import BrokerProcess
from tests.support.clients import create_topic
from tests.transactions.txn_clients import transactional_producer

MISSING = kafka_missing_reason()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))

TRANSACTIONS_COMMAND = "org.apache.kafka.tools.TransactionsCommand"


def _tool(broker: BrokerProcess, *args: str) -> str:
    done = run_kafka_tool(TRANSACTIONS_COMMAND, "--bootstrap-server", broker.bootstrap, *args,
                          timeout=60)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return done.stdout


def test_kafka_transactions_tool_lists_and_describes_an_open_transaction(
    txn_broker: BrokerProcess,
) -> None:
    create_topic(txn_broker.bootstrap, "tooled", 1)
    producer = transactional_producer(txn_broker.bootstrap, "tool-visible")
    producer.begin_transaction()
    producer.produce("tooled", value=b"open", partition=0)
    producer.flush(10)

    listed = _tool(txn_broker, "list")
    assert "tool-visible" in listed and "Ongoing" in listed, listed
    described = _tool(txn_broker, "describe", "--transactional-id", "tool-visible")
    assert "Ongoing" in described and "tooled-0" in described, described
    producers = _tool(txn_broker, "describe-producers", "--topic", "tooled", "--partition", "0")
    lines = [line.split() for line in producers.strip().splitlines()]
    assert lines[0][:2] == ["ProducerId", "ProducerEpoch"], producers
    current_txn_start = lines[0].index("CurrentTransactionStartOffset")
    assert lines[1][current_txn_start] == "0", producers  # the open transaction starts at 0

    producer.commit_transaction(30)
    described = _tool(txn_broker, "describe", "--transactional-id", "tool-visible")
    assert "CompleteCommit" in described, described
