"""Glue that turns a single :class:`~headrace.server.broker.Broker` into a cluster member.

:func:`attach_cluster` swaps the broker's replica manager, topic manager and metadata view for
etcd-backed ones and registers the cluster's Kafka handlers; the :class:`ClusterNode` service
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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode

from headrace.cluster.controller import Controller
from headrace.cluster.decisions import initial_states, isr_candidates, round_robin_assignment
from headrace.cluster.fetcher import ReplicaFetcher
from headrace.cluster.model import (
    NO_LEADER,
    BrokerRegistration,
    ClusterSnapshot,
    KeySpace,
    PartitionState,
    TopicRecord,
    parse_metadata_url,
)
from headrace.cluster.producer_ids import ClusterProducerIds
from headrace.cluster.replica_manager import ClusteredReplicaManager
from headrace.cluster.store import EtcdMetadataStore
from headrace.cluster.topic_writes import TopicWrites, WriteDone
from headrace.core.errors import KafkaError
from headrace.core.metadata import BrokerEndpoint, TopicState
from headrace.core.metadata import PartitionState as ViewPartition
from headrace.core.topics import (
    ConfigChange,
    TopicManager,
    TopicSpec,
    is_internal,
    kafka_error_from_storage,
)
from headrace.observability.metrics import BrokerMetrics
from headrace.observability.replication import ReplicationStats
from headrace.storage import StorageError, TopicMetadata

if TYPE_CHECKING:
    from headrace.core.requests import RequestContext
    from headrace.server.broker import Broker

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"


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
    """Make ``broker`` a member of the etcd-coordinated cluster; call before ``start()``."""
    from headrace.cluster.handlers import cluster_api_handlers

    broker.open_storage()
    node = ClusterNode(broker, settings)
    broker.attach(
        replicas=node.replicas,
        topics=node.topic_manager,
        metadata=node.view,
        producer_ids=node.producer_ids,
    )
    # /readyz (headrace.web) is not ready while followed replicas catch up.
    broker.add_readiness_check("replication", node.replication_ready)
    if isinstance(broker.observer, BrokerMetrics):  # ISR changes and health reach /metrics
        node.replicas.isr_observer = broker.observer
        broker.observer.replication_source = node
    # Registered before start, so they take precedence over the single-broker handlers.
    broker.registry.register_all(cluster_api_handlers(node))
    broker.add_service(node.start, node.stop)
    return node


class ClusterNode:
    """This broker's membership in the cluster."""

    def __init__(self, broker: Broker, settings: ClusterSettings) -> None:
        assert broker.logs is not None, "open storage first"
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
        self.fetcher = ReplicaFetcher(
            self.replicas, self._endpoint_of,
            throttle_bytes_per_second=settings.reassignment_throttle_bytes_per_second,
        )
        self.controller = Controller(self.store, self.node_id, tick=0.5)
        self.topic_manager = ClusterTopicManager(self)
        self.producer_ids = ClusterProducerIds(self.store)
        self.view = EtcdMetadataView(self)
        self.registration: BrokerRegistration | None = None
        self._known_topics: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._shutdown_done = False
        self._started = False
        self._coordinator: Any = None
        self._coordinated: dict[int, int] = {}
        self._coordination_changed = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.start()
        self.broker.cluster_id = await self.store.ensure_cluster_id(self.broker.cluster_id)
        self._adopt_group_coordinator()
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
                await self.store.wait_until(
                    lambda s: not any(
                        p.leader == self.node_id and any(
                            b != self.node_id and b in s.brokers for b in p.isr
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

    def _endpoint_of(self, broker_id: int) -> tuple[str, int] | None:
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
        self._update_group_coordination()

    # -- consumer groups follow __consumer_offsets leadership -------------------------------

    def _adopt_group_coordinator(self) -> None:
        """Switch the broker's coordinator from "own everything" to leadership-driven loading."""
        from headrace.groups.coordinator import CoordinatorNode

        coordinator = getattr(self.broker, "groups", None)
        if coordinator is None:
            return
        self._coordinator = coordinator
        coordinator.config = dataclasses.replace(coordinator.config, own_all_partitions=False)

        def leader_of(partition: int) -> CoordinatorNode | None:
            state = self.store.cache.partitions.get((OFFSETS_TOPIC, partition))
            if state is None or state.leader == NO_LEADER:
                return None
            registration = self.store.cache.brokers.get(state.leader)
            if registration is None:
                return None
            return CoordinatorNode(registration.broker_id, registration.host, registration.port)

        coordinator.set_partition_leader(leader_of)
        self._tasks.append(asyncio.create_task(self._coordination_loop(), name="group-loads"))

    def _update_group_coordination(self) -> None:
        if self._coordinator is not None:
            self._coordination_changed.set()

    async def _coordination_loop(self) -> None:
        """Load/unload offsets partitions one at a time as our leadership of them changes."""
        while True:
            await self._coordination_changed.wait()
            self._coordination_changed.clear()
            coordinator = self._coordinator
            wanted = {
                key[1]: role.leader_epoch
                for key, role in self.replicas.leaders.items()
                if key[0] == OFFSETS_TOPIC
            }
            try:
                for partition in sorted(set(self._coordinated) - set(wanted)):
                    del self._coordinated[partition]
                    await coordinator.unload_partition(partition)
                for partition, epoch in sorted(wanted.items()):
                    if self._coordinated.get(partition) != epoch:
                        self._coordinated[partition] = epoch
                        await coordinator.load_partition(partition, epoch)
            except Exception:
                log.exception("group coordinator load/unload failed")
                self._coordination_changed.set()
                await asyncio.sleep(0.5)

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
                await self._ensure_offsets_topic()
            except Exception:
                log.exception("ISR check failed")

    async def _ensure_offsets_topic(self) -> None:
        """The controller creates ``__consumer_offsets`` once enough brokers are up (Kafka)."""
        if not self.controller.is_active:
            return
        snapshot = self.store.snapshot()
        if OFFSETS_TOPIC in snapshot.topics:
            return
        replication = self.settings.offsets_topic_replication_factor
        if len(snapshot.brokers) < replication:
            return
        partitions = self.broker.config.offsets_topic_partitions
        record, states = self.topic_manager.plan_topic(
            OFFSETS_TOPIC, partitions, replication, {"cleanup.policy": "compact"},
            uuid.uuid4(), snapshot,
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

    # -- Kafka APIs served via the node ---------------------------------------------------------

    async def handle_elect_leaders(self, request: Any, ctx: RequestContext) -> Any:
        from headrace.core.responses import NO_THROTTLE, build, response_classes

        module = response_classes(43, ctx.api_version)
        election_type = int(getattr(request, "election_type", 0))
        snapshot = self.store.snapshot()
        if request.topic_partitions is None:
            wanted = sorted(snapshot.partitions)
        else:
            wanted = [
                (t.topic, int(p)) for t in request.topic_partitions for p in t.partitions
            ]
        results: dict[str, list[Any]] = {}
        written = {
            (s.topic, s.partition)
            for s in await self.controller.elect_preferred_leaders(
                wanted, unclean=election_type == 1
            )
        }
        for key in wanted:
            state = snapshot.partitions.get(key)
            if state is None:
                code, message = ErrorCode.unknown_topic_or_partition, "unknown partition"
            elif key in written:
                code, message = ErrorCode.none, None
            elif election_type == 1 and state.leader != NO_LEADER:
                code, message = ErrorCode.election_not_needed, "the partition has a leader"
            elif election_type == 1:
                code, message = (ErrorCode.eligible_leaders_not_available,
                                 "no live replica to elect")
            elif state.replicas and state.leader == state.replicas[0]:
                code, message = ErrorCode.election_not_needed, "preferred leader already leads"
            else:
                code, message = (
                    ErrorCode.preferred_leader_not_available,
                    "preferred replica is not an eligible ISR member",
                )
            results.setdefault(key[0], []).append(
                build(module.PartitionResult, partition_id=key[1], error_code=code,
                      error_message=message)
            )
        return build(
            module.ElectLeadersResponse,
            throttle_time=NO_THROTTLE,
            error_code=ErrorCode.none,
            replica_election_results=tuple(
                build(module.ReplicaElectionResult, topic=topic, partition_result=tuple(parts))
                for topic, parts in results.items()
            ),
        )

    async def handle_alter_partition_reassignments(
        self, request: Any, ctx: RequestContext
    ) -> Any:
        from headrace.cluster.decisions import (
            ReassignmentError,
            cancel_reassignment,
            start_reassignment,
        )
        from headrace.core.responses import NO_THROTTLE, build, response_classes

        module = response_classes(45, ctx.api_version)
        snapshot = self.store.snapshot()
        topics = []
        for topic in request.topics:
            results = []
            for item in topic.partitions:
                key = (topic.name, int(item.partition_index))
                state = snapshot.partitions.get(key)
                code, message = ErrorCode.none, None
                try:
                    if state is None:
                        raise KafkaError(ErrorCode.unknown_topic_or_partition, "unknown partition")
                    if item.replicas is None:
                        proposal = cancel_reassignment(state)
                        if proposal is None:
                            raise KafkaError(ErrorCode.no_reassignment_in_progress,
                                             "no reassignment in progress")
                    else:
                        try:
                            proposal = start_reassignment(
                                state, [int(b) for b in item.replicas], snapshot.brokers
                            )
                        except ReassignmentError as error:
                            raise KafkaError(
                                ErrorCode.invalid_replica_assignment, str(error)
                            ) from error
                    if proposal is not None:
                        expected = self.store.cache.partition_revision(*key)
                        if not await self.store.write_partition(
                            proposal, expected_revision=expected
                        ):
                            raise KafkaError(ErrorCode.request_timed_out,
                                             "partition changed concurrently; retry")
                except KafkaError as error:
                    code, message = error.code, error.message
                results.append(build(module.ReassignablePartitionResponse,
                                     partition_index=key[1], error_code=code,
                                     error_message=message))
            topics.append(build(module.ReassignableTopicResponse, name=topic.name,
                                partitions=tuple(results)))
        return build(module.AlterPartitionReassignmentsResponse, throttle_time=NO_THROTTLE,
                     error_code=ErrorCode.none, error_message=None, responses=tuple(topics))

    def handle_list_partition_reassignments(self, request: Any, ctx: RequestContext) -> Any:
        from headrace.core.responses import NO_THROTTLE, build, response_classes

        module = response_classes(46, ctx.api_version)
        snapshot = self.store.snapshot()
        if request.topics is None:
            wanted = None
        else:
            wanted = {
                (t.name, int(p)) for t in request.topics for p in t.partition_indexes
            }
        ongoing: dict[str, list[Any]] = {}
        for key, state in sorted(snapshot.partitions.items()):
            if not (state.adding or state.removing):
                continue
            if wanted is not None and key not in wanted:
                continue
            ongoing.setdefault(key[0], []).append(build(
                module.OngoingPartitionReassignment, partition_index=key[1],
                replicas=state.replicas, adding_replicas=state.adding,
                removing_replicas=state.removing,
            ))
        return build(
            module.ListPartitionReassignmentsResponse, throttle_time=NO_THROTTLE,
            error_code=ErrorCode.none, error_message=None,
            topics=tuple(build(module.OngoingTopicReassignment, name=name,
                               partitions=tuple(parts)) for name, parts in ongoing.items()),
        )


class EtcdMetadataView:
    """The server's ``MetadataView`` answered from the etcd cache (consistent on every broker)."""

    def __init__(self, node: ClusterNode) -> None:
        self._node = node

    @property
    def cluster_id(self) -> str:
        return self._node.broker.cluster_id

    def brokers(self) -> list[BrokerEndpoint]:
        return [
            BrokerEndpoint(r.broker_id, r.host, r.port, r.rack)
            for r in sorted(self._node.store.cache.brokers.values(), key=lambda r: r.broker_id)
        ]

    def controller_id(self) -> int:
        controller = self._node.store.cache.controller
        if controller is not None and controller.broker_id in self._node.store.cache.brokers:
            return controller.broker_id
        brokers = self._node.store.cache.brokers
        return min(brokers) if brokers else self._node.node_id

    def topic_names(self) -> list[str]:
        return sorted(self._node.store.cache.topics)

    def topic(self, name: str) -> TopicState | None:
        cache = self._node.store.cache
        record = cache.topics.get(name)
        if record is None:
            return None
        count = max(record.assignment, default=-1) + 1
        partitions = []
        for index in range(count):
            state = cache.partitions.get((name, index))
            if state is None:
                replicas = tuple(record.assignment.get(index, ()))
                partitions.append(ViewPartition(NO_LEADER, -1, replicas, ()))
            else:
                partitions.append(
                    ViewPartition(state.leader, state.leader_epoch, state.replicas, state.isr)
                )
        return TopicState(name, uuid.UUID(record.topic_id), tuple(partitions), is_internal(name))


@dataclass
class _LocalChange:
    """A local creation or deletion whose etcd write or watch echo is still to come."""

    topic_id: uuid.UUID
    #: The etcd revision that records it, once written (creations); None before.
    revision: int | None = None
    written: bool = False


class ClusterTopicManager(TopicManager):
    """Topic changes go to etcd (the source of truth); local logs follow via the watch.

    The handlers' API is synchronous, so creations and deletions are applied to the local logs
    at once (Kafka clients retry until leaders are elected, as with Kafka's own asynchronous
    topic creation) and written to etcd in the background, one name's writes in the order they
    were made. Until etcd and then the cached metadata confirm such a local change, the watch
    neither undoes it nor replays the older state over it; a creation etcd refused (another
    broker won the name) or that failed is removed again, so the cluster's topic (if any) takes
    its place and a retry can create it. Config changes are not applied locally at all: they are
    written to etcd and the local config follows the watch, so a failed write changes nothing;
    the request that made one awaits its write (:meth:`committed`) and reports a failure.
    """

    def __init__(self, node: ClusterNode) -> None:
        super().__init__(
            node.logs,
            default_partitions=node.broker.config.default_partitions,
            default_replication_factor=node.settings.default_replication_factor,
            live_brokers=lambda: max(1, len(node.store.cache.brokers)),
        )
        self._node = node
        self._writes = TopicWrites()
        self._creations: dict[str, _LocalChange] = {}
        self._deletions: dict[str, _LocalChange] = {}
        #: The outcome of the latest write of each name, until its request collects it.
        self._stored: dict[str, asyncio.Future[None]] = {}

    def pending(self, name: str) -> bool:
        """Whether a write of topic ``name`` to etcd is queued or running."""
        return self._writes.pending(name)

    async def settled(self) -> None:
        """Wait until every topic write made so far has reached etcd or failed."""
        await self._writes.settled()

    def _write(
        self, name: str, write: Callable[[], Awaitable[Any]], done: WriteDone | None = None
    ) -> None:
        def finished(outcome: Any) -> None:
            if done is not None:
                done(outcome)
            self._node.follow_metadata()

        self._writes.submit(name, write, finished)

    # -- what the metadata watch must leave alone ---------------------------------------------

    def creation_unconfirmed(self, name: str, topic_id: uuid.UUID) -> bool:
        """Whether our local creation of ``name`` as ``topic_id`` has not reached the cached
        metadata yet (the watch must neither replace nor delete that local log)."""
        creation = self._creations.get(name)
        if creation is None or creation.topic_id != topic_id:
            return False
        revision = creation.revision
        if revision is not None and self._node.store.cache.revision >= revision:
            del self._creations[name]
            return False
        return True

    def deletion_unconfirmed(self, name: str, topic_id: uuid.UUID) -> bool:
        """Whether we deleted ``name`` (as ``topic_id``) locally and the cached metadata may
        still show it from before the deletion (the watch must not re-create it)."""
        deletion = self._deletions.get(name)
        return deletion is not None and deletion.topic_id == topic_id

    def forget_confirmed_deletions(self, snapshot: ClusterSnapshot) -> None:
        for name, deletion in list(self._deletions.items()):
            record = snapshot.topics.get(name)
            if deletion.written and (record is None or record.topic_id != deletion.topic_id.hex):
                del self._deletions[name]

    # -- TopicManager ----------------------------------------------------------------------------

    def get(self, name: str) -> TopicMetadata | None:
        local = super().get(name)
        if local is not None:
            return local
        record = self._node.store.cache.topics.get(name)
        if record is None:
            return None
        count = max(record.assignment, default=-1) + 1
        return TopicMetadata(name, uuid.UUID(record.topic_id), count, dict(record.configs))

    def plan_topic(
        self,
        name: str,
        partitions: int,
        replication: int,
        configs: Mapping[str, str],
        topic_id: uuid.UUID,
        snapshot: ClusterSnapshot,
    ) -> tuple[TopicRecord, list[PartitionState]]:
        assignment = place_partitions(snapshot, partitions, replication)
        record = TopicRecord(name, topic_id.hex, assignment, dict(configs))
        return record, initial_states(record, snapshot.brokers, range(partitions))

    def create(self, spec: TopicSpec, *, validate_only: bool = False) -> TopicMetadata:
        snapshot = self._node.store.snapshot()
        live = max(1, len(snapshot.brokers))
        if spec.replication_factor == -1:
            self.default_replication_factor = min(
                self._node.settings.default_replication_factor, live
            )
        if spec.name in snapshot.topics:
            raise KafkaError(ErrorCode.topic_already_exists, f"topic {spec.name!r} already exists")
        partitions, configs = self.check_spec(spec)
        replication = (
            self.default_replication_factor
            if spec.replication_factor == -1
            else spec.replication_factor
        )
        if validate_only:
            return TopicMetadata(spec.name, uuid.UUID(int=0), partitions, configs)
        topic_id = uuid.uuid4()
        try:
            record, states = self.plan_topic(
                spec.name, partitions, replication, configs, topic_id, snapshot
            )
        except ValueError as error:
            raise KafkaError(ErrorCode.invalid_replication_factor, str(error)) from error
        try:
            created = self._logs.create_topic(spec.name, partitions, configs, topic_id)
        except StorageError as error:
            raise kafka_error_from_storage(error) from error
        name = spec.name
        self._creations[name] = _LocalChange(topic_id)

        settle = self._track(name)

        def written(outcome: Any) -> None:
            landed = isinstance(outcome, int) and outcome > 0
            settle(outcome if landed or isinstance(outcome, BaseException) else KafkaError(
                ErrorCode.topic_already_exists, f"topic {name!r} already exists"))
            creation = self._creations.get(name)
            if creation is None or creation.topic_id != topic_id:
                return  # deleted (or re-created) locally since
            if landed:
                creation.revision = outcome
                creation.written = True
            else:
                del self._creations[name]
                self._remove_refused_creation(name, topic_id)

        self._write(name, lambda: self._node.store.create_topic(record, states), written)
        return created

    def _remove_refused_creation(self, name: str, topic_id: uuid.UUID) -> None:
        """etcd refused (the name was taken) or failed our creation: drop the local log."""
        record = self._node.store.cache.topics.get(name)
        if record is not None and record.topic_id == topic_id.hex:
            return  # it did land (a write that timed out after etcd applied it)
        local = self._logs.topic(name)
        if local is not None and local.topic_id == topic_id:
            log.warning("topic %s (id %s) was not created in the cluster; removing its log",
                        name, topic_id)
            with contextlib.suppress(StorageError):
                self._logs.delete_topic(name)

    def delete(self, name: str) -> None:
        topic = self.require(name)
        self._creations.pop(name, None)
        with contextlib.suppress(StorageError):
            self._logs.delete_topic(name)
        deletion = self._deletions[name] = _LocalChange(topic.topic_id)

        settle = self._track(name)

        def written(outcome: Any) -> None:
            settle(outcome)  # False (etcd had no such topic) is gone all the same
            if self._deletions.get(name) is not deletion:
                return
            if isinstance(outcome, BaseException):
                del self._deletions[name]  # etcd still has it: the watch brings it back
            else:
                deletion.written = True

        self._write(name, lambda: self._node.store.delete_topic(name), written)

    def add_partitions(
        self, name: str, total: int, *, validate_only: bool = False
    ) -> TopicMetadata:
        record = self._node.store.cache.topics.get(name)
        updated = super().add_partitions(name, total, validate_only=validate_only)
        if validate_only or (record is None and name not in self._creations):
            self._stored.pop(name, None)  # nothing written now: no earlier outcome to report
            return updated

        def grow(record: TopicRecord) -> tuple[TopicRecord, list[PartitionState]] | None:
            snapshot = self._node.store.snapshot()
            current = max(record.assignment, default=-1) + 1
            if current >= total:
                return None
            replication = len(next(iter(record.assignment.values()), ())) or 1
            extra = place_partitions(
                snapshot, total - current, replication, existing=record.assignment,
                first_partition=current,
            )
            new_record = TopicRecord(
                name, record.topic_id, {**record.assignment, **extra}, dict(record.configs)
            )
            return new_record, initial_states(new_record, snapshot.brokers, range(current, total))

        # Derived from etcd's current record at write time, not the cached one, which may
        # not yet show a change just made (a stale copy would drop that change). False (no
        # change: the partitions were already there) counts as stored.
        self._write(name, lambda: self._node.store.modify_topic(name, grow), self._track(name))
        return updated

    def set_configs(
        self, name: str, configs: Mapping[str, str], *, validate_only: bool = False
    ) -> None:
        wanted = dict(configs)
        self.update_configs(name, lambda _current: wanted, validate_only=validate_only)

    def update_configs(
        self, name: str, change: ConfigChange, *, validate_only: bool = False
    ) -> None:
        """Write ``change(overrides)`` to etcd, applied to the record etcd holds at write time
        (so back-to-back changes compose); the local config follows the watch."""
        self.check_configs(name, change(self.require(name).configs))
        if validate_only:
            return

        def reconfigure(record: TopicRecord) -> tuple[TopicRecord, list[PartitionState]]:
            configs = dict(change(record.configs))
            return TopicRecord(name, record.topic_id, record.assignment, configs), []

        settle = self._track(name)

        def written(outcome: Any) -> None:
            if outcome is False:  # the record was gone: the topic was deleted meanwhile
                outcome = KafkaError(
                    ErrorCode.unknown_topic_or_partition, f"topic {name!r} was deleted")
            settle(outcome)

        self._write(name, lambda: self._node.store.modify_topic(name, reconfigure), written)

    def _track(self, name: str) -> Callable[[Any], None]:
        """Let the request making a change of ``name`` await its write (:meth:`committed`);
        the returned function settles it with the write's outcome: an exception (or a
        KafkaError saying what the client should hear) fails it, anything else stores it."""
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stored.add_done_callback(lambda f: f.cancelled() or f.exception())  # never unretrieved
        self._stored[name] = stored

        def settle(outcome: Any) -> None:
            if stored.done():
                return
            if isinstance(outcome, KafkaError):
                stored.set_exception(outcome)
            elif isinstance(outcome, BaseException):
                stored.set_exception(KafkaError(
                    ErrorCode.request_timed_out,
                    f"the change of topic {name!r} could not be stored in the cluster "
                    f"metadata (etcd): {outcome!r}"))
            else:
                stored.set_result(None)

        return settle

    async def committed(self, name: str) -> None:
        # The request that made a change collects it right away, before any other change of
        # the name: the future found here is that change's.
        stored = self._stored.get(name)
        if stored is None:
            return
        try:
            await asyncio.shield(stored)
        finally:
            if self._stored.get(name) is stored and stored.done():
                del self._stored[name]


def place_partitions(
    snapshot: ClusterSnapshot,
    count: int,
    replication: int,
    *,
    existing: Mapping[int, tuple[int, ...]] | None = None,
    first_partition: int = 0,
) -> dict[int, tuple[int, ...]]:
    """Zone-aware placement over the live brokers, balanced against the other topics' load."""
    brokers = [r for r in snapshot.brokers.values() if not r.shutting_down]
    if replication > len(brokers):
        raise ValueError(f"replication factor {replication} > {len(brokers)} live brokers")
    try:
        from headrace.placement import BrokerSlot, load_of, place_new_partitions
    except ImportError:  # placement not available: Kafka's rack-interleaved round robin
        return round_robin_assignment(brokers, count, replication, first_partition)
    load, leader_load = load_of(t.assignment for t in snapshot.topics.values())
    placed = place_new_partitions(
        [BrokerSlot(r.broker_id, r.rack) for r in sorted(brokers, key=lambda r: r.broker_id)],
        count,
        replication,
        existing={p: list(r) for p, r in (existing or {}).items()},
        first_partition=first_partition,
        load=load,
        leader_load=leader_load,
    )
    return {p: tuple(r) for p, r in placed.items()}
