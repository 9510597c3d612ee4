"""The composition root: the one place that builds a broker and everything it runs.

From one :class:`~headrace.core.config.BrokerConfig` (plus, for a cluster member,
:class:`~headrace.cluster.node.ClusterSettings`) :class:`BrokerApp` builds, in order: storage
(the data directory, claimed and checked, then its logs, recovered), the broker's services and
their layers (local, or etcd-backed through the cluster node), the internal-topics registry, the
group coordinator, one API registry (the broker's, the coordinator's and the cluster's handlers),
the request pipeline with its authorizer and quota manager, the named Kafka listeners, the HTTP
app, and telemetry (metrics, tracing). Nothing else constructs collaborators;
``start()``/``stop()`` run them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from headrace import __version__
from headrace.core.broker import Broker
from headrace.core.config import BrokerConfig, default_connection_limits, file_descriptor_limit
from headrace.core.data_dir import DataDir
from headrace.core.errors import KafkaError, UserError
from headrace.core.internal_topics import InternalTopic, InternalTopics
from headrace.core.listener_specs import check_listeners
from headrace.core.maintenance import run_log_maintenance
from headrace.core.policies import Authorizer, QuotaManager
from headrace.core.requests import ApiRegistry, RequestObserver
from headrace.core.routing import LocalRouter, PartitionRouter
from headrace.groups.consumer.handlers import consumer_group_api_handlers
from headrace.groups.consumer.machine import ConsumerGroupSettings
from headrace.groups.coordinator import CoordinatorNode, GroupConfig, GroupCoordinator
from headrace.groups.handlers import group_api_handlers
from headrace.groups.lag import LagMonitor
from headrace.groups.partitioning import OFFSETS_TOPIC, offsets_partition_for
from headrace.groups.routing import GroupRouter, LocalGroupRouter
from headrace.groups.state import GroupLimits
from headrace.observability.audit import AdminAudit
from headrace.observability.metrics import BrokerMetrics
from headrace.observability.tracing import get_tracer, setup_tracing
from headrace.security.acl_api import acl_api_handlers
from headrace.security.authorizer import AclAuthorizer, AclStore
from headrace.security.handlers import sasl_api_handlers
from headrace.security.oauthbearer import BearerSettings, BearerTokenValidator
from headrace.security.quota_handlers import quota_api_handlers
from headrace.security.quota_manager import ClientQuotaManager
from headrace.security.records import FileSecurityRecords, SecurityRecords
from headrace.security.sasl import OAUTHBEARER, SaslAuthenticator
from headrace.security.scram import ScramCredentials
from headrace.security.tls import TlsContexts
from headrace.server.handlers import broker_api_handlers
from headrace.server.handlers.api_versions import api_versions_handler
from headrace.server.limits import ConnectionRateLimits, ConnectionSlots, RequestBudget
from headrace.server.listeners import ConnectionPolicy, Listener, PlaintextListener, TlsListener
from headrace.server.pipeline import RequestPipeline
from headrace.storage import LogConfig, LogManager, LogManagerAPI, StorageError
from headrace.transactions.coordinator import TransactionConfig, TransactionCoordinator
from headrace.transactions.handlers import transaction_api_handlers
from headrace.transactions.markers import LocalMarkerWriter
from headrace.transactions.records import TRANSACTION_TOPIC
from headrace.transactions.verification import CoordinatorVerifier
from headrace.web.broker_view import BrokerView

if TYPE_CHECKING:
    from aiohttp import web
    from opentelemetry.sdk.trace import TracerProvider

    from headrace.cluster.node import ClusterNode, ClusterSettings
    from headrace.cluster.security_records import EtcdSecurityRecords
    from headrace.cluster.transactions import ClusterTransactionPeers

log = logging.getLogger(__name__)

#: A component's (start, stop), run in order and stopped in reverse.
Service = tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]


class BrokerApp:
    """One running broker. Construct (builds everything), ``await start()``, ``await stop()``."""

    def __init__(
        self,
        config: BrokerConfig,
        *,
        cluster: ClusterSettings | None = None,
        observer: RequestObserver | None = None,
        tracer_provider: TracerProvider | None = None,
        authorizer: Authorizer | None = None,
        quotas: QuotaManager | None = None,
        logs: LogManagerAPI | None = None,
    ) -> None:
        self.config = config
        # -- listeners and TLS are checked first: a mistake there is the operator's to fix
        self.tls = _tls_contexts(config)
        # -- storage: the data dir is this broker's alone until stop() (or the process ends)
        self.data_dir = DataDir.claim(config.data_dir, config.node_id)
        cluster_id = self.data_dir.cluster_id_candidate()
        if cluster is None:
            self.data_dir.adopt_cluster_id(cluster_id)  # a cluster member learns etcd's first
        if logs is None:
            logs = LogManager(
                config.data_dir,
                default_config=LogConfig.from_kafka_configs(config.topic_defaults),
                producer_id_expiration_ms=config.producer_id_expiration_ms,
            )
        # -- telemetry: /metrics always has BrokerMetrics; a caller's other observer keeps
        # the Kafka request hooks (its own metrics then stay at zero).
        if isinstance(observer, BrokerMetrics):
            self.metrics = observer
        else:
            self.metrics = BrokerMetrics(broker_id=config.node_id, version=__version__)
        request_observer: RequestObserver = self.metrics if observer is None else observer
        self._own_tracer_provider = None
        if tracer_provider is None:
            # OTEL_EXPORTER_OTLP_ENDPOINT turns tracing on without any flag; otherwise off.
            tracer_provider = self._own_tracer_provider = setup_tracing(broker_id=config.node_id)
        self.tracer_provider = tracer_provider
        if tracer_provider is not None:
            self.metrics.tracer = get_tracer(tracer_provider)  # Kafka requests become spans
        # -- services and their layers
        self.internal_topics = InternalTopics()
        self.broker = Broker(
            config, logs, self.internal_topics,
            cluster_id=cluster_id, observer=request_observer,
        )
        self.node: ClusterNode | None = None
        if cluster is not None:
            from headrace.cluster.node import attach_cluster

            self.node = attach_cluster(self.broker, cluster)
            self.node.adopt_cluster_id = self.data_dir.adopt_cluster_id
            # ISR changes and replication health reach /metrics.
            self.node.replicas.isr_observer = self.metrics
            self.metrics.replication_source = self.node
        # -- security metadata: one store for every feature (ACLs, credentials, quotas)
        self.security_records = self._build_security_records()
        self.acls: AclStore | None = None
        if authorizer is None and config.authorizer_kind == "acl":
            self.acls = AclStore(self.security_records)
            authorizer = AclAuthorizer(
                self.acls, config.super_users,
                allow_everyone_if_no_acl_found=config.allow_everyone_if_no_acl_found,
            )
        elif isinstance(authorizer, AclAuthorizer):
            self.acls = authorizer.store
        #: The authorizer the pipeline consults (None: everyone may do everything).
        self.authorizer = authorizer
        # -- the Kafka side: named listeners, bound now so the advertised endpoint (which the
        # coordinators hand out) is known while building; they accept clients on start().
        #: One audit trail for the admin actions of both front ends.
        self.audit = AdminAudit()
        # -- SASL authentication against the SCRAM credentials of the security metadata
        self.scram_credentials = ScramCredentials(self.security_records)
        try:
            self.authenticator = _build_authenticator(config, self.scram_credentials)
        except UserError:
            logs.close()
            self.data_dir.release()
            raise
        self.client_quotas = ClientQuotaManager(
            self.security_records, window_num=config.quota_window_num,
            window_seconds=config.quota_window_size_seconds,
        )
        self.metrics.quota_source = self.client_quotas
        self.pipeline = RequestPipeline(
            ApiRegistry(), request_observer, authorizer=authorizer,
            quotas=quotas if quotas is not None else self.client_quotas,
            audit=self.audit, authenticator=self.authenticator,
            failed_authentication_delay_ms=config.connection_failed_authentication_delay_ms,
        )
        kafka_connections, self._http_connections = default_connection_limits(
            file_descriptor_limit()
        )
        if config.max_connections is not None:
            kafka_connections = config.max_connections
        if config.http_max_connections is not None:
            self._http_connections = config.http_max_connections
        self.connection_policy = ConnectionPolicy(
            max_request_bytes=config.max_request_bytes,
            budget=RequestBudget(config.queued_max_request_bytes),
            slots=ConnectionSlots(
                kafka_connections, config.max_connections_per_ip,
                config.max_connections_per_ip_overrides,
            ),
            max_idle_ms=config.connections_max_idle_ms,
            connection_rates=ConnectionRateLimits(
                config.max_connection_creation_rate, self.client_quotas.connection_rate,
                stats=self.client_quotas.stats, window_num=config.quota_window_num,
                window_seconds=config.quota_window_size_seconds,
            ),
        )
        self.listeners: list[Listener] = [
            TlsListener(listener, self.pipeline, self.connection_policy, self.tls)
            if listener.tls and self.tls is not None
            else PlaintextListener(listener, self.pipeline, self.connection_policy)
            for listener in config.kafka_listeners
        ]
        try:
            for listener in self.listeners:
                bind(listener)
        except UserError:
            for listener in self.listeners:
                listener.close_bound()
            logs.close()
            self.data_dir.release()
            raise
        self.broker.kafka_port = self.listeners[0].bound_port
        self.broker.listener_ports = {
            listener.name: listener.bound_port for listener in self.listeners
        }
        if self.node is not None and config.listener.tls and self.tls is not None:
            self.node.peer_tls = self.tls.client  # replication and markers over TLS
        self._services: list[Service] = []
        # -- coordinators
        self.groups = self._build_group_coordinator()
        # -- where the HTTP API's partition and group requests go
        self.router, self.group_router = self._build_routers()
        self.lag = LagMonitor(self.groups, self.router,
                              interval=config.consumer_lag_refresh_seconds)
        self.transactions = self._build_transaction_coordinator()
        self.metrics.transaction_source = self.transactions
        self.metrics.stats_source = BrokerView(self.broker, self.groups, self.lag)
        self.metrics.watch_rebalances(self.groups)
        # -- one registry of every API, served through the pipeline
        self.registry = self.pipeline.registry
        self.registry.register_all(broker_api_handlers(self.broker))
        self.registry.register_all(
            group_api_handlers(
                self.groups, self.broker.partition_exists, self.transactions.coordinator_for,
                self._listener_endpoint,
            )
        )
        self.registry.register_all(
            transaction_api_handlers(
                self.transactions, self.groups, self.broker, self._local_markers
            )
        )
        self.registry.register_all(consumer_group_api_handlers(self.groups))
        self.registry.register_all(acl_api_handlers(self.acls))
        self.registry.register_all(quota_api_handlers(self.client_quotas))
        if self.node is not None:
            from headrace.cluster.handlers import cluster_api_handlers

            self.registry.register_all(cluster_api_handlers(self.node))
        self.registry.register_all(sasl_api_handlers(self.authenticator, self.scram_credentials))
        self.registry.register(api_versions_handler(
            self.registry, {"transaction.version": self.config.transaction_version}
        ))
        if self.node is not None:
            self._services.append((self.node.start, self.node.stop))
        if self._security_follower is not None:
            follower = self._security_follower
            self._services.append((follower.start, follower.stop))
        self._services.append((self._create_scram_users, _nothing))
        self._services.append((self._start_groups, self._stop_groups))
        self._services.append((self.lag.start, self.lag.stop))
        self._started: list[Service] = []
        self._http_runner: web.AppRunner | None = None
        #: The HTTP application once serving (None without an HTTP listener).
        self.http_app: web.Application | None = None
        self._maintenance: asyncio.Task[None] | None = None

    @property
    def kafka_port(self) -> int:
        return self.broker.kafka_port

    @property
    def http_port(self) -> int:
        return self.broker.http_port

    def _build_security_records(self) -> SecurityRecords:
        """A cluster member's security metadata is the cluster's (etcd); a lone broker's is a
        file in its data directory."""
        self._security_follower: EtcdSecurityRecords | None = None
        if self.node is not None:
            from headrace.cluster.security_records import EtcdSecurityRecords

            self._security_follower = EtcdSecurityRecords(self.node.store)
            return self._security_follower
        return FileSecurityRecords(self.config.data_dir)
    def _listener_endpoint(self, node_id: int, listener: str) -> tuple[str, int] | None:
        """A broker's advertised address on ``listener`` (FindCoordinator's answer)."""
        for endpoint in self.broker.metadata.brokers(listener):
            if endpoint.node_id == node_id:
                return endpoint.host, endpoint.port
        return None

    def _build_routers(self) -> tuple[PartitionRouter, GroupRouter]:
        """A lone broker answers every partition and group itself; a cluster member forwards
        the others' to their leader or coordinator over the Kafka protocol."""
        local = LocalRouter(self.broker)
        local_groups = LocalGroupRouter(self.groups, self.config.node_id)
        node = self.node
        if node is None:
            return local, local_groups
        from headrace.cluster.connections import ConnectionPool
        from headrace.cluster.forwarding import ForwardingRouter
        from headrace.cluster.group_forwarding import ForwardingGroupRouter

        pool = ConnectionPool(node.endpoint_of,
                              client_id=f"headrace-forwarder-{self.config.node_id}",
                              tls=node.peer_tls)
        self._services.append((_nothing, pool.close))
        partitions = self.config.offsets_topic_partitions

        def coordinator_of(group_id: str) -> CoordinatorNode | None:
            return node.offsets_leader(offsets_partition_for(group_id, partitions))

        return (ForwardingRouter(local, node.store, self.config.node_id, pool),
                ForwardingGroupRouter(local_groups, node.store, coordinator_of, pool))

    def _build_group_coordinator(self) -> GroupCoordinator:
        broker = self.broker
        endpoint = broker.endpoint

        async def append(partition: int, batch: bytes) -> None:
            try:
                await broker.produce(OFFSETS_TOPIC, partition, batch, internal=True)
            except KafkaError as error:
                # The coordinator maps storage errors to codes; surface ours the same way.
                raise StorageError(str(error)) from error

        config = self.config
        coordinator = GroupCoordinator(
            broker.logs,
            CoordinatorNode(endpoint.node_id, endpoint.host, endpoint.port),
            GroupConfig(
                offsets_topic_partitions=config.offsets_topic_partitions,
                limits=GroupLimits(
                    initial_rebalance_delay_ms=config.group_initial_rebalance_delay_ms
                ),
                own_all_partitions=False,  # the internal-topics registry loads partitions
                consumer=ConsumerGroupSettings(
                    session_timeout_ms=config.group_consumer_session_timeout_ms,
                    heartbeat_interval_ms=config.group_consumer_heartbeat_interval_ms,
                    assignors=config.group_consumer_assignors,
                ),
            ),
            append=append,
            topics=lambda: broker.metadata,  # a clustered broker swaps in the cluster's view
        )
        if self.node is not None:
            coordinator.set_partition_leader(self.node.offsets_leader)
        self.internal_topics.register(
            InternalTopic(
                OFFSETS_TOPIC, config.offsets_topic_partitions, {"cleanup.policy": "compact"}
            ),
            coordinator,
        )
        return coordinator

    def _build_transaction_coordinator(self) -> TransactionCoordinator:
        broker = self.broker
        config = self.config

        async def append(partition: int, batch: bytes) -> None:
            try:
                await broker.produce(TRANSACTION_TOPIC, partition, batch, internal=True)
            except KafkaError as error:
                raise StorageError(str(error)) from error

        self._local_markers = LocalMarkerWriter(broker, self.groups)
        markers: Any = self._local_markers
        self._transaction_peers: ClusterTransactionPeers | None = None
        remote_verifier = None
        if self.node is not None:
            from headrace.cluster.transactions import ClusterTransactionPeers

            peers = ClusterTransactionPeers(self.node, self._local_markers)
            markers = remote_verifier = peers
            self._transaction_peers = peers
        endpoint = broker.endpoint
        coordinator = TransactionCoordinator(
            broker.logs,
            broker.producer_ids,
            markers,
            self.groups.partition_for,
            CoordinatorNode(endpoint.node_id, endpoint.host, endpoint.port),
            TransactionConfig(
                state_log_partitions=config.transaction_state_log_num_partitions,
                max_timeout_ms=config.transaction_max_timeout_ms,
                id_expiration_ms=config.transactional_id_expiration_ms,
                abort_timed_out_interval_ms=(
                    config.transaction_abort_timed_out_transaction_cleanup_interval_ms
                ),
            ),
            append=append,
        )
        if self.node is not None:
            node = self.node
            coordinator.partition_leader = lambda p: node.partition_leader(TRANSACTION_TOPIC, p)
            if remote_verifier is not None:
                remote_verifier.coordinator = coordinator
        broker.transaction_verifier = CoordinatorVerifier(coordinator, remote_verifier)
        self.internal_topics.register(
            InternalTopic(
                TRANSACTION_TOPIC, config.transaction_state_log_num_partitions,
                {"cleanup.policy": "compact"},
                replication_factor=config.transaction_state_log_replication_factor,
                min_insync_replicas=config.transaction_state_log_min_isr,
            ),
            coordinator,
        )
        return coordinator

    async def _create_scram_users(self) -> None:
        """``--scram-user``: credentials created once, at the first start that lacks them."""
        for user, password in self.config.scram_users:
            created = await self.scram_credentials.ensure(
                user, password, [m for m in self.authenticator.mechanisms if m.startswith("SCRAM")]
                or ["SCRAM-SHA-256", "SCRAM-SHA-512"])
            if created:
                log.info("created SCRAM credentials of user %s (%s)", user, ", ".join(created))

    async def _start_groups(self) -> None:
        await self.groups.start()
        await self.transactions.start()
        if self.node is None:
            # A lone broker leads every partition of its internal topics.
            await self.internal_topics.lead({
                (topic.name, partition): 0
                for topic in self.internal_topics.topics()
                for partition in range(topic.partitions)
            })

    async def _stop_groups(self) -> None:
        await self.transactions.stop()
        if self._transaction_peers is not None:
            await self._transaction_peers.close()
        await self.groups.stop()

    async def start(self) -> None:
        """Start the services, then accept clients and serve HTTP."""
        self.broker.freeze()
        for service in self._services:
            await service[0]()
            self._started.append(service)
        for listener in self.listeners:
            await listener.start()
        if self.config.http_host is not None:
            await self._start_http(self.config.http_host, self.config.http_port)
        self._maintenance = asyncio.create_task(
            run_log_maintenance(
                self.broker.logs, self.config.retention_check_seconds, self.broker.observer
            ),
            name="log-maintenance",
        )
        self.broker.started.set()

    async def _start_http(self, host: str, port: int) -> None:
        from aiohttp import web

        from headrace.web import create_app
        from headrace.web.connections import GuardedTCPSite, HttpConnectionGuard

        config = self.config
        # Kept apart from the Kafka listeners' max.connections: HTTP clients cannot use up the
        # descriptors Kafka clients need, nor the other way round.
        guard = HttpConnectionGuard(
            max_connections=self._http_connections,
            header_timeout=config.http_header_timeout_ms / 1000,
        )
        app = create_app(
            self.broker, self.groups, self.metrics, tracer_provider=self.tracer_provider,
            max_body_bytes=config.http_max_body_bytes, audit=self.audit,
            body_timeout=config.http_body_timeout_ms / 1000, connections=guard,
            partition_router=self.router, group_router=self.group_router,
        )
        runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=config.http_keepalive_timeout_ms / 1000
        )
        await runner.setup()
        site = GuardedTCPSite(runner, host, port, guard)
        try:
            await site.start()
        except BaseException as error:
            await runner.cleanup()
            if isinstance(error, OSError):
                raise UserError(
                    f"cannot listen on {host}:{port} (HTTP): {_reason(error)}") from None
            raise
        self._http_runner = runner
        self.http_app = app
        self.broker.http_port = site.port

    async def stop(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        # HTTP first: its v2 consumer instances are Kafka clients of this broker, and closing
        # one commits its offsets through the Kafka listener (closed first, they retried until
        # killed and SIGTERM hung).
        if self._http_runner is not None:
            await self._http_runner.cleanup()
        for listener in self.listeners:
            await listener.stop()
        for _start, stop in reversed(self._started):
            try:
                await stop()
            except Exception:
                log.exception("service failed to stop")
        self._started.clear()
        if self._own_tracer_provider is not None:
            await asyncio.to_thread(self._own_tracer_provider.shutdown)  # exports what is queued
        self.broker.logs.close()
        self.data_dir.release()


async def _nothing() -> None:
    return None


def _tls_contexts(config: BrokerConfig) -> TlsContexts | None:
    """The broker's TLS contexts; UserError for listeners that cannot be served as configured."""
    listeners = config.kafka_listeners
    try:
        check_listeners(listeners, advertised=config.advertised_listeners,
                        inter_broker=config.inter_broker_listener)
    except ValueError as error:
        raise UserError(str(error)) from None
    tls_listeners = [listener.name for listener in listeners if listener.tls]
    if config.tls is None:
        if tls_listeners:
            raise UserError(f"listener {tls_listeners[0]} is TLS: --tls-cert and --tls-key "
                            "are needed")
        return None
    try:
        return TlsContexts(config.tls)
    except ValueError as error:
        raise UserError(str(error)) from None
def _build_authenticator(config: BrokerConfig, credentials: ScramCredentials) -> SaslAuthenticator:
    """The SASL mechanisms SASL listeners offer; a setting that cannot work is a UserError."""
    validator = None
    if config.sasl_oauthbearer_jwks_endpoint_url:
        try:
            validator = BearerTokenValidator(BearerSettings(
                config.sasl_oauthbearer_jwks_endpoint_url,
                expected_issuer=config.sasl_oauthbearer_expected_issuer,
                expected_audience=config.sasl_oauthbearer_expected_audience,
                sub_claim_name=config.sasl_oauthbearer_sub_claim_name,
                clock_skew_seconds=config.sasl_oauthbearer_clock_skew_seconds,
                jwks_endpoint_refresh_ms=config.sasl_oauthbearer_jwks_endpoint_refresh_ms,
            ))
        except ValueError as error:
            raise UserError(f"--sasl-oauthbearer-jwks-endpoint-url: {error}") from None
    if OAUTHBEARER in config.sasl_mechanisms and validator is None:
        raise UserError("--sasl-mechanisms OAUTHBEARER needs "
                        "--sasl-oauthbearer-jwks-endpoint-url (a JWKS file or URL)")
    try:
        return SaslAuthenticator(config.sasl_mechanisms, credentials,
                                 bearer_validator=validator,
                                 max_reauth_ms=config.connections_max_reauth_ms)
    except ValueError as error:
        raise UserError(f"--sasl-mechanisms: {error}") from None


def bind(listener: Listener) -> None:
    """Bind a Kafka listener; a busy or forbidden address is the operator's to fix."""
    try:
        listener.bind()
    except OSError as error:
        config = listener.config
        raise UserError(f"cannot listen on {config.host}:{config.port} (Kafka listener "
                        f"{config.name}): {_reason(error)}") from None


def _reason(error: OSError) -> str:
    """``address already in use``, not ``[Errno 98] error while attempting to bind …``."""
    return os.strerror(error.errno).lower() if error.errno else str(error)
