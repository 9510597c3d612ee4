"""Topic changes on a clustered broker whose etcd write fails or overlaps another change.

etcd is the source of truth: a creation etcd refused must not linger as a local-only topic (it
would shadow the name forever), a config change etcd refused must not change the local config,
and one name's background writes run in the order they were made. etcd refuses for real here:
it runs with a small ``--max-request-bytes``, and the writes carry a config value too large.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError as KafkaError_
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from kio.schema.errors import ErrorCode

from headrace.cluster.etcd_launcher import EtcdProcess
from headrace.cluster.model import KeySpace, TopicRecord
from headrace.cluster.node import ClusterNode, ClusterSettings
from headrace.cluster.topic_writes import TopicWrites
from headrace.core.broker import Broker
from headrace.core.errors import KafkaError
from headrace.core.topics import TopicSpec
from tests.support.brokers import in_process_broker
from tests.support.clients import confluent_admin
from tests.support.clusters import running_etcd
from tests.support.waiting import eventually_async

MAX_REQUEST_BYTES = 16 * 1024
#: A valid topic config (passed through to clients) whose value no etcd request here may carry.
TOO_LARGE = {"follower.replication.throttled.replicas": "0:1," * (MAX_REQUEST_BYTES // 3)}


@pytest.fixture
def strict_etcd(tmp_path: Path) -> Iterator[EtcdProcess]:
    limit = str(MAX_REQUEST_BYTES)
    with running_etcd(tmp_path / "etcd-data", "--max-request-bytes", limit) as etcd:
        yield etcd


@pytest.fixture
async def member(
    strict_etcd: EtcdProcess, tmp_path: Path
) -> AsyncIterator[tuple[Broker, ClusterNode]]:
    running = in_process_broker(tmp_path / "broker", cluster=ClusterSettings(
        strict_etcd.metadata_url, key_root=KeySpace("/races").root,
        default_replication_factor=1, offsets_topic_replication_factor=1))
    broker, node = running.broker, running.node
    assert node is not None
    async with running:
        me = broker.config.node_id
        await node.store.wait_until(lambda s: me in s.brokers, timeout=15)
        yield broker, node


def local_configs(node: ClusterNode, name: str) -> dict[str, str]:
    return dict(node.logs.topics()[name].configs)


async def test_a_creation_etcd_refused_leaves_no_local_topic(
    member: tuple[Broker, ClusterNode],
) -> None:
    broker, node = member
    broker.create_topic(TopicSpec("refused", 1, 1, TOO_LARGE))
    assert "refused" in node.logs.topics()  # answered at once, like Kafka's async creation
    await asyncio.wait_for(node.topic_manager.settled(), 20)

    assert "refused" not in node.store.snapshot().topics
    assert "refused" not in node.logs.topics(), "a creation etcd refused stayed local"
    assert broker.topics.get("refused") is None

    # The name is free again: a retry reaches the cluster and the local log matches it.
    created = broker.create_topic(TopicSpec("refused", 1, 1, {"retention.ms": "60000"}))
    await node.topic_manager.settled()
    snapshot = await node.store.wait_until(lambda s: "refused" in s.topics, timeout=15)
    assert snapshot.topics["refused"].topic_id == created.topic_id.hex
    # Local state follows the etcd watch.
    await eventually_async(lambda: "refused" in node.logs.topics(), timeout=15,
                           message="the local log")
    assert node.logs.topics()["refused"].topic_id == created.topic_id


async def test_a_config_change_etcd_refused_leaves_the_local_config(
    member: tuple[Broker, ClusterNode],
) -> None:
    broker, node = member
    broker.create_topic(TopicSpec("configured", 1, 1, {"retention.ms": "60000"}))
    await node.topic_manager.settled()
    await node.store.wait_until(lambda s: "configured" in s.topics, timeout=15)
    before = local_configs(node, "configured")

    broker.alter_configs("configured", {"retention.ms": "1000", **TOO_LARGE})
    assert local_configs(node, "configured") == before, "local config changed before etcd"
    with pytest.raises(KafkaError) as refused:  # what the request that made it is answered
        await asyncio.wait_for(broker.topics.committed("configured"), 20)
    assert refused.value.code == ErrorCode.request_timed_out
    await asyncio.wait_for(node.topic_manager.settled(), 20)
    assert local_configs(node, "configured") == before, "local config changed without etcd"
    assert dict(node.store.snapshot().topics["configured"].configs) == before

    # Back-to-back incremental changes both land (each applies to etcd's newest record), and
    # the local config follows etcd.
    broker.incremental_alter_configs("configured", [("retention.ms", 0, "1000")])
    broker.incremental_alter_configs("configured", [("segment.ms", 0, "3600000")])
    await node.topic_manager.settled()
    wanted = {"retention.ms": "1000", "segment.ms": "3600000"}
    await node.store.wait_until(
        lambda s: dict(s.topics["configured"].configs) == wanted, timeout=15
    )
    await eventually_async(lambda: local_configs(node, "configured") == wanted, timeout=15,
                           message="the local config")
    described = broker.describe_topic_configs("configured")
    assert described["retention.ms"] == ("1000", False)


async def test_topic_changes_are_answered_once_etcd_holds_them(
    member: tuple[Broker, ClusterNode],
) -> None:
    """Kafka answers AlterConfigs and CreateTopics once its controller has committed the
    change; a change etcd refused is an error for the client, not a success that silently
    never happens."""
    broker, node = member
    broker.create_topic(TopicSpec("answered", 1, 1))
    await node.topic_manager.settled()
    admin = confluent_admin(f"127.0.0.1:{broker.kafka_port}")

    def alter(client: AdminClient, configs: dict[str, str]) -> None:
        resource = ConfigResource("TOPIC", "answered", set_config=configs)
        client.alter_configs([resource], request_timeout=30)[resource].result(timeout=30)

    await asyncio.to_thread(alter, admin, {"retention.ms": "5000"})
    stored = await node.store.client.get(node.store.keys.topic("answered"))
    assert TopicRecord.from_json(stored.value).configs == {"retention.ms": "5000"}

    with pytest.raises(KafkaException) as refused:
        await asyncio.to_thread(alter, admin, {"retention.ms": "6000", **TOO_LARGE})
    code = refused.value.args[0].code()
    del refused
    assert code == KafkaError_.REQUEST_TIMED_OUT
    stored = await node.store.client.get(node.store.keys.topic("answered"))
    assert TopicRecord.from_json(stored.value).configs == {"retention.ms": "5000"}

    # CreateTopics too: a creation etcd refused is the client's error, not a topic that
    # exists for a moment and then vanishes; one it took is in etcd when the answer comes.
    def create(client: AdminClient, name: str, configs: dict[str, str]) -> None:
        client.create_topics([NewTopic(name, 1, 1, config=configs)],
                             request_timeout=30)[name].result(timeout=30)

    with pytest.raises(KafkaException) as refused:
        await asyncio.to_thread(create, admin, "refused-too", TOO_LARGE)
    code = refused.value.args[0].code()
    del refused
    assert code == KafkaError_.REQUEST_TIMED_OUT
    await asyncio.to_thread(create, admin, "taken", {})
    assert await node.store.client.get(node.store.keys.topic("taken")) is not None
    del admin  # the client goes before the broker does (else it logs reconnects)


async def test_writes_of_one_topic_run_in_order_and_keep_it_pending() -> None:
    writes = TopicWrites()
    release_first = asyncio.Event()
    log: list[Any] = []

    async def first() -> str:
        log.append("first started")
        await release_first.wait()
        return "first"

    async def second() -> str:
        log.append("second started")
        return "second"

    other_ran = asyncio.Event()

    async def other() -> str:
        other_ran.set()
        return "other"

    writes.submit("t", first, log.append)
    writes.submit("t", second, log.append)
    writes.submit("u", other, log.append)
    await asyncio.wait_for(other_ran.wait(), 5)
    # The other topic is not held up (its task started after the second write's would have);
    # the second write of "t" waits for the first.
    assert "second started" not in log
    assert writes.pending("t") and not writes.pending("u")
    release_first.set()
    await asyncio.wait_for(writes.settled(), 5)
    assert log.index("first") < log.index("second started") < log.index("second")
    assert not writes.pending("t")


async def test_a_failed_write_is_reported_and_does_not_block_the_next() -> None:
    writes = TopicWrites()
    outcomes: list[Any] = []

    async def failing() -> None:
        raise ConnectionError("etcd went away")

    async def succeeding() -> int:
        return 7

    writes.submit("t", failing, outcomes.append)
    writes.submit("t", succeeding, outcomes.append)
    await asyncio.wait_for(writes.settled(), 5)
    assert isinstance(outcomes[0], ConnectionError) and outcomes[1] == 7
    assert not writes.pending("t")
