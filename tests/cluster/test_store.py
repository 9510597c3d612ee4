"""The etcd metadata store against a real etcd: sessions, election, fencing, watches."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

import pytest

from headrace.cluster.controller import Controller
from headrace.cluster.etcd_launcher import EtcdProcess
from headrace.cluster.model import BrokerRegistration, KeySpace, PartitionState, TopicRecord
from headrace.cluster.store import (
    BrokerIdConflictError,
    EtcdMetadataStore,
    EtcdUnavailableError,
)
from tests.support.brokers import in_process_broker
from tests.support.clusters import StoreFactory
from tests.support.waiting import eventually_async


def registration(broker_id: int, log_dir: str | None = None, rack: str = "a") -> BrokerRegistration:
    return BrokerRegistration(
        broker_id=broker_id,
        host="127.0.0.1",
        port=10000 + broker_id,
        rack=rack,
        log_dir_id=log_dir or uuid.uuid4().hex,
        incarnation=uuid.uuid4().hex,
    )


async def test_registration_is_visible_to_other_brokers(make_store: StoreFactory) -> None:
    first, second = await make_store(), await make_store()
    one = await first.register(registration(1, rack="a"))
    two = await second.register(registration(2, rack="b"))
    assert 0 < one.broker_epoch < two.broker_epoch
    snap = await first.wait_until(lambda s: set(s.brokers) == {1, 2}, timeout=10)
    assert snap.brokers[2].rack == "b"
    assert snap.brokers[2].broker_epoch == two.broker_epoch


async def test_duplicate_broker_id_with_another_disk_is_refused(make_store: StoreFactory) -> None:
    first, second = await make_store(lease_ttl=1), await make_store(lease_ttl=1)
    await first.register(registration(1, log_dir="disk-a"))
    with pytest.raises(BrokerIdConflictError):
        await second.register(registration(1, log_dir="disk-b"))


async def test_restart_with_same_disk_replaces_previous_incarnation(
    make_store: StoreFactory,
) -> None:
    old, new = await make_store(lease_ttl=30), await make_store(lease_ttl=30)
    before = await old.register(registration(1, log_dir="disk-a"))
    after = await new.register(registration(1, log_dir="disk-a"))
    assert after.broker_epoch > before.broker_epoch
    snap = await new.wait_until(
        lambda s: 1 in s.brokers and s.brokers[1].broker_epoch == after.broker_epoch, timeout=10
    )
    assert snap.brokers[1].incarnation == after.incarnation


async def test_lease_expiry_removes_the_broker(make_store: StoreFactory) -> None:
    watcher, dying = await make_store(), await make_store(lease_ttl=1)
    await dying.register(registration(7))
    await watcher.wait_until(lambda s: 7 in s.brokers, timeout=10)
    # Stop keeping the lease alive, as a SIGKILLed broker would.
    assert dying._keepalive_task is not None
    dying._keepalive_task.cancel()
    await watcher.wait_until(lambda s: 7 not in s.brokers, timeout=15)


async def test_exactly_one_controller_and_epochs_increase(make_store: StoreFactory) -> None:
    stores = [await make_store() for _ in range(3)]
    for broker_id, store in enumerate(stores, start=1):
        await store.register(registration(broker_id))
    records = await asyncio.gather(*(s.campaign(i) for i, s in enumerate(stores, start=1)))
    winners = [r for r in records if r is not None]
    assert len(winners) == 1
    winner = winners[0]
    snap = await stores[0].wait_until(lambda s: s.controller == winner, timeout=10)
    assert snap.controller is not None
    # The winner resigns: the next controller gets a strictly larger epoch.
    await stores[winner.broker_id - 1].resign(winner)
    loser_id = next(i for i in (1, 2, 3) if i != winner.broker_id)
    await stores[loser_id - 1].wait_until(lambda s: s.controller is None, timeout=10)
    second = await stores[loser_id - 1].campaign(loser_id)
    assert second is not None and second.epoch == winner.epoch + 1


async def test_deposed_controller_writes_are_fenced(make_store: StoreFactory) -> None:
    old, new = await make_store(), await make_store()
    await old.register(registration(1))
    await new.register(registration(2))
    old_record = await old.campaign(1)
    assert old_record is not None
    await old.resign(old_record)
    await new.wait_until(lambda s: s.controller is None, timeout=10)
    new_record = await new.campaign(2)
    assert new_record is not None
    state = PartitionState("t", 0, (1, 2), 1, 0, (1, 2))
    assert not await old.write_partition(state, expected_revision=0, controller=old_record)
    assert await new.write_partition(state, expected_revision=0, controller=new_record)


async def test_partition_compare_and_swap(make_store: StoreFactory) -> None:
    writer, other = await make_store(), await make_store()
    state = PartitionState("t", 0, (1, 2), 1, 0, (1, 2))
    assert await writer.write_partition(state, expected_revision=0)
    assert not await other.write_partition(state, expected_revision=0)  # exists already
    snap = await other.wait_until(lambda s: ("t", 0) in s.partitions, timeout=10)
    revision = other.cache.partition_revision("t", 0)
    shrunk = snap.partitions["t", 0].with_changes(isr=(1,))
    assert await other.write_partition(shrunk, expected_revision=revision)
    # The first writer's view is now stale: its CAS against the old revision must fail.
    stale = state.with_changes(isr=(2,))
    assert not await writer.write_partition(stale, expected_revision=revision)
    final = await writer.wait_until(lambda s: s.partitions["t", 0].isr == (1,), timeout=10)
    assert final.partitions["t", 0].partition_epoch == 1


async def test_topic_creation_and_deletion_propagate(make_store: StoreFactory) -> None:
    creator, follower = await make_store(), await make_store()
    topic = TopicRecord("orders", uuid.uuid4().hex, {p: (1, 2) for p in range(150)}, {})
    states = [PartitionState("orders", p, (1, 2), 1, 0, (1, 2)) for p in range(150)]
    assert await creator.create_topic(topic, states)
    assert not await creator.create_topic(topic, states)
    snap = await follower.wait_until(
        lambda s: sum(1 for k in s.partitions if k[0] == "orders") == 150, timeout=10
    )
    assert snap.topics["orders"].topic_id == topic.topic_id
    assert await creator.delete_topic("orders")
    await follower.wait_until(
        lambda s: "orders" not in s.topics and not any(k[0] == "orders" for k in s.partitions),
        timeout=10,
    )


async def test_creations_asked_together_share_transactions(make_store: StoreFactory) -> None:
    """300 topics created at once (as one Metadata request auto-creates them) reach etcd in a
    few transactions, not 300; a name already taken fails only its own creation."""
    creator, follower = await make_store(), await make_store()

    def topic(name: str) -> tuple[TopicRecord, list[PartitionState]]:
        return (TopicRecord(name, uuid.uuid4().hex, {0: (1,)}, {}),
                [PartitionState(name, 0, (1,), 1, 0, (1,))])

    assert await creator.create_topic(*topic("auto-00007"))  # taken before the batch
    transactions = 0
    client = creator.client
    real = client.transaction

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal transactions
        transactions += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    client.transaction = counting  # type: ignore[method-assign]
    names = [f"auto-{i:05d}" for i in range(300)]
    revisions = await asyncio.gather(*(creator.create_topic(*topic(n)) for n in names))
    assert [bool(r) for r in revisions] == [n != "auto-00007" for n in names]
    # 2 operations per topic, 100 per transaction: 6 batches; the one holding the taken
    # name is retried alone (50 more).
    assert transactions <= 6 + 50, transactions
    await follower.wait_until(lambda s: all(n in s.topics for n in names), timeout=20)


async def test_controller_fails_over_leadership_when_a_broker_dies(
    make_store: StoreFactory,
) -> None:
    stores = [await make_store(lease_ttl=1) for _ in range(3)]
    controllers = []
    for broker_id, store in enumerate(stores, start=1):
        await store.register(registration(broker_id))
        controllers.append(Controller(store, broker_id, tick=0.2))
    for controller in controllers:
        controller.start()
    try:
        topic = TopicRecord("t", uuid.uuid4().hex, {0: (1, 2, 3)}, {})
        snap = await stores[0].wait_until(
            lambda s: len(s.brokers) == 3 and s.controller is not None, timeout=10
        )
        states = [
            PartitionState("t", 0, (1, 2, 3), 1, 0, (1, 2, 3), 0, snap.brokers[1].broker_epoch)
        ]
        assert await stores[0].create_topic(topic, states)
        await stores[1].wait_until(lambda s: ("t", 0) in s.partitions, timeout=10)
        # Broker 1 (the leader) loses its session without warning.
        dying = stores[0]
        assert dying._keepalive_task is not None
        dying._keepalive_task.cancel()
        survivor = stores[1]
        final = await survivor.wait_until(
            lambda s: s.partitions["t", 0].leader == 2 and s.partitions["t", 0].isr == (2, 3),
            timeout=20,
        )
        partition = final.partitions["t", 0]
        assert partition.leader_epoch == 1
        assert partition.isr == (2, 3)
        assert final.controller is not None and final.controller.broker_id in (2, 3)
    finally:
        for controller in controllers:
            await controller.stop()


async def test_store_survives_an_etcd_restart(private_etcd: EtcdProcess) -> None:
    keys = KeySpace("/restart")
    endpoint = [("127.0.0.1", private_etcd.client_port)]
    reader = EtcdMetadataStore(endpoint, keys=keys, lease_ttl=10)
    writer = EtcdMetadataStore(endpoint, keys=keys, lease_ttl=10)
    await reader.start()
    await writer.start()
    try:
        await reader.register(registration(1))
        # In a thread, so the stores keep running (keep-alives, watch) through the outage.
        await asyncio.to_thread(private_etcd.stop)
        await asyncio.to_thread(private_etcd.start)
        state = PartitionState("t", 0, (1,), 1, 0, (1,))
        await eventually_async(lambda: writer.write_partition(state, expected_revision=0),
                               timeout=20, interval=0.2, retry_on=(Exception,),
                               message="a write through the restarted etcd")
        snap = await reader.wait_until(lambda s: ("t", 0) in s.partitions, timeout=20)
        # The lease (10 s) outlived the short outage: the registration is still there.
        assert 1 in snap.brokers
    finally:
        # close() must never hang on a connection to an etcd that went away meanwhile.
        await asyncio.wait_for(reader.close(), 15)
        await asyncio.wait_for(writer.close(), 15)


async def test_calls_to_a_frozen_etcd_fail_within_the_deadline(
    private_etcd: EtcdProcess,
) -> None:
    endpoint = [("127.0.0.1", private_etcd.client_port)]
    store = EtcdMetadataStore(endpoint, keys=KeySpace("/frozen"), lease_ttl=10, request_timeout=1)
    await store.start()
    await store.register(registration(1))
    try:
        # Accepts connections, never answers. pause() returns once all etcd threads have
        # stopped: right after a bare SIGSTOP etcd may still run, and answer the first call.
        private_etcd.pause()
        loop = asyncio.get_running_loop()
        state = PartitionState("t", 0, (1,), 1, 0, (1,))
        calls = {
            "write": lambda: store.write_partition(state, expected_revision=0),
            "read": store.resync,
            "campaign": lambda: store.campaign(1),
            "producer ids": lambda: store.reserve_producer_ids(10),
        }
        for name, call in calls.items():
            started = loop.time()
            try:
                result = await asyncio.wait_for(call(), 10)
            except EtcdUnavailableError:
                pass
            else:
                pytest.fail(f"{name} returned {result!r} from a frozen etcd")
            assert loop.time() - started < 5, f"{name} overran its deadline"
        started = loop.time()
        await asyncio.wait_for(store.close(), 15)
        assert loop.time() - started < 10
    finally:
        private_etcd.resume()
        await store.close()


async def test_producer_id_blocks_never_overlap(make_store: StoreFactory) -> None:
    stores = [await make_store() for _ in range(3)]
    blocks = await asyncio.gather(*(s.reserve_producer_ids(100) for s in stores for _ in range(4)))
    ids = [i for block in blocks for i in block]
    assert len(ids) == len(set(ids)) == 1200
    assert min(ids) == 0 and max(ids) == 1199


async def test_watchdog_recovers_from_a_silently_dead_watch(make_store: StoreFactory) -> None:
    reader, writer = await make_store(), await make_store()
    # Simulate a watch stream that stopped delivering without any error.
    assert reader._watch_task is not None
    reader._watch_task.cancel()
    state = PartitionState("t", 0, (1,), 1, 0, (1,))
    assert await writer.write_partition(state, expected_revision=0)
    snap = await reader.wait_until(lambda s: ("t", 0) in s.partitions, timeout=15)
    assert snap.partitions["t", 0] == state


async def test_controller_key_stays_bound_to_the_campaigning_lease(
    make_store: StoreFactory,
) -> None:
    store = await make_store(lease_ttl=5)
    await store.register(registration(1))
    lease = store.lease_id
    campaign = asyncio.create_task(store.campaign(1))
    await asyncio.sleep(0)  # the campaign is now waiting for etcd (its first read)
    store.lease_id = None  # what a session expiry does while the campaign is in flight
    try:
        record = await campaign
        assert record is not None
        stored = await store.client.get(store.keys.controller)
        assert stored is not None
        # Bound to the lease it campaigned with, so it vanishes with that lease (a lease-less
        # key would name this broker controller forever and no election would ever happen).
        assert stored.lease == lease
    finally:
        store.lease_id = lease


async def test_back_to_back_topic_changes_on_a_broker_both_reach_etcd(
    etcd: EtcdProcess, keyspace: KeySpace, tmp_path: Path
) -> None:
    """New partitions and then new configs, requested before the broker's cache has seen the
    first write: the second write must not replace the record by its stale copy (that once
    left a 3-partition topic recorded in etcd with one partition after an operator reconcile)."""
    from headrace.cluster.decisions import initial_states
    from headrace.cluster.node import ClusterSettings

    running = in_process_broker(tmp_path / "broker", cluster=ClusterSettings(
        etcd.metadata_url, key_root=keyspace.root, default_replication_factor=1,
        offsets_topic_replication_factor=1))
    broker, node = running.broker, running.node
    assert node is not None
    async with running:
        me = broker.config.node_id
        record = TopicRecord("grown", uuid.uuid4().hex, {0: (me,)}, {})
        snapshot = await node.store.wait_until(lambda s: me in s.brokers, timeout=10)
        assert await node.store.create_topic(
            record, initial_states(record, snapshot.brokers, range(1)))
        await node.store.wait_until(
            lambda s: "grown" in s.topics and node.logs.topics().get("grown") is not None,
            timeout=10)

        node.topic_manager.add_partitions("grown", 3)
        node.topic_manager.set_configs("grown", {"min.insync.replicas": "1"})

        async def both_written() -> TopicRecord | None:
            stored = await node.store.client.get(keyspace.topic("grown"))
            assert stored is not None
            written = TopicRecord.from_json(stored.value)
            return written if dict(written.configs) and len(written.assignment) == 3 else None

        written = await eventually_async(both_written, timeout=10,
                                         message="partitions and configs in etcd")
        assert sorted(written.assignment) == [0, 1, 2], written
        assert dict(written.configs) == {"min.insync.replicas": "1"}, written


def test_etcd_started_on_a_port_taken_meanwhile_moves_to_free_ports(tmp_path: Path) -> None:
    # The ports are picked before start; something else binds one in between (any outgoing
    # connection takes an ephemeral port). The first start moves to new ports; restarts keep them.
    etcd = EtcdProcess(tmp_path / "etcd")
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", etcd.client_port))
    squatter.listen()
    taken = etcd.client_port
    try:
        etcd.start()
        assert etcd.running and etcd.client_port != taken
        moved = (etcd.client_port, etcd.peer_port)
        etcd.stop()
        etcd.start()
        assert (etcd.client_port, etcd.peer_port) == moved
    finally:
        etcd.stop()
        squatter.close()
