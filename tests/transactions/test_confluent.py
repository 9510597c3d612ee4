"""confluent-kafka (librdkafka) transactions against a subprocess broker: commit and abort as
read_committed and read_uncommitted consumers see them, fencing, timeouts, the coordinator's
limits, and a broker killed with -9 in the middle of a transaction."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from tests.support.brokers import BrokerProcess
from tests.support.clients import create_topic
from tests.transactions.txn_clients import (
    produce_transaction,
    read_values,
    transactional_producer,
)


def test_read_committed_sees_exactly_the_committed_transactions(
    txn_broker: BrokerProcess,
) -> None:
    bootstrap = txn_broker.bootstrap
    create_topic(bootstrap, "orders", 2)
    producer = transactional_producer(bootstrap, "orders-writer")
    committed = [b"c1-%d" % i for i in range(10)]
    aborted = [b"a-%d" % i for i in range(10)]
    later = [b"c2-%d" % i for i in range(5)]
    produce_transaction(producer, "orders", committed, commit=True)
    produce_transaction(producer, "orders", aborted, commit=False)
    produce_transaction(producer, "orders", later, commit=True)
    seen = read_values(bootstrap, "orders", 2, "read_committed", len(committed + later))
    assert sorted(seen) == sorted(committed + later)
    everything = read_values(bootstrap, "orders", 2, "read_uncommitted",
                             len(committed + aborted + later))
    assert sorted(everything) == sorted(committed + aborted + later)


def test_open_transaction_holds_read_committed_back_at_the_last_stable_offset(
    txn_broker: BrokerProcess,
) -> None:
    bootstrap = txn_broker.bootstrap
    create_topic(bootstrap, "held", 1)
    plain = Producer({"bootstrap.servers": bootstrap})
    plain.produce("held", value=b"before")
    plain.flush(10)
    producer = transactional_producer(bootstrap, "holder")
    producer.begin_transaction()
    producer.produce("held", value=b"pending")
    producer.flush(10)
    plain.produce("held", value=b"after")  # behind the open transaction: not yet stable
    plain.flush(10)
    assert read_values(bootstrap, "held", 1, "read_committed", 1) == [b"before"]
    assert sorted(read_values(bootstrap, "held", 1, "read_uncommitted", 3)) == [
        b"after", b"before", b"pending"]
    producer.commit_transaction(30)
    assert read_values(bootstrap, "held", 1, "read_committed", 3) == [
        b"before", b"pending", b"after"]


def test_second_producer_with_the_same_transactional_id_fences_the_first(
    txn_broker: BrokerProcess,
) -> None:
    bootstrap = txn_broker.bootstrap
    create_topic(bootstrap, "fenced", 1)
    first = transactional_producer(bootstrap, "shared-id")
    first.begin_transaction()
    first.produce("fenced", value=b"zombie")
    first.flush(10)
    second = transactional_producer(bootstrap, "shared-id")  # aborts the open transaction
    produce_transaction(second, "fenced", [b"winner"], commit=True)
    with pytest.raises(KafkaException) as raised:
        first.produce("fenced", value=b"zombie-2")
        first.commit_transaction(30)
    assert raised.value.args[0].code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                            KafkaError.INVALID_PRODUCER_EPOCH)
    assert read_values(bootstrap, "fenced", 1, "read_committed", 1) == [b"winner"]


def test_transaction_timeout_beyond_the_maximum_is_refused(txn_broker: BrokerProcess) -> None:
    producer = Producer({"bootstrap.servers": txn_broker.bootstrap, "transactional.id": "slow",
                         "transaction.timeout.ms": 900_001})
    with pytest.raises(KafkaException) as raised:
        producer.init_transactions(20)
    assert raised.value.args[0].code() == KafkaError.INVALID_TRANSACTION_TIMEOUT


def test_a_transaction_left_open_is_aborted_at_its_timeout(txn_broker: BrokerProcess) -> None:
    bootstrap = txn_broker.bootstrap
    create_topic(bootstrap, "stuck", 1)
    stuck = transactional_producer(
        bootstrap, "stuck-writer", **{"transaction.timeout.ms": 2000, "socket.timeout.ms": 2000}
    )
    stuck.begin_transaction()
    stuck.produce("stuck", value=b"never-committed")
    stuck.flush(10)
    plain = Producer({"bootstrap.servers": bootstrap})
    plain.produce("stuck", value=b"after-the-stuck-one")
    plain.flush(10)
    # The coordinator aborts the transaction, so the LSO moves past it.
    assert read_values(bootstrap, "stuck", 1, "read_committed", 1, timeout=30) == [
        b"after-the-stuck-one"]


def test_broker_killed_mid_transaction_loses_no_committed_record(tmp_path: object) -> None:
    from pathlib import Path

    from tests.transactions.conftest import TXN_ARGS

    data = Path(str(tmp_path)) / "data"
    broker = BrokerProcess(data, TXN_ARGS).start()
    try:
        create_topic(broker.bootstrap, "durable", 1)
        producer = transactional_producer(broker.bootstrap, "durable-writer")
        produce_transaction(producer, "durable", [b"kept-%d" % i for i in range(20)],
                            commit=True)
        producer.begin_transaction()
        producer.produce("durable", value=b"in-flight")
        producer.flush(10)
        broker.kill()  # kill -9 with the transaction open
        broker.start()
        # The old producer's transaction can never commit: a new incarnation fences and
        # aborts it, then works normally.
        again = transactional_producer(broker.bootstrap, "durable-writer")
        produce_transaction(again, "durable", [b"after-restart"], commit=True)
        expected = [b"kept-%d" % i for i in range(20)] + [b"after-restart"]
        assert read_values(broker.bootstrap, "durable", 1, "read_committed",
                           len(expected)) == expected
        assert b"in-flight" in read_values(broker.bootstrap, "durable", 1, "read_uncommitted",
                                           len(expected) + 1)
        broker.kill()
        broker.start()  # once more: the markers and the aborted range survive recovery
        assert read_values(broker.bootstrap, "durable", 1, "read_committed",
                           len(expected)) == expected
    finally:
        broker.kill()


def test_metrics_count_transactions_and_the_lso_lag(txn_broker: BrokerProcess) -> None:
    import urllib.request

    def metrics() -> str:
        url = f"http://127.0.0.1:{txn_broker.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    def value(text: str, series: str) -> float:
        for line in text.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        raise AssertionError(f"{series} not in /metrics")

    bootstrap = txn_broker.bootstrap
    create_topic(bootstrap, "metered", 1)
    producer = transactional_producer(bootstrap, "metered-writer")
    produce_transaction(producer, "metered", [b"c"], commit=True)
    produce_transaction(producer, "metered", [b"a"], commit=False)
    producer.begin_transaction()
    producer.produce("metered", value=b"open-1", partition=0)
    producer.produce("metered", value=b"open-2", partition=0)
    producer.flush(10)
    text = metrics()
    assert value(text, "headrace_transactions_committed_total") == 1
    assert value(text, "headrace_transactions_aborted_total") == 1
    assert value(text, "headrace_transactions_ongoing") == 1
    lag = 'headrace_last_stable_offset_lag{partition="0",topic="metered"}'
    assert value(text, lag) == 2  # the two open records
    producer.commit_transaction(30)
    assert read_values(bootstrap, "metered", 1, "read_committed", 3)  # markers are in
    assert value(metrics(), lag) == 0
