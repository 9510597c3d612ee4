"""Fault injection: a 3-broker cluster keeps its promises while processes are hurt.

Continuous idempotent acks=all production (confluent-kafka) and group consumption run while a
seeded random sequence of faults hits the cluster: the partition leader is SIGKILLed and
restarted, a follower is SIGSTOPped long enough to leave the ISR and then resumed, the controller
is killed, etcd is stopped and restarted, and a broker's disk is wiped before it rejoins. After
every round the invariants are checked: no acknowledged record lost, no duplicate from the
idempotent producer, per-partition order kept, leader epochs never go backwards along a log (one
writer per epoch), committed offsets never go backwards, and the group consumer eventually sees
every record. Set ``HEADRACE_CHAOS_SEED`` to replay a sequence.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from headrace.cluster.devcluster import BrokerProcess, DevCluster
from headrace.cluster.etcd_launcher import EtcdProcess
from tests.support.clients import confluent_admin, confluent_consumer, create_topic
from tests.support.clusters import (
    FAST_FLAGS,
    ProducerLoad,
    all_led,
    check_no_loss_no_duplicates,
    partition_states,
)
from tests.support.waiting import eventually

TOPIC = "chaos"
PARTITIONS = 3
GROUP = "chaos-readers"


@dataclass
class GroupReader:
    """A consumer-group member that records what it saw and the offsets it committed."""

    bootstrap: str
    seen: set[bytes] = field(default_factory=set)
    committed: dict[int, list[int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> GroupReader:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        consumer = confluent_consumer(self.bootstrap, {
            "group.id": GROUP,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 300,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "topic.metadata.refresh.interval.ms": 1000,
        })
        consumer.subscribe([TOPIC])
        last_check = time.monotonic()
        try:
            while not self._stop.is_set():
                message = consumer.poll(0.2)
                if message is not None and not message.error():
                    with self._lock:
                        self.seen.add(message.value())
                if time.monotonic() - last_check > 1.0:
                    last_check = time.monotonic()
                    self._record_committed(consumer)
        finally:
            consumer.close()

    def _record_committed(self, consumer: Consumer) -> None:
        try:
            offsets = consumer.committed(
                [TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=3
            )
        except Exception:
            return  # coordinator moving: try again later
        with self._lock:
            for item in offsets:
                if item.error is None and item.offset >= 0:
                    self.committed.setdefault(item.partition, []).append(item.offset)

    def seen_count(self, wanted: set[bytes]) -> int:
        with self._lock:
            return len(wanted & self.seen)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)


def read_everything(
    bootstrap: str, acked_offsets: dict[int, int]
) -> dict[int, list[tuple[int, bytes, int]]]:
    """Every record up to the highest acknowledged offset per partition, with leader epochs."""
    consumer = confluent_consumer(bootstrap, {
        "group.id": f"verify-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "topic.metadata.refresh.interval.ms": 1000,
    })
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    records: dict[int, list[tuple[int, bytes, int]]] = {p: [] for p in range(PARTITIONS)}

    def done() -> bool:
        return all(
            (records[p][-1][0] if records[p] else -1) >= acked_offsets.get(p, -1)
            for p in range(PARTITIONS)
        )

    def read_enough() -> bool:
        message = consumer.poll(0.2)
        if message is not None and not message.error():
            epoch = message.leader_epoch()
            records[message.partition()].append(
                (message.offset(), message.value(), -1 if epoch is None else epoch)
            )
        return done()

    try:
        if not done():
            eventually(read_enough, timeout=60, interval=0,
                       message="every acknowledged record read back")
    finally:
        consumer.close()
    return records


def check_round(load: ProducerLoad, reader: GroupReader, bootstrap: str) -> None:
    with load._lock:
        acked = list(load.acked)
    highest: dict[int, int] = {}
    for record in acked:
        highest[record.partition] = max(highest.get(record.partition, -1), record.offset)
    records = read_everything(bootstrap, highest)
    check_no_loss_no_duplicates(
        acked, {p: [(offset, value) for offset, value, _ in rs] for p, rs in records.items()}
    )
    for partition, rs in records.items():
        epochs = [epoch for _, _, epoch in rs]
        # One writer per epoch: along the log, epochs only go up.
        assert epochs == sorted(epochs), f"leader epochs go backwards in partition {partition}"
    with reader._lock:
        for partition, history in reader.committed.items():
            assert history == sorted(history), f"committed offset went back on {partition}"


def healthy(cluster: DevCluster) -> bool:
    running = [b for b in cluster.brokers if b.running]
    bootstrap = ",".join(b.bootstrap for b in running)
    states = partition_states(bootstrap, TOPIC)
    return len(states) == PARTITIONS and all(
        leader >= 0 and len(isr) == 3 for leader, _, isr in states.values()
    )


def leader_of(cluster: DevCluster, partition: int) -> int:
    return int(partition_states(cluster.bootstrap, TOPIC)[partition][0])


def controller_of(cluster: DevCluster) -> int:
    client = confluent_admin(cluster.bootstrap)
    return int(client.describe_cluster(request_timeout=10).result(10).controller.id)


def kill_leader(cluster: DevCluster, rng: random.Random) -> None:
    victim = cluster.broker(leader_of(cluster, rng.randrange(PARTITIONS)))
    victim.kill()
    eventually(lambda: all_led(_without(cluster, victim), TOPIC, PARTITIONS), timeout=30,
               message="new leaders", retry_on=(Exception,))
    victim.start()


def pause_follower(cluster: DevCluster, rng: random.Random) -> None:
    partition = rng.randrange(PARTITIONS)
    leader, replicas, _ = partition_states(cluster.bootstrap, TOPIC)[partition]
    victim = cluster.broker(rng.choice([r for r in replicas if r != leader]))
    victim.pause()
    try:
        eventually(
            lambda: victim.broker_id not in partition_states(
                _without(cluster, victim), TOPIC)[partition][2],
            timeout=30, message="the paused follower out of the ISR", retry_on=(Exception,),
        )
    finally:
        victim.resume()


def kill_controller(cluster: DevCluster, rng: random.Random) -> None:
    victim = cluster.broker(controller_of(cluster))
    victim.kill()
    others = _without(cluster, victim)
    eventually(lambda: all_led(others, TOPIC, PARTITIONS), timeout=30,
               message="leaders after controller loss", retry_on=(Exception,))
    victim.start()


def restart_etcd(cluster: DevCluster, rng: random.Random) -> None:
    cluster.etcd.stop()
    time.sleep(rng.uniform(0.5, 1.5))  # the outage itself, not synchronisation
    cluster.etcd.start()


def wipe_broker(cluster: DevCluster, rng: random.Random) -> None:
    partition = rng.randrange(PARTITIONS)
    leader, replicas, _ = partition_states(cluster.bootstrap, TOPIC)[partition]
    victim = cluster.broker(rng.choice([r for r in replicas if r != leader]))
    victim.kill()
    victim.wipe()
    victim.start()


def _without(cluster: DevCluster, victim: object) -> str:
    return ",".join(b.bootstrap for b in cluster.brokers if b is not victim)


FAULTS: dict[str, Callable[[DevCluster, random.Random], None]] = {
    "kill_leader": kill_leader,
    "pause_follower": pause_follower,
    "kill_controller": kill_controller,
    "restart_etcd": restart_etcd,
    "wipe_broker": wipe_broker,
}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_cluster_keeps_its_promises_under_faults(tmp_path: Path) -> None:
    seed = int(os.environ.get("HEADRACE_CHAOS_SEED", "20261125"))
    rng = random.Random(seed)
    rounds = list(FAULTS)
    rng.shuffle(rounds)
    for _ in range(2):  # leader kills, repeated at random points
        rounds.insert(rng.randrange(len(rounds) + 1), "kill_leader")
    cluster = DevCluster(tmp_path / "cluster", 3, extra_args=FAST_FLAGS).start()
    load: ProducerLoad | None = None
    reader: GroupReader | None = None
    try:
        create_topic(cluster.bootstrap, TOPIC, PARTITIONS, 3, {"min.insync.replicas": "2"})
        eventually(lambda: healthy(cluster), timeout=30, message="a healthy cluster",
                   retry_on=(Exception,))
        load = ProducerLoad(cluster.bootstrap, TOPIC, PARTITIONS).start()
        reader = GroupReader(cluster.bootstrap).start()
        eventually(lambda: load.acked_count() > 200, timeout=30, message="production running",
                   retry_on=(Exception,))
        try:
            for number, fault in enumerate(rounds, start=1):
                before = load.acked_count()
                FAULTS[fault](cluster, rng)
                eventually(lambda before=before: load.acked_count() > before + 200, timeout=60,
                           message=f"acks after round {number} ({fault}, seed {seed})",
                           retry_on=(Exception,))
                eventually(lambda: healthy(cluster), timeout=60,
                           message=f"full ISRs after {fault} (seed {seed})", retry_on=(Exception,))
                check_round(load, reader, cluster.bootstrap)
            load.stop()
            assert not load.errors, f"seed {seed}: {load.errors[:5]}"
            wanted = {record.value for record in load.acked}
            eventually(lambda: reader.seen_count(wanted) == len(wanted), timeout=60,
                       message=f"the group reading every record (seed {seed})",
                       retry_on=(Exception,))
            check_round(load, reader, cluster.bootstrap)
        except AssertionError as failure:
            logs = "\n".join(
                f"--- broker {b.broker_id} ---\n{b.log_tail(3000)}" for b in cluster.brokers
            )
            raise AssertionError(
                f"{failure}\nrounds: {rounds}\nproducer errors: {load.errors[:5]}\n{logs}"
            ) from failure
    finally:
        if load is not None:
            load.stop()
        if reader is not None:
            reader.stop()
        cluster.kill()


def _netns_available() -> str | None:
    """Why network-namespace faults cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root for ip netns"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    name = f"hr-probe-{uuid.uuid4().hex[:6]}"
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"ip netns not permitted here: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    return None


class CutLink:
    """A network namespace joined to the host by a veth pair whose link can be cut."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.namespace = f"hr-{tag}"
        self.host_side = f"hrh{tag}"
        self.ns_side = f"hrn{tag}"
        octet = random.randrange(1, 250)
        self.host_ip = f"10.213.{octet}.1"
        self.ns_ip = f"10.213.{octet}.2"

    def _ip(self, *args: str, namespace: bool = False) -> None:
        prefix = ["ip", "netns", "exec", self.namespace] if namespace else []
        subprocess.run([*prefix, "ip", *args], check=True, capture_output=True)

    def create(self) -> None:
        self._ip("netns", "add", self.namespace)
        self._ip("link", "add", self.host_side, "type", "veth", "peer", "name", self.ns_side)
        self._ip("link", "set", self.ns_side, "netns", self.namespace)
        self._ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_side)
        self._ip("link", "set", self.host_side, "up")
        self._ip("addr", "add", f"{self.ns_ip}/30", "dev", self.ns_side, namespace=True)
        self._ip("link", "set", self.ns_side, "up", namespace=True)
        self._ip("link", "set", "lo", "up", namespace=True)

    def cut(self) -> None:
        self._ip("link", "set", self.host_side, "down")

    def heal(self) -> None:
        self._ip("link", "set", self.host_side, "up")

    def destroy(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_side], capture_output=True)
        subprocess.run(["ip", "netns", "delete", self.namespace], capture_output=True)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_broker_behind_a_cut_link_loses_leadership_and_rejoins(tmp_path: Path) -> None:
    reason = _netns_available()
    if reason is not None:
        pytest.skip(reason)
    link = CutLink()
    link.create()
    etcd = EtcdProcess(tmp_path / "etcd", host=link.host_ip)
    brokers: list[BrokerProcess] = []
    load: ProducerLoad | None = None
    try:
        etcd.start()
        for broker_id in (1, 2, 3):
            isolated = broker_id == 3
            brokers.append(BrokerProcess(
                broker_id, tmp_path / f"broker-{broker_id}", etcd.metadata_url,
                zone="abc"[broker_id - 1], extra_args=FAST_FLAGS,
                host=link.ns_ip if isolated else link.host_ip,
                command_prefix=("ip", "netns", "exec", link.namespace) if isolated else (),
            ).start(wait=False))
        for broker in brokers:
            broker.wait_ready()
        bootstrap = ",".join(b.bootstrap for b in brokers)
        reachable = ",".join(b.bootstrap for b in brokers[:2])
        create_topic(bootstrap, TOPIC, PARTITIONS, 3, {"min.insync.replicas": "2"})
        eventually(lambda: all(len(isr) == 3 and leader >= 0 for leader, _, isr
                               in partition_states(bootstrap, TOPIC).values()), timeout=30,
                   message="healthy", retry_on=(Exception,))
        assert 3 in {leader for leader, _, _ in partition_states(bootstrap, TOPIC).values()}
        load = ProducerLoad(bootstrap, TOPIC, PARTITIONS).start()
        eventually(lambda: load.acked_count() > 200, timeout=30, message="production running",
                   retry_on=(Exception,))
        link.cut()
        eventually(
            lambda: all(leader in (1, 2) and 3 not in isr for leader, _, isr
                        in partition_states(reachable, TOPIC).values()),
            timeout=30, message="leadership and ISR membership gone from the cut-off broker",
            retry_on=(Exception,),
        )
        before = load.acked_count()
        eventually(lambda: load.acked_count() > before + 200, timeout=30,
                   message="acks while the link is cut", retry_on=(Exception,))
        link.heal()
        eventually(
            lambda: all(3 in isr for _, _, isr in partition_states(reachable, TOPIC).values()),
            timeout=60, message="the cut-off broker back in every ISR", retry_on=(Exception,),
        )
        before = load.acked_count()
        eventually(lambda: load.acked_count() > before + 200, timeout=30,
                   message="acks after healing", retry_on=(Exception,))
        load.stop()
        assert not load.errors, load.errors[:5]
        highest: dict[int, int] = {}
        for record in load.acked:
            highest[record.partition] = max(highest.get(record.partition, -1), record.offset)
        records = read_everything(bootstrap, highest)
        check_no_loss_no_duplicates(
            load.acked, {p: [(o, v) for o, v, _ in rs] for p, rs in records.items()}
        )
        for partition, rs in records.items():
            epochs = [epoch for _, _, epoch in rs]
            assert epochs == sorted(epochs), f"leader epochs go backwards in {partition}"
    finally:
        if load is not None:
            load.stop()
        for broker in brokers:
            broker.kill()
        etcd.kill()
        link.destroy()
