"""Glue that turns a single broker's services (:class:`~headrace.core.broker.Broker`) into a
cluster member.

:func:`attach_cluster` swaps the broker's replica manager, topic manager and metadata view for
etcd-backed ones; the :class:`ClusterNode` service
then registers the broker (once its listener is bound), runs the controller candidate, keeps
local logs in step with the topics in etcd, drives leader/follower roles and the replica
fetcher, proposes ISR changes and performs controlled shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from headrace.cluster.connections import PeerTls, no_tls
from headrace.cluster.controller import Controller
from headrace.cluster.decisions import isr_candidates
from headrace.cluster.fetcher import ReplicaFetcher
from headrace.cluster.metadata_view import EtcdMetadataView
from headrace.cluster.model import (
    NO_LEADER,
    BrokerRegistration,
    ClusterSnapshot,
    KeySpace,
    PartitionState,
    parse_metadata_url,
)
from headrace.cluster.producer_ids import ClusterProducerIds
from headrace.cluster.replica_manager import ClusteredReplicaManager
from headrace.cluster.store import EtcdMetadataStore
from headrace.cluster.topic_manager import ClusterTopicManager
from headrace.core.errors import UserError
from headrace.groups.coordinator import CoordinatorNode
from headrace.groups.partitioning import OFFSETS_TOPIC
from headrace.observability.replication import ReplicationStats
from headrace.storage import StorageError

if TYPE_CHECKING:
    from headrace.core.broker import Broker

log = logging.getLogger(__name__)


@dataclass
class ClusterSettings:
    """What ``--metadata`` and its companion flags configure."""

    metadata_url: str
    zone: str | None = None
    key_root: str = "/headrace"
    lease_ttl: int = 3
    replica_lag_time_max_ms: int = 10_000
    default_replication_factor: int = 3
    offsets_topic_replication_factor: int = 3
    controlled_shutdown_timeout: float = 15.0
    #: /readyz stays 503 while followed partitions are still catching up.
    ready_requires_in_sync: bool = True
    ack_timeout: float = 30.0
    #: Replication rate limit for replicas added by a reassignment (0: unlimited).
    reassignment_throttle_bytes_per_second: int = 0


def load_log_dir_id(data_dir: Path) -> str:
    """The id of this data directory; a wiped disk gets a new one (and cannot pose as in-sync)."""
    path = data_dir / "log-dir-id"
    try:
        value = path.read_text().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    value = uuid.uuid4().hex
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(value + "\n")
    temporary.replace(path)
    return value


def attach_cluster(broker: Broker, settings: ClusterSettings) -> ClusterNode:
    """Make ``broker`` a member of the etcd-coordinated cluster: its replica manager, topic
    manager, metadata view and producer ids become the cluster's. The composition root calls
    this while building the broker, then serves :func:`cluster_api_handlers` and runs the
    node's ``start``/``stop``."""
    node = ClusterNode(broker, settings)
    broker.attach(
        replicas=node.replicas,
        topics=node.topic_manager,
        metadata=node.view,
        producer_ids=node.producer_ids,
    )
    # /readyz (headrace.web) is not ready while followed replicas catch up.
    broker.add_readiness_check("replication", node.replication_ready)
    return node


class ClusterNode:
    """This broker's membership in the cluster."""

    def __init__(self, broker: Broker, settings: ClusterSettings) -> None:
        self.broker = broker
        self.settings = settings
        self.node_id = broker.config.node_id
        self.logs = broker.logs
        self.log_dir_id = load_log_dir_id(broker.config.data_dir)
        self.incarnation = uuid.uuid4().hex
        self.store = EtcdMetadataStore(
            parse_metadata_url(settings.metadata_url),
            keys=KeySpace(settings.key_root),
            lease_ttl=settings.lease_ttl,
        )
        self.replicas = ClusteredReplicaManager(
            broker.logs,
            self.node_id,
            replica_lag_time_max=settings.replica_lag_time_max_ms / 1000,
            ack_timeout=settings.ack_timeout,
        )
        self.replicas.propose_isr = self._propose_isr
        #: The TLS client context for other brokers' inter-broker listener, per connection
        #: (the composition root sets it when that listener is SSL).
        self.peer_tls: PeerTls = no_tls
        self.fetcher = ReplicaFetcher(
            self.replicas, self.endpoint_of,
            throttle_bytes_per_second=settings.reassignment_throttle_bytes_per_second,
            tls=lambda: self.peer_tls(),
        )
        self.controller = Controller(self.store, self.node_id, tick=0.5)
        self.topic_manager = ClusterTopicManager(
            broker.logs, self.store,
            default_partitions=broker.config.default_partitions,
            default_replication_factor=settings.default_replication_factor,
            follow_metadata=self.follow_metadata,
            max_broker_partitions=broker.config.max_broker_partitions,
            max_topic_partitions=broker.config.max_topic_partitions,
        )
        self.producer_ids = ClusterProducerIds(self.store)
        self.view = EtcdMetadataView(self.store, self.node_id, broker)
        self.registration: BrokerRegistration | None = None
        self._known_topics: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._shutdown_done = False
        self._started = False
        #: Checks the cluster's id against the data dir's (the composition root sets it).
        self.adopt_cluster_id: Callable[[str, str], None] = lambda cluster_id, source: None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.store.start()
            cluster_id = await self.store.ensure_cluster_id(self.broker.cluster_id)
            # The data dir refuses another cluster's id (and records the id at first start).
            self.adopt_cluster_id(cluster_id, f"at {self.settings.metadata_url}")
        except BaseException as error:
            await self.store.close()
            if isinstance(error, ConnectionError):
                raise UserError(f"{error} (--metadata {self.settings.metadata_url})") from None
            raise
        self.broker.cluster_id = cluster_id
        self._tasks.append(asyncio.create_task(
            self.broker.internal_topics.follow(), name="internal-topic-leadership"))
        self.store.add_listener(self._on_metadata)
        self.store.on_session_lost(self._reregister)
        # Materialize the cluster's topics before other services (the group coordinator) start.
        self._on_metadata(self.store.snapshot())
        # The Kafka listener is bound (connections queue until it accepts), so the advertised
        # port is known: register now, so that a broker reported ready is a cluster member.
        await self._register()
        self.controller.start()
        self._tasks.append(asyncio.create_task(self._announce_http_port(), name="http-port"))
        self._tasks.append(asyncio.create_task(self._isr_loop(), name="isr-check"))
        self._started = True

    async def _announce_http_port(self) -> None:
        """The HTTP listener starts after services: add its port to the registration then."""
        await self.broker.started.wait()
        registration = self.registration
        if registration is None or not self.broker.http_port:
            return
        updated = dataclasses.replace(registration, http_port=self.broker.http_port)
        with contextlib.suppress(Exception):
            await self.store.update_registration(updated)
            self.registration = updated

    async def _register(self) -> None:
        endpoint = self.broker.endpoint
        registration = BrokerRegistration(
            broker_id=self.node_id,
            host=endpoint.host,
            port=endpoint.port,
            rack=self.settings.zone,
            log_dir_id=self.log_dir_id,
            incarnation=self.incarnation,
            http_port=self.broker.http_port or None,
            endpoints=self.broker.advertised_listeners(),
        )
        self.registration = await self.store.register(registration)
        log.info("broker %d registered (broker epoch %d, zone %s)", self.node_id,
                 self.registration.broker_epoch, self.settings.zone)
        await self.store.wait_until(lambda s: self.node_id in s.brokers, timeout=10)
        self._on_metadata(self.store.snapshot())

    async def _reregister(self) -> None:
        """Our lease expired (etcd outage, long pause): come back as a new incarnation."""
        self.registration = None
        self.replicas.apply_states({}, -1)
        while not self._shutdown_done:
            try:
                await self._register()
                return
            except Exception as error:
                log.info("re-registration failed: %s", error)
                await asyncio.sleep(0.5)

    async def prepare_shutdown(self) -> None:
        """Controlled shutdown: hand leadership over, then leave the cluster."""
        if self._shutdown_done or not self._started:
            return
        registration = self.registration
        if registration is not None:
            try:
                leaving = dataclasses.replace(registration, shutting_down=True)
                await self.store.update_registration(leaving)
                # Leadership can only move to a live broker that is not leaving too: when the
                # whole cluster stops at once (``headrace dev`` on Ctrl-C) there is nowhere to
                # move it, and waiting out the timeout would only delay the stop.
                await self.store.wait_until(
                    lambda s: not any(
                        p.leader == self.node_id and any(
                            b != self.node_id and b in s.brokers
                            and not s.brokers[b].shutting_down
                            for b in p.isr
                        )
                        for p in s.partitions.values()
                    ),
                    timeout=self.settings.controlled_shutdown_timeout,
                )
                log.info("leadership moved away; leaving the cluster")
            except Exception as error:
                log.warning("controlled shutdown incomplete: %s", error)
        self._shutdown_done = True
        await self.controller.stop()
        await self.store.deregister()

    async def stop(self) -> None:
        await self.prepare_shutdown()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.fetcher.close()
        self.replicas.shutdown()
        await self.store.close()

    # -- following metadata -----------------------------------------------------------------

    def endpoint_of(self, broker_id: int) -> tuple[str, int] | None:
        """A registered broker's Kafka endpoint (None: not registered)."""
        registration = self.store.cache.brokers.get(broker_id)
        if registration is None:
            return None
        return registration.host, registration.port

    def follow_metadata(self) -> None:
        """Bring local logs and roles in line with the cached metadata now."""
        self._on_metadata(self.store.snapshot())

    def _on_metadata(self, snapshot: ClusterSnapshot) -> None:
        self._materialize_topics(snapshot)
        registration = self.registration
        epoch = registration.broker_epoch if registration is not None else -1
        current = snapshot.brokers.get(self.node_id)
        if registration is not None and (current is None or current.broker_epoch != epoch):
            epoch = -1  # our registration is gone or replaced: lead nothing
        states = {
            key: state for key, state in snapshot.partitions.items()
            if self._has_local_log(*key)
        }
        self.replicas.apply_states(
            states,
            epoch,
            {b: r.broker_epoch for b, r in snapshot.brokers.items()},
            isr_candidates(snapshot.brokers, snapshot.seen),
        )
        self.fetcher.update()
        self._update_internal_leadership()

    # -- coordinators follow their internal topics' leadership --------------------------

    def offsets_leader(self, partition: int) -> CoordinatorNode | None:
        """The broker leading ``partition`` of ``__consumer_offsets`` (FindCoordinator's answer)."""
        return self.partition_leader(OFFSETS_TOPIC, partition)

    def partition_leader(self, topic: str, partition: int) -> CoordinatorNode | None:
        """The broker leading a partition, as its Kafka endpoint (None: no leader now)."""
        state = self.store.cache.partitions.get((topic, partition))
        if state is None or state.leader == NO_LEADER:
            return None
        registration = self.store.cache.brokers.get(state.leader)
        if registration is None:
            return None
        return CoordinatorNode(registration.broker_id, registration.host, registration.port)

    def _update_internal_leadership(self) -> None:
        internal = self.broker.internal_topics
        internal.lead_soon({
            key: role.leader_epoch
            for key, role in self.replicas.leaders.items()
            if internal.owned(key[0])
        })

    def _has_local_log(self, topic: str, partition: int) -> bool:
        meta = self.logs.topic(topic)
        return meta is not None and partition < meta.partitions

    def _materialize_topics(self, snapshot: ClusterSnapshot) -> None:
        """Create, grow, reconfigure and delete local logs to match the topics in etcd."""
        topics = self.topic_manager
        topics.forget_confirmed_deletions(snapshot)
        local = self.logs.topics()
        for name, record in snapshot.topics.items():
            wanted_id = uuid.UUID(record.topic_id)
            count = max(record.assignment, default=-1) + 1
            existing = local.get(name)
            try:
                if existing is None and topics.deletion_unconfirmed(name, wanted_id):
                    continue  # we deleted it; the cache has not seen the deletion yet
                if existing is not None and existing.topic_id != wanted_id:
                    if topics.creation_unconfirmed(name, existing.topic_id):
                        continue  # our own creation is still on its way to etcd
                    log.warning("replacing local topic %s (id %s) by the cluster's (id %s)",
                                name, existing.topic_id, wanted_id)
                    self.logs.delete_topic(name)
                    existing = None
                if existing is None:
                    self.logs.create_topic(name, count, dict(record.configs), wanted_id)
                else:
                    if existing.partitions < count:
                        self.logs.add_partitions(name, count)
                    if dict(existing.configs) != dict(record.configs):
                        self.logs.alter_topic_configs(name, dict(record.configs))
            except StorageError as error:
                log.warning("cannot materialize topic %s locally: %s", name, error)
        for name in self._known_topics - set(snapshot.topics):
            if name in local and not topics.creation_unconfirmed(name, local[name].topic_id):
                with contextlib.suppress(StorageError):
                    self.logs.delete_topic(name)
                    log.info("deleted local topic %s (deleted in the cluster)", name)
        self._known_topics = set(snapshot.topics)

    # -- ISR changes proposed by the leader ---------------------------------------------------

    def _propose_isr(self, proposal: PartitionState) -> None:
        self._tasks.append(asyncio.create_task(self._write_isr(proposal)))
        self._tasks = [t for t in self._tasks if not t.done()]

    async def _write_isr(self, proposal: PartitionState) -> None:
        key = (proposal.topic, proposal.partition)
        current = self.store.cache.partitions.get(key)
        written = False
        if current is not None and current.partition_epoch == proposal.partition_epoch - 1:
            expected = self.store.cache.partition_revision(*key)
            with contextlib.suppress(Exception):
                written = await self.store.write_partition(proposal, expected_revision=expected)
        if written:
            log.info("ISR of %s-%d is now %s", *key, list(proposal.isr))
        else:
            self.replicas.isr_change_failed(key)

    async def _isr_loop(self) -> None:
        interval = max(self.settings.replica_lag_time_max_ms / 4000, 0.1)
        while True:
            await asyncio.sleep(interval)
            try:
                self.replicas.check_lagging()
                await self._ensure_internal_topics()
            except Exception:
                log.exception("ISR check failed")

    async def _ensure_internal_topics(self) -> None:
        """The controller creates each internal topic once enough brokers are up (Kafka)."""
        if not self.controller.is_active:
            return
        snapshot = self.store.snapshot()
        for topic in self.broker.internal_topics.topics():
            replication = topic.replication_factor or self.settings.offsets_topic_replication_factor
            if topic.name in snapshot.topics or len(snapshot.brokers) < replication:
                continue
            configs = dict(topic.configs)
            if topic.min_insync_replicas is not None:
                configs["min.insync.replicas"] = str(min(topic.min_insync_replicas, replication))
            record, states = self.topic_manager.plan_topic(
                topic.name, topic.partitions, replication, configs, uuid.uuid4(), snapshot
            )
            await self.store.create_topic(record, states)

    # -- readiness ------------------------------------------------------------------------

    def replication_ready(self) -> bool:
        """Registered, and (if configured) in the ISR of every partition we follow."""
        if self.registration is None:
            return False
        if not self.settings.ready_requires_in_sync:
            return True
        snapshot = self.store.cache
        for key in self.replicas.followers:
            state = snapshot.partitions.get(key)
            if state is not None and self.node_id not in state.isr:
                return False
        return True

    def replication_stats(self) -> ReplicationStats:
        """The /metrics replication gauges, from the current roles and metadata."""
        under, below_min = self.replicas.replication_health()
        return ReplicationStats(under, below_min, self.controller.offline_partitions())
