"""Transactions on a three-broker etcd cluster: the coordinator and the partition leaders on
different brokers, so markers travel as WriteTxnMarkers and verification as AddPartitionsToTxn
v4 between brokers; then the coordinator's broker is killed with -9 mid-transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from headrace.cluster.devcluster import DevCluster
from headrace.groups.partitioning import offsets_partition_for
from tests.support.clients import create_topic
from tests.support.clusters import FAST_FLAGS, all_led, partition_states
from tests.support.waiting import eventually
from tests.transactions.txn_clients import (
    produce_transaction,
    read_values,
    transactional_producer,
)

TXN_PARTITIONS = 3
TOPIC_PARTITIONS = 6


@pytest.fixture
def txn_cluster(tmp_path: Path) -> Iterator[DevCluster]:
    cluster = DevCluster(tmp_path / "cluster", 3, extra_args=(
        *FAST_FLAGS, "--transaction-state-log-num-partitions", str(TXN_PARTITIONS),
    ))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.kill()


def _coordinator(bootstrap: str, transactional_id: str) -> int:
    partition = offsets_partition_for(transactional_id, TXN_PARTITIONS)
    leader: int = partition_states(bootstrap, "__transaction_state")[partition][0]
    return leader


def test_commit_and_abort_with_coordinator_and_leaders_on_different_brokers(
    txn_cluster: DevCluster,
) -> None:
    bootstrap = txn_cluster.bootstrap
    create_topic(bootstrap, "spread", TOPIC_PARTITIONS, replication=3)
    eventually(lambda: all_led(bootstrap, "spread", TOPIC_PARTITIONS)
               and all_led(bootstrap, "__transaction_state", TXN_PARTITIONS),
               timeout=60, retry_on=(Exception,), message="leaders for spread and txn state")
    producer = transactional_producer(bootstrap, "spread-writer")
    coordinator = _coordinator(bootstrap, "spread-writer")
    leaders = {leader for leader, _, _ in partition_states(bootstrap, "spread").values()}
    assert leaders - {coordinator}, "every partition led by the coordinator's broker"
    committed = [b"c-%d" % i for i in range(60)]
    aborted = [b"a-%d" % i for i in range(60)]
    produce_transaction(producer, "spread", committed, commit=True)
    produce_transaction(producer, "spread", aborted, commit=False)
    seen = read_values(bootstrap, "spread", TOPIC_PARTITIONS, "read_committed", 60)
    assert sorted(seen) == sorted(committed)
    everything = read_values(bootstrap, "spread", TOPIC_PARTITIONS, "read_uncommitted", 120)
    assert sorted(everything) == sorted(committed + aborted)


def test_coordinator_broker_killed_mid_transaction_fails_over(txn_cluster: DevCluster) -> None:
    bootstrap = txn_cluster.bootstrap
    create_topic(bootstrap, "failover", 3, replication=3)
    eventually(lambda: all_led(bootstrap, "failover", 3)
               and all_led(bootstrap, "__transaction_state", TXN_PARTITIONS),
               timeout=60, retry_on=(Exception,), message="leaders")
    producer = transactional_producer(bootstrap, "failover-writer")
    produce_transaction(producer, "failover", [b"first-%d" % i for i in range(30)], commit=True)
    producer.begin_transaction()
    for index in range(30):
        producer.produce("failover", value=b"open-%d" % index)
    producer.flush(30)
    coordinator = _coordinator(bootstrap, "failover-writer")
    txn_cluster.broker(coordinator).kill()  # kill -9 of the coordinator's broker
    survivors = ",".join(b.bootstrap for b in txn_cluster.brokers if b.broker_id != coordinator)
    eventually(lambda: _coordinator(survivors, "failover-writer") not in (-1, coordinator),
               timeout=60, retry_on=(Exception,), message="a new transaction coordinator")
    # A new incarnation fences the old one; the new coordinator aborts the open transaction.
    again = transactional_producer(survivors, "failover-writer")
    produce_transaction(again, "failover", [b"second-%d" % i for i in range(30)], commit=True)
    expected = [b"first-%d" % i for i in range(30)] + [b"second-%d" % i for i in range(30)]
    seen = read_values(survivors, "failover", 3, "read_committed", len(expected), settle=2.0,
                       timeout=60)
    assert sorted(seen) == sorted(expected)
