"""The Java client (kafka-clients, at the version of the Kafka tools' peer) against a real
``headrace broker``: the scenario program of tests/peers/java (one JVM per scenario, a few
seconds each), its JSON result asserted here and cross-checked with confluent-kafka.

- idempotent produce: every record acknowledged once, offsets dense per partition;
- transactional produce: committed, aborted, committed transactions seen as read_committed and
  read_uncommitted consumers must; a consume-transform-produce transaction commits its group's
  offsets with its output (AddOffsetsToTxn, TxnOffsetCommit);
- a hanging transaction listed, described and aborted at its partition by the Admin client, as
  ``kafka-transactions.sh`` does (ListTransactions, DescribeTransactions, DescribeProducers,
  WriteTxnMarkers);
- two members of a group with the classic protocol's cooperative-sticky assignor and with KIP-848's
  ``group.protocol=consumer``: the second member's join moves partitions incrementally;
- the Admin client over topics, configs, offsets, records and consumer groups.

The fixture builds the program when missing (tests/tools/install.d/java-client.sh) or skips with
the reason. About 4 s a scenario (a JVM each), so not marked slow.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from tests.clients.conftest import BrokerProcess
from tests.peers.java_client import ensure_java_client, run_scenario

GROUP_PARTITIONS = 4
GROUP_RECORDS = 40


@pytest.fixture(scope="module", autouse=True)
def java_client() -> Iterator[None]:
    reason = ensure_java_client()
    if reason is not None:
        pytest.skip(reason)
    yield


def unique(what: str) -> str:
    return f"java-{what}-{uuid.uuid4().hex[:8]}"


def create_topics(broker: BrokerProcess, **partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, count, 1) for name, count in partitions.items()], operation_timeout=10
    )
    for future in futures.values():
        future.result(timeout=15)


def committed(broker: BrokerProcess, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=10)}
    finally:
        consumer.close()


def test_idempotent_producer_acknowledges_each_record_once(broker: BrokerProcess) -> None:
    topic = unique("idempotent")
    create_topics(broker, **{topic: 3})
    result = run_scenario("idempotent", broker.bootstrap, topic=topic, records=60)
    acknowledged: dict[str, list[int]] = result["acknowledged"]
    assert sum(len(offsets) for offsets in acknowledged.values()) == 60
    for offsets in acknowledged.values():
        assert sorted(offsets) == list(range(len(offsets)))  # dense, none written twice
    assert result["partitions"] == 3
    assert sorted(result["values"]) == sorted(f"value-{index}" for index in range(60))


def test_transactions_commit_abort_and_send_offsets(broker: BrokerProcess) -> None:
    topic, group = unique("txn"), unique("txn-group")
    create_topics(broker, **{topic: 1, f"{topic}-out": 1})
    result = run_scenario("transactional", broker.bootstrap, topic=topic, group=group)
    committed_values = [*(f"committed-{i}" for i in range(3)),
                        *(f"committed-again-{i}" for i in range(2))]
    assert result["read_committed"] == committed_values
    assert result["read_uncommitted"] == [*committed_values[:3], "aborted-0", "aborted-1",
                                          *committed_values[3:]]
    assert result["transformed"] == [value.upper() for value in committed_values]
    # Three transactions of 3, 2 and 2 records, each followed by its commit/abort marker: the
    # last committed record is at offset 8; the group's offset, committed with the output
    # transaction, is the one after it.
    assert result["group_offsets"] == {f"{topic}-0": 9}
    assert committed(broker, group, topic, 1) == {0: 9}


def test_admin_lists_describes_and_aborts_a_hanging_transaction(broker: BrokerProcess) -> None:
    topic, group = unique("hanging"), unique("hanging-group")
    create_topics(broker, **{topic: 1})
    result = run_scenario("transaction-admin", broker.bootstrap, topic=topic, group=group)
    assert result["stable_end_before"] == 0  # read_committed stops at the open transaction
    assert result["listed_state"] == "Ongoing"
    assert result["described_state"] == "Ongoing"
    assert result["described_partitions"] == [f"{topic}-0"]
    assert result["transaction_start_offset"] == 0
    assert result["last_sequence"] == 2
    # The abort marker at offset 3 ends it: the stable end passes it, nothing is readable.
    assert result["stable_end_after"] == 4
    assert result["transaction_start_offset_after"] == -1
    assert result["read_committed"] == []


def assert_incremental_split(result: dict[str, Any]) -> None:
    first, second = result["first"], result["second"]
    assert set(first["owned"]) | set(second["owned"]) == set(range(GROUP_PARTITIONS))
    assert not set(first["owned"]) & set(second["owned"])
    assert len(first["owned"]) == len(second["owned"]) == GROUP_PARTITIONS // 2
    # Incremental: the first member gave up exactly what moved, kept the rest throughout.
    assert sorted(first["revoked"]) == sorted(second["owned"])
    assert first["lost"] == second["lost"] == second["revoked"] == []
    assert result["read"] == GROUP_RECORDS
    assert result["read_by_first"] > 0 and result["read_by_second"] > 0


def test_classic_group_with_the_cooperative_sticky_assignor(broker: BrokerProcess) -> None:
    topic, group = unique("cooperative"), unique("cooperative-group")
    create_topics(broker, **{topic: GROUP_PARTITIONS})
    result = run_scenario("group-classic", broker.bootstrap, topic=topic, group=group,
                          records=GROUP_RECORDS)
    assert_incremental_split(result)
    described = result["group"]
    assert described["type"] == "Classic"
    assert described["state"] == "Stable"
    assert described["assignor"] == "cooperative-sticky"
    assert len(described["members"]) == 2
    offsets = committed(broker, group, topic, GROUP_PARTITIONS)
    assert sum(offsets.values()) == GROUP_RECORDS


def test_consumer_group_protocol_kip848(broker: BrokerProcess) -> None:
    topic, group = unique("kip848"), unique("kip848-group")
    create_topics(broker, **{topic: GROUP_PARTITIONS})
    result = run_scenario("group-consumer", broker.bootstrap, topic=topic, group=group,
                          records=GROUP_RECORDS)
    assert_incremental_split(result)
    described = result["group"]
    assert described["type"] == "Consumer"
    assert described["state"] == "Stable"
    assert described["assignor"] == "uniform"
    members = described["members"]
    assert sorted(len(member["assignment"]) for member in members) == [2, 2]
    assert all(member["classic"] is False for member in members)
    offsets = committed(broker, group, topic, GROUP_PARTITIONS)
    assert sum(offsets.values()) == GROUP_RECORDS


def test_online_migration_of_a_classic_group_to_consumer_and_back(broker: BrokerProcess) -> None:
    """KIP-848's online migration: a classic (cooperative-sticky) member holds the group, a
    ``group.protocol=consumer`` member joins it (the group becomes a consumer group, the classic
    member stays and gives up half incrementally), leaves (the group is classic again)."""
    topic, group = unique("migration"), unique("migration-group")
    create_topics(broker, **{topic: GROUP_PARTITIONS})
    result = run_scenario("migration", broker.bootstrap, topic=topic, group=group,
                          records=GROUP_RECORDS)
    before = result["before"]
    assert before["type"] == "Classic" and before["state"] == "Stable"
    joined = result["joined"]
    assert joined["type"] == "Consumer"
    members = sorted(joined["members"], key=lambda member: member["classic"])
    assert [member["classic"] for member in members] == [False, True]
    assert all(len(member["assignment"]) == GROUP_PARTITIONS // 2 for member in members)
    classic, modern = result["classic_member"], result["consumer_member"]
    assert set(classic["owned"]) | set(modern["owned"]) == set(range(GROUP_PARTITIONS))
    # The classic member gave up exactly what moved to the consumer-protocol member.
    assert sorted(classic["revoked"]) == sorted(modern["owned"])
    assert classic["lost"] == modern["lost"] == []
    assert result["read"] == GROUP_RECORDS
    left = result["left"]
    assert left["type"] == "Classic"
    (member,) = left["members"]
    assert member["assignment"] == list(range(GROUP_PARTITIONS))
    offsets = committed(broker, group, topic, GROUP_PARTITIONS)
    assert sum(offsets.values()) == GROUP_RECORDS


def test_admin_topics_configs_offsets_records_and_groups(broker: BrokerProcess) -> None:
    topic, group = unique("admin"), unique("admin-group")
    result = run_scenario("admin", broker.bootstrap, topic=topic, group=group)
    assert result["cluster_id"]
    assert result["nodes"]
    assert result["create_again"] == "TopicExistsException"
    topics = result["topics"]
    assert topics[f"{topic}-a"]["partitions"] == 3
    assert topics[f"{topic}-b"]["partitions"] == 1
    assert all(one["topic_id"] != "AAAAAAAAAAAAAAAAAAAAAA" for one in topics.values())
    assert all(leader in result["nodes"] for one in topics.values() for leader in one["leaders"])
    # Described again two partitions an answer: the client follows DescribeTopicPartitions'
    # cursor and gets every partition once.
    assert result["paged_partitions"] == {f"{topic}-a": [0, 1, 2], f"{topic}-b": [0]}
    assert result["retention_before"] == "3600000 (DYNAMIC_TOPIC_CONFIG)"
    assert result["cleanup_after"] == "compact (DYNAMIC_TOPIC_CONFIG)"
    assert result["retention_after"] == "604800000 (DEFAULT_CONFIG)"
    assert result["broker_config_entries"] > 0
    assert result["b_partitions"] == 2
    assert result["offsets"] == {
        "earliest": 0, "latest": 10, "max_timestamp": 9, "for_timestamp": 3,
    }
    assert result["low_watermark"] == 4
    assert result["earliest_after_delete"] == 4
    described = result["group"]
    assert described["type"] == "Classic" and described["state"] == "Stable"
    (member,) = described["members"]
    assert member["assignment"] == [0, 1]
    assert result["listed"] is True
    assert result["committed"] == {f"{topic}-b-0": 10, f"{topic}-b-1": 0} or result[
        "committed"
    ] == {f"{topic}-b-0": 10}
    assert result["committed_after_alter"][f"{topic}-b-0"] == 5
    assert f"{topic}-b-0" not in result["committed_after_delete"]
    assert result["listed_after_delete"] is False
    assert result["deleted"] is True
