"""Three real brokers on etcd, driven by confluent-kafka: metadata, replication, failover."""

from __future__ import annotations

import asyncio
import datetime
import json
import signal
import urllib.error
import urllib.request

from confluent_kafka import ElectionType, TopicPartition
from confluent_kafka.admin import NewPartitions
from kio.schema.errors import ErrorCode
from kio.schema.fetch.v12 import request as fetch_v12
from kio.schema.metadata.v12 import request as metadata_v12
from kio.schema.produce.v9 import request as produce_v9
from kio.schema.types import TopicName
from kio.static.primitive import i16, i32, i32Timedelta, i64

from headrace.cluster.devcluster import DevCluster
from headrace.cluster.model import ClusterSnapshot
from headrace.cluster.store import EtcdMetadataStore
from headrace.cluster.wire import BrokerConnection
from tests.support.clients import confluent_producer, create_topic
from tests.support.clusters import (
    ProducerLoad,
    admin,
    all_led,
    check_no_loss_no_duplicates,
    consume_partitions,
    partition_states,
)
from tests.support.waiting import eventually


def test_every_broker_reports_the_same_zone_aware_metadata(cluster: DevCluster) -> None:
    create_topic(cluster.bootstrap, "spread", 6, 3)
    eventually(lambda: all_led(cluster.bootstrap, "spread", 6), timeout=20, message="leaders",
               retry_on=(Exception,))
    views = [
        eventually(lambda b=b: partition_states(b.bootstrap, "spread"), timeout=10,
                   message="metadata", retry_on=(Exception,))
        for b in cluster.brokers
    ]
    eventually(
        lambda: len({str(sorted(partition_states(b.bootstrap, "spread").items()))
                     for b in cluster.brokers}) == 1,
        timeout=10, message="identical metadata on every broker", retry_on=(Exception,),
    )
    zone_of = {b.broker_id: b.zone for b in cluster.brokers}
    for leader, replicas, isr in views[0].values():
        assert len({zone_of[r] for r in replicas}) == 3  # one replica per zone
        assert sorted(isr) == sorted(replicas)
        assert leader in isr
    leaders = sorted(leader for leader, _, _ in views[0].values())
    assert leaders == [1, 1, 2, 2, 3, 3]  # balanced preferred leaders
    client = admin(cluster.bootstrap)
    description = client.describe_cluster(request_timeout=10).result(10)
    assert {node.id: node.rack for node in description.nodes} == zone_of
    assert description.controller.id in zone_of
    # Growing and deleting a topic through any broker reaches every broker.
    client.create_partitions([NewPartitions("spread", 8)])["spread"].result(20)
    for broker in cluster.brokers:
        eventually(lambda b=broker: all_led(b.bootstrap, "spread", 8), timeout=20,
                   message="8 led partitions", retry_on=(Exception,))
    client.delete_topics(["spread"])["spread"].result(20)
    for broker in cluster.brokers:
        eventually(
            lambda b=broker: "spread" not in admin(b.bootstrap).list_topics(timeout=5).topics,
            timeout=20, message="the topic gone everywhere", retry_on=(Exception,),
        )


def test_acks_all_records_survive_leader_crash_and_restart(cluster: DevCluster) -> None:
    create_topic(cluster.bootstrap, "orders", 3, 3)
    eventually(lambda: all_led(cluster.bootstrap, "orders", 3), timeout=20, message="leaders",
               retry_on=(Exception,))
    load = ProducerLoad(cluster.bootstrap, "orders", 3).start()
    try:
        eventually(lambda: load.acked_count() > 300, timeout=30, message="first acks",
                   retry_on=(Exception,))
        leader, _, _ = partition_states(cluster.bootstrap, "orders")[0]
        victim = cluster.broker(leader)
        victim.kill()
        survivors = ",".join(b.bootstrap for b in cluster.brokers if b.broker_id != leader)
        eventually(lambda: partition_states(survivors, "orders")[0][0] not in (-1, leader),
                   timeout=20, message="a new leader for partition 0", retry_on=(Exception,))
        before = load.acked_count()
        eventually(lambda: load.acked_count() > before + 300, timeout=30,
                   message="acks after failover", retry_on=(Exception,))
        victim.start()
        eventually(
            lambda: all(
                leader in isr for _, _, isr in partition_states(survivors, "orders").values()
            ),
            timeout=30, message="the restarted broker back in every ISR", retry_on=(Exception,),
        )
    finally:
        load.stop()
    assert not load.errors, load.errors[:5]
    total = len(load.acked)
    seen = consume_partitions(
        cluster.bootstrap, "orders", 3, lambda s: sum(map(len, s.values())) >= total, 60
    )
    check_no_loss_no_duplicates(load.acked, seen)
    assert sum(map(len, seen.values())) == total


def test_controlled_shutdown_moves_leadership_before_exit(cluster: DevCluster) -> None:
    create_topic(cluster.bootstrap, "graceful", 3, 3)
    eventually(lambda: all_led(cluster.bootstrap, "graceful", 3), timeout=20, message="leaders",
               retry_on=(Exception,))
    leader, _, _ = partition_states(cluster.bootstrap, "graceful")[0]
    leaving = cluster.broker(leader)
    leaving.signal(signal.SIGTERM)
    assert leaving.stop(timeout=30) == 0
    others = ",".join(b.bootstrap for b in cluster.brokers if b.broker_id != leader)
    # Leadership had already moved when the process exited: no election wait needed now.
    states = partition_states(others, "graceful")
    assert all(state[0] not in (-1, leader) for state in states.values()), states
    producer = confluent_producer(others, {"acks": "all", "message.timeout.ms": 10000})
    delivered: list[object] = []
    producer.produce(
        "graceful", b"after", partition=0, on_delivery=lambda e, m: delivered.append(e)
    )
    producer.flush(15)
    assert delivered == [None]


def test_min_insync_replicas_is_enforced_when_a_follower_stalls(cluster: DevCluster) -> None:
    create_topic(cluster.bootstrap, "strict", 1, 3, {"min.insync.replicas": "3"})
    eventually(lambda: all_led(cluster.bootstrap, "strict", 1), timeout=20, message="leader",
               retry_on=(Exception,))
    leader, replicas, _ = partition_states(cluster.bootstrap, "strict")[0]
    follower = cluster.broker(next(r for r in replicas if r != leader))
    leader_bootstrap = cluster.broker(leader).bootstrap

    def produce_one() -> object:
        producer = confluent_producer(leader_bootstrap, {"acks": "all", "retries": 0,
                                                         "message.timeout.ms": 8000})
        outcome: list[object] = []
        producer.produce("strict", b"x", partition=0, on_delivery=lambda e, m: outcome.append(e))
        producer.flush(10)
        return outcome[0] if outcome else "no outcome"

    assert produce_one() is None
    follower.pause()
    try:
        eventually(
            lambda: follower.broker_id not in partition_states(leader_bootstrap, "strict")[0][2],
            timeout=30, message="the stalled follower out of the ISR", retry_on=(Exception,),
        )
        error = produce_one()
        assert error is not None
        assert error.name() == "NOT_ENOUGH_REPLICAS", error  # type: ignore[attr-defined]
    finally:
        follower.resume()
    eventually(
        lambda: follower.broker_id in partition_states(leader_bootstrap, "strict")[0][2],
        timeout=30, message="the follower back in the ISR", retry_on=(Exception,),
    )
    assert produce_one() is None


async def test_wiped_broker_rejoins_only_after_catching_up(cluster: DevCluster) -> None:
    await asyncio.to_thread(create_topic, cluster.bootstrap, "wiped", 1, 3)
    await asyncio.to_thread(
        eventually, lambda: all_led(cluster.bootstrap, "wiped", 1), timeout=20, message="leader",
        retry_on=(Exception,),
    )

    def produce() -> None:
        producer = confluent_producer(cluster.bootstrap, {"acks": "all",
                                                          "enable.idempotence": True})
        for index in range(2000):
            producer.produce("wiped", b"%06d" % index, partition=0)
            if index % 500 == 0:
                producer.poll(0)
        assert producer.flush(30) == 0

    await asyncio.to_thread(produce)
    # Follow every ISR change of the partition through etcd's watch (no polling races).
    history: list[tuple[int, ...]] = []
    store = EtcdMetadataStore([("127.0.0.1", cluster.etcd.client_port)])
    await store.start()

    def record(snapshot: ClusterSnapshot) -> None:
        state = snapshot.partitions.get(("wiped", 0))
        if state is not None and (not history or history[-1] != state.isr):
            history.append(state.isr)

    store.add_listener(record)
    try:
        leader, replicas, _ = partition_states(cluster.bootstrap, "wiped")[0]
        victim = cluster.broker(next(r for r in replicas if r != leader))
        victim.kill()
        victim.wipe()
        await asyncio.to_thread(victim.start)
        # The controller notices the new disk and drops the broker from the ISR even though
        # its old incarnation was in sync; the leader re-admits it once it copied the log.
        await store.wait_until(
            lambda _s: any(victim.broker_id not in isr for isr in history)
            and victim.broker_id in history[-1],
            timeout=60,
        )
    finally:
        await store.close()
    # Now make it the only live replica: it must serve everything, so it really copied the log.
    for other in cluster.brokers:
        if other is not victim:
            other.kill()
    await asyncio.to_thread(
        eventually,
        lambda: partition_states(victim.bootstrap, "wiped")[0][0] == victim.broker_id,
        timeout=30, message="the re-replicated broker leading", retry_on=(Exception,),
    )
    seen = await asyncio.to_thread(
        consume_partitions, victim.bootstrap, "wiped", 1, lambda s: len(s[0]) >= 2000, 30
    )
    assert [value for _, value in seen[0]] == [b"%06d" % i for i in range(2000)]


async def test_followers_refuse_produce_and_stale_epochs_are_fenced(cluster: DevCluster) -> None:
    create_topic(cluster.bootstrap, "routing", 1, 3)
    eventually(lambda: all_led(cluster.bootstrap, "routing", 1), timeout=20, message="leader",
               retry_on=(Exception,))
    leader_id, replicas, _ = partition_states(cluster.bootstrap, "routing")[0]
    follower = cluster.broker(next(r for r in replicas if r != leader_id))
    leader = cluster.broker(leader_id)
    produce = produce_v9.ProduceRequest(
        transactional_id=None,
        acks=i16(-1),
        timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)),
        topic_data=(
            produce_v9.TopicProduceData(
                name=TopicName("routing"),
                partition_data=(produce_v9.PartitionProduceData(index=i32(0), records=b"x"),),
            ),
        ),
    )
    connection = BrokerConnection("127.0.0.1", follower.kafka_port, client_id="test")
    try:
        response = await connection.request(produce)
    finally:
        await connection.close()
    answer = response.responses[0].partition_responses[0]
    assert answer.error_code == ErrorCode.not_leader_or_follower
    # Controlled shutdown of the leader bumps the epoch; requests naming the old epoch are
    # fenced, ones naming a future epoch are told the leader does not know it yet.
    assert leader.stop(timeout=30) == 0
    others = ",".join(b.bootstrap for b in cluster.brokers if b is not leader)
    eventually(lambda: partition_states(others, "routing")[0][0] not in (-1, leader_id),
               timeout=20, message="new leader", retry_on=(Exception,))
    new_leader = cluster.broker(partition_states(others, "routing")[0][0])
    epoch = await _leader_epoch(new_leader.kafka_port, "routing")
    assert epoch >= 1
    codes = [await _fetch_error(new_leader.kafka_port, "routing", e)
             for e in (epoch - 1, epoch, epoch + 1)]
    assert codes == [
        ErrorCode.fenced_leader_epoch, ErrorCode.none, ErrorCode.unknown_leader_epoch
    ]


async def _leader_epoch(port: int, topic: str) -> int:
    connection = BrokerConnection("127.0.0.1", port, client_id="test")
    try:
        response = await connection.request(
            metadata_v12.MetadataRequest(
                topics=(metadata_v12.MetadataRequestTopic(topic_id=None, name=TopicName(topic)),),
                allow_auto_topic_creation=False,
                include_topic_authorized_operations=False,
            )
        )
    finally:
        await connection.close()
    return int(response.topics[0].partitions[0].leader_epoch)


async def _fetch_error(port: int, topic: str, leader_epoch: int) -> ErrorCode:
    fetch = fetch_v12.FetchRequest(
        max_wait=i32Timedelta.parse(datetime.timedelta(milliseconds=10)),
        min_bytes=i32(1),
        topics=(
            fetch_v12.FetchTopic(
                topic=TopicName(topic),
                partitions=(
                    fetch_v12.FetchPartition(
                        partition=i32(0),
                        current_leader_epoch=i32(leader_epoch),
                        fetch_offset=i64(0),
                        partition_max_bytes=i32(1024),
                    ),
                ),
            ),
        ),
        forgotten_topics_data=(),
    )
    connection = BrokerConnection("127.0.0.1", port, client_id="test")
    try:
        fetched = await connection.request(fetch)
    finally:
        await connection.close()
    code: ErrorCode = fetched.responses[0].partitions[0].error_code
    return code


def test_preferred_leader_election_restores_balance_and_readyz(cluster: DevCluster) -> None:
    create_topic(cluster.bootstrap, "balance", 3, 3)
    eventually(lambda: all_led(cluster.bootstrap, "balance", 3), timeout=20, message="leaders",
               retry_on=(Exception,))
    preferred = {p: replicas[0] for p, (_, replicas, _) in
                 partition_states(cluster.bootstrap, "balance").items()}
    moved = next(p for p, leader in preferred.items() if leader == 1)
    cluster.broker(1).stop()
    cluster.broker(1).start()
    eventually(
        lambda: all(
            1 in isr for _, _, isr in partition_states(cluster.bootstrap, "balance").values()
        ),
        timeout=30, message="broker 1 back in every ISR", retry_on=(Exception,),
    )
    assert partition_states(cluster.bootstrap, "balance")[moved][0] != 1  # not automatic

    def replication_ready(port: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:  # 503 while catching up
            body = json.loads(error.read())
        return body["checks"].get("replication") is True

    for broker in cluster.brokers:  # the restarted broker once it has caught up everywhere
        eventually(lambda b=broker: replication_ready(b.http_port), timeout=30,
                   message="/readyz replication", retry_on=(Exception,))
    client = admin(cluster.bootstrap)
    future = client.elect_leaders(
        ElectionType.PREFERRED, [TopicPartition("balance", p) for p in range(3)]
    )
    results = future.result(20)
    assert results[TopicPartition("balance", moved)] is None  # elected
    eventually(
        lambda: {p: state[0] for p, state in
                 partition_states(cluster.bootstrap, "balance").items()} == preferred,
        timeout=20, message="preferred leaders back", retry_on=(Exception,),
    )
