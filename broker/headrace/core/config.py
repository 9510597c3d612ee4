"""The broker's one typed configuration object, from which the composition root builds everything.

``headrace broker`` turns its flags (and their ``HEADRACE_*`` mirrors) into a
:class:`BrokerConfig`; tests and benchmarks build one directly. Listeners are named, as in Kafka
(``listeners``, ``advertised.listeners``, ``inter.broker.listener.name``): the name is what admin
answers and the request context report, and the security protocol says which transport (TLS or
not) and authentication (SASL or not) a listener needs.
"""

from __future__ import annotations

import enum
import resource
from dataclasses import dataclass, field
from pathlib import Path

from headrace.core.topics import DEFAULT_MAX_BROKER_PARTITIONS, DEFAULT_MAX_TOPIC_PARTITIONS
from headrace.storage import DEFAULT_PRODUCER_ID_EXPIRATION_MS


class SecurityProtocol(enum.StrEnum):
    """Kafka's ``security.protocol`` values."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    """One Kafka listener: ``NAME=PROTOCOL://HOST:PORT`` in Kafka's ``listeners`` syntax."""

    name: str
    security_protocol: SecurityProtocol
    host: str
    port: int

    @property
    def tls(self) -> bool:
        """Whether connections to this listener are TLS (SSL and SASL_SSL)."""
        return self.security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)


DEFAULT_LISTENER = "PLAINTEXT"


class ClientAuth(enum.StrEnum):
    """Kafka's ``ssl.client.auth``: whether a TLS listener asks clients for a certificate."""

    NONE = "none"
    REQUESTED = "requested"
    REQUIRED = "required"


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """PEM files of the broker's TLS (re-read when they change on disk) and Kafka's settings."""

    #: The broker's certificate chain (ssl.keystore.location) and its private key.
    cert: Path
    key: Path
    #: CAs trusted for client certificates and, inter-broker, for the other brokers'
    #: (ssl.truststore.location); None: the system's trust store.
    ca: Path | None = None
    client_auth: ClientAuth = ClientAuth.NONE
    #: Kafka's ssl.principal.mapping.rules.
    principal_mapping_rules: str = "DEFAULT"

MiB = 1024 * 1024


def file_descriptor_limit() -> int:
    """This process's soft RLIMIT_NOFILE (what ``ulimit -n`` says)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def default_connection_limits(fd_limit: int) -> tuple[int, int]:
    """(Kafka, HTTP) connection limits when none is configured: half of the file descriptors
    for Kafka clients, a quarter for HTTP clients, and a quarter kept for segment files,
    replication and etcd, so neither side can use up the descriptors the other needs."""
    return max(16, fd_limit // 2), max(16, fd_limit // 4)


@dataclass
class BrokerConfig:
    """Everything ``headrace broker`` flags configure."""

    data_dir: Path
    node_id: int = 1
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    #: The Kafka listener's name (what clients and other brokers see it as).
    listener_name: str = DEFAULT_LISTENER
    #: None: advertise the listen address (with the bound port when listening on port 0).
    advertised_host: str | None = None
    advertised_port: int | None = None
    #: Kafka's ``listeners``; empty: the one PLAINTEXT listener of kafka_host/kafka_port.
    listeners: tuple[ListenerConfig, ...] = ()
    #: Kafka's ``advertised.listeners``: listener name -> (host, port) clients are told.
    #: Unnamed ones (advertised_host/port) are the first listener's.
    advertised_listeners: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: Kafka's ``inter.broker.listener.name``; None: the first listener.
    inter_broker_listener: str | None = None
    #: Needed by SSL and SASL_SSL listeners (and by an SSL inter-broker listener's clients).
    tls: TlsConfig | None = None
    #: None: no HTTP listener (tests of the Kafka side alone).
    http_host: str | None = "127.0.0.1"
    http_port: int = 8080
    #: Largest HTTP request body accepted (413 beyond): aiohttp's client_max_size.
    http_max_body_bytes: int = 8 * MiB
    #: HTTP connections open at once; None: a quarter of the file descriptor limit.
    http_max_connections: int | None = None
    #: A request's head (line and headers) must arrive within this after its first byte.
    http_header_timeout_ms: int = 20_000
    #: A request body may pause this long between bytes (a whole buffered body: in total).
    http_body_timeout_ms: int = 60_000
    #: A keep-alive connection between requests is closed after this long.
    http_keepalive_timeout_ms: int = 75_000
    #: Kafka's socket.request.max.bytes: a larger request size prefix closes the connection.
    max_request_bytes: int = 100 * MiB
    #: Kafka's queued.max.request.bytes: request bytes all connections may hold at once
    #: before reading pauses. None: unbounded (Kafka's -1, its default; ours bounds memory).
    queued_max_request_bytes: int | None = 100 * MiB
    #: Kafka's connections.max.idle.ms (None: never close idle connections).
    connections_max_idle_ms: int | None = 600_000
    #: Kafka's max.connections; None: half of the file descriptor limit.
    max_connections: int | None = None
    #: Kafka's max.connections.per.ip (None: unlimited, Kafka's default) and its overrides.
    max_connections_per_ip: int | None = None
    max_connections_per_ip_overrides: dict[str, int] = field(default_factory=dict)
    #: KIP-612's max.connection.creation.rate: new connections per second, all listeners
    #: together (None: unlimited); per-IP rates are quotas (docs/security.md).
    max_connection_creation_rate: int | None = None
    #: Kafka's quota.window.num and quota.window.size.seconds: client quotas and connection
    #: rates are measured over this many windows of this many seconds.
    quota_window_num: int = 11
    quota_window_size_seconds: int = 1
    default_partitions: int = 1
    auto_create_topics: bool = True
    #: At most this many unknown topics are auto-created per Metadata request; the request's
    #: other unknown topics get UNKNOWN_TOPIC_OR_PARTITION (clients ask again).
    auto_create_topics_per_request: int = 1000
    #: KIP-578's max.broker.partitions: partitions this broker may hold (POLICY_VIOLATION).
    max_broker_partitions: int = DEFAULT_MAX_BROKER_PARTITIONS
    #: max.topic.partitions: partitions one topic may have (INVALID_PARTITIONS).
    max_topic_partitions: int = DEFAULT_MAX_TOPIC_PARTITIONS
    offsets_topic_partitions: int = 50
    #: Kafka's group.initial.rebalance.delay.ms: how long an Empty group waits for more joiners
    #: before its first rebalance (see docs/groups.md).
    group_initial_rebalance_delay_ms: int = 3000
    #: KIP-848 groups (docs/configuration.md): Kafka's group.consumer.session.timeout.ms,
    #: group.consumer.heartbeat.interval.ms and group.consumer.assignors (first = default).
    group_consumer_session_timeout_ms: int = 45_000
    group_consumer_heartbeat_interval_ms: int = 5_000
    group_consumer_assignors: tuple[str, ...] = ("uniform", "range")
    retention_check_seconds: float = 30.0
    #: How often a group coordinator recomputes its groups' lag for /metrics.
    consumer_lag_refresh_seconds: float = 5.0
    #: Kafka's producer.id.expiration.ms: idempotent producer state idle this long is forgotten.
    producer_id_expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS
    #: Kafka's transaction.state.log.num.partitions / .replication.factor / .min.isr: how
    #: __transaction_state is created (the replication settings apply on a cluster).
    transaction_state_log_num_partitions: int = 50
    transaction_state_log_replication_factor: int = 3
    transaction_state_log_min_isr: int = 2
    #: Kafka's transaction.max.timeout.ms: the longest transaction.timeout.ms a producer gets.
    transaction_max_timeout_ms: int = 900_000
    #: Kafka's transactional.id.expiration.ms: an idle transactional id is forgotten.
    transactional_id_expiration_ms: int = 604_800_000
    #: Kafka's transaction.abort.timed.out.transaction.cleanup.interval.ms.
    transaction_abort_timed_out_transaction_cleanup_interval_ms: int = 10_000
    #: Kafka's transaction.version feature level advertised in ApiVersions: 2 has Kafka 4.x
    #: clients use KIP-890 part 2 (an epoch bump per transaction, no AddPartitionsToTxn).
    transaction_version: int = 2
    topic_defaults: dict[str, str] = field(default_factory=dict)
    #: Kafka's sasl.enabled.mechanisms: what SASL listeners offer.
    sasl_mechanisms: tuple[str, ...] = ("SCRAM-SHA-256", "SCRAM-SHA-512")
    #: ``--scram-user``: (name, password) credentials created at start when absent.
    scram_users: tuple[tuple[str, str], ...] = ()
    #: Kafka's connections.max.reauth.ms (KIP-368; 0: sessions never expire).
    connections_max_reauth_ms: int = 0
    #: Kafka's connection.failed.authentication.delay.ms.
    connection_failed_authentication_delay_ms: int = 100
    #: Kafka's sasl.oauthbearer.* (OAUTHBEARER needs the JWKS endpoint URL).
    sasl_oauthbearer_jwks_endpoint_url: str | None = None
    sasl_oauthbearer_expected_issuer: str | None = None
    sasl_oauthbearer_expected_audience: tuple[str, ...] = ()
    sasl_oauthbearer_sub_claim_name: str = "sub"
    sasl_oauthbearer_clock_skew_seconds: int = 30
    sasl_oauthbearer_jwks_endpoint_refresh_ms: int = 3_600_000

    #: ``acl``: Kafka's ACL authorizer (deny by default); ``none``: everyone may do everything.
    authorizer_kind: str = "none"
    #: Kafka's super.users: principals (``User:admin``) the ACL authorizer always allows.
    super_users: tuple[str, ...] = ()
    #: Kafka's allow.everyone.if.no.acl.found: a resource no ACL names is open to everyone.
    allow_everyone_if_no_acl_found: bool = False

    @property
    def kafka_listeners(self) -> tuple[ListenerConfig, ...]:
        """Every Kafka listener, in order (the first is the one ``kafka_port`` reports)."""
        if self.listeners:
            return self.listeners
        return (ListenerConfig(
            self.listener_name, SecurityProtocol.PLAINTEXT, self.kafka_host, self.kafka_port
        ),)

    @property
    def listener(self) -> ListenerConfig:
        """The inter-broker listener: the one other brokers (replication, forwarding,
        transaction markers) connect to, and the one this broker registers first."""
        listeners = self.kafka_listeners
        for listener in listeners:
            if listener.name == self.inter_broker_listener:
                return listener
        return listeners[0]

    def advertised(self, listener: ListenerConfig, bound_port: int) -> tuple[str, int]:
        """Where clients are told to reach ``listener`` (bound on ``bound_port``)."""
        named = self.advertised_listeners.get(listener.name)
        if named is not None:
            return named[0], named[1] or bound_port
        if listener == self.kafka_listeners[0] and (self.advertised_host or self.advertised_port):
            return (self.advertised_host or listener.host, self.advertised_port or bound_port)
        return listener.host, bound_port
