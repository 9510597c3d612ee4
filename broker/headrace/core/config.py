"""The broker's one typed configuration object, from which the composition root builds everything.

``headrace broker`` turns its flags (and their ``HEADRACE_*`` mirrors) into a
:class:`BrokerConfig`; tests and benchmarks build one directly. Listeners are named, as in Kafka
(``PLAINTEXT`` today): the name is what admin answers and the request context report, and the
security protocol says which transport and authentication a listener needs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from headrace.core.topics import DEFAULT_MAX_BROKER_PARTITIONS, DEFAULT_MAX_TOPIC_PARTITIONS
from headrace.storage import DEFAULT_PRODUCER_ID_EXPIRATION_MS


class SecurityProtocol(enum.StrEnum):
    """Kafka's ``security.protocol`` values; only PLAINTEXT is served so far."""

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


DEFAULT_LISTENER = "PLAINTEXT"


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
    #: None: no HTTP listener (tests of the Kafka side alone).
    http_host: str | None = "127.0.0.1"
    http_port: int = 8080
    #: Largest HTTP request body accepted (413 beyond).
    http_max_body_bytes: int = 8 * 1024 * 1024
    max_request_bytes: int = 100 * 1024 * 1024
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
    topic_defaults: dict[str, str] = field(default_factory=dict)

    @property
    def listener(self) -> ListenerConfig:
        """The Kafka listener (one today; issue 17 adds more)."""
        return ListenerConfig(
            self.listener_name, SecurityProtocol.PLAINTEXT, self.kafka_host, self.kafka_port
        )
