"""franz-go and IBM/sarama, the two main Go Kafka clients, against a real Headrace broker.

Each scenario is a Go program of tests/peers/go (built by tests/tools/install.d/go-clients.sh) that
prints one JSON line; these tests assert on it and cross-check the broker with confluent-kafka:

- produce: keyed records with acks=all and the idempotent producer, read back from every partition;
- group: two members of one group share a 4-partition topic, read everything and commit;
- admin: create (twice), describe, list offsets, list and describe a group, delete a topic.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.clients.conftest import BrokerProcess
from tests.peers.go_clients import CLIENTS, go_clients_missing_reason, run_scenario

_MISSING = go_clients_missing_reason()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")

PRODUCE_RECORDS = 60
GROUP_PARTITIONS = 4
GROUP_RECORDS = 40
ADMIN_RECORDS = 5


def unique(client: str, what: str) -> str:
    return f"go-{client}-{what}-{uuid.uuid4().hex[:8]}"


def by_partition(records: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        grouped[record["partition"]].append(record)
    return dict(grouped)


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets as the broker answers OffsetFetch to another client."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=10)}
    finally:
        consumer.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_produce_keyed_records_and_read_them_back(broker: BrokerProcess, client: str) -> None:
    topic = unique(client, "produce")
    result = run_scenario(
        client, broker.bootstrap, "produce", topic=topic, records=PRODUCE_RECORDS
    )
    produced, consumed = result["produced"], result["consumed"]
    assert result["acks"] == "all"
    assert result["idempotent"] is True  # sarama: InitProducerId succeeded, or it cannot produce
    assert len(produced) == PRODUCE_RECORDS
    assert [r["value"] for r in produced] == [f"value-{i}" for i in range(PRODUCE_RECORDS)]

    # A key always lands on one partition, and the ten keys spread over several.
    partition_of_key: dict[str, set[int]] = defaultdict(set)
    for record in produced:
        partition_of_key[record["key"]].add(record["partition"])
    assert all(len(ps) == 1 for ps in partition_of_key.values()), partition_of_key
    assert len(partition_of_key) == 10
    assert len({r["partition"] for r in produced}) >= 2
    assert {r["partition"] for r in produced} <= set(range(result["partitions"]))

    # Per partition the acknowledged offsets are 0, 1, 2, ... in the order the records were sent.
    for partition, records in by_partition(produced).items():
        assert [r["offset"] for r in records] == list(range(len(records))), partition

    # Read back: the same records, each partition in offset order, none twice.
    assert len(consumed) == PRODUCE_RECORDS
    key = lambda r: (r["partition"], r["offset"])  # noqa: E731
    assert sorted(consumed, key=key) == sorted(produced, key=key)
    for partition, records in by_partition(consumed).items():
        assert [r["offset"] for r in records] == list(range(len(records))), partition

    if client == "franz-go":
        # Every batch read back carries the one producer id the idempotent producer was given.
        assert len(result["producer_ids"]) == 1
        assert result["producer_ids"][0] >= 0


@pytest.mark.parametrize("client", CLIENTS)
def test_two_group_members_share_partitions_and_commit(broker: BrokerProcess, client: str) -> None:
    topic, group = unique(client, "group"), unique(client, "group-id")
    result = run_scenario(
        client, broker.bootstrap, "group", topic=topic, group=group, records=GROUP_RECORDS
    )
    members = result["members"]
    assert len(members) == 2
    assigned = [set(m["assigned"]) for m in members]
    assert all(assigned), assigned
    assert assigned[0].isdisjoint(assigned[1])
    assert assigned[0] | assigned[1] == set(range(GROUP_PARTITIONS))

    # Each member read exactly its own partitions, everything on them (records round-robin).
    per_partition = GROUP_RECORDS // GROUP_PARTITIONS
    for member, partitions in zip(members, assigned, strict=True):
        consumed = {int(p): n for p, n in member["consumed"].items()}
        assert consumed == dict.fromkeys(partitions, per_partition)
    assert result["consumed"] == GROUP_RECORDS

    expected = dict.fromkeys(range(GROUP_PARTITIONS), per_partition)
    assert {int(p): o for p, o in result["end_offsets"].items()} == expected
    assert {int(p): o for p, o in result["committed"].items()} == expected
    # The commits are the broker's, not the client's memory: another client fetches them.
    assert committed_offsets(broker.bootstrap, group, topic, GROUP_PARTITIONS) == expected

    # Both members left the group when the program closed them.
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    deadline = time.monotonic() + 15
    while True:
        description = admin.describe_consumer_groups([group])[group].result(10)
        if not description.members or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert description.members == []
    assert str(description.state).endswith("EMPTY")


@pytest.mark.parametrize("client", CLIENTS)
def test_admin_topics_offsets_and_groups(broker: BrokerProcess, client: str) -> None:
    topic, group = unique(client, "admin"), unique(client, "admin-group")
    result = run_scenario(
        client, broker.bootstrap, "admin", topic=topic, group=group, records=ADMIN_RECORDS
    )
    assert result["created_error"] == ""
    assert "already exists" in result["create_again_error"].lower()

    assert result["partitions"] == 3
    leaders = {int(p): leader for p, leader in result["leaders"].items()}
    assert set(leaders) == {0, 1, 2}
    assert len(set(leaders.values())) == 1 and min(leaders.values()) >= 0  # the one broker
    assert {int(p): r for p, r in result["replicas"].items()} == {
        p: [leader] for p, leader in leaders.items()
    }

    assert {int(p): o for p, o in result["offsets"].items()} == {
        0: {"earliest": 0, "latest": ADMIN_RECORDS},
        1: {"earliest": 0, "latest": 0},
        2: {"earliest": 0, "latest": 0},
    }

    assert group in result["listed_groups"]
    described = result["described_group"]
    assert described["state"] == "Stable"
    assert described["protocol_type"] == "consumer"
    assert described["protocol"] == ("cooperative-sticky" if client == "franz-go" else "range")
    assert described["members"] == 1
    assert described["assigned"] == [0, 1, 2]

    assert result["deleted_error"] == ""
    assert result["gone_after_delete"] is True
    assert result["describe_gone_error"] != ""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert topic not in admin.list_topics(timeout=10).topics
