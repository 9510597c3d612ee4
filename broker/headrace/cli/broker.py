"""``headrace broker``: run one Kafka-compatible broker with its HTTP listener.

Every flag has a ``HEADRACE_*`` environment mirror (flag wins). Once both listeners are bound the
broker logs its start banner — version, broker id, listeners, data dir, cluster id, metadata mode
— as one line in the process's one log format (``--log-format``; in JSON the facts are fields,
with ``"event": "listening"``) and, with ``--ready-file``, writes ``{"event": "listening",
"kafka_port", "http_port", ...}`` atomically to that path, so tests can use port 0.
SIGTERM/SIGINT shut down gracefully: listeners close, logs flush and storage writes its
clean-shutdown marker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

from headrace.cli.arguments import RepeatedList, log_level, non_negative_int, positive_int

NAME = "broker"
HELP = "Run a Kafka-compatible broker (Kafka protocol + HTTP API)."

log = logging.getLogger("headrace.broker")


def _env(name: str, default: str) -> str:
    return os.environ.get(f"HEADRACE_{name}", default)


def _assignors(value: str) -> tuple[str, ...]:
    """``uniform,range`` → a tuple of known assignor names (argparse-friendly errors)."""
    from headrace.groups.consumer.assignors import ASSIGNORS

    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in ASSIGNORS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(ASSIGNORS)}, got {value!r}"
        )
    return names


def parse_host_port(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[v6]:PORT`` → (host, port); argparse-friendly errors."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    host = host.strip("[]") or "0.0.0.0"
    number = int(port)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range in {value!r}")
    return host, number


def _listeners(text: str) -> tuple[Any, ...]:
    """``NAME=PROTOCOL://HOST:PORT,...`` → listeners (argparse-friendly errors)."""
    from headrace.core.listener_specs import parse_listener

    try:
        return tuple(parse_listener(item.strip()) for item in text.split(",") if item.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _advertised(text: str) -> tuple[tuple[str | None, str, int], ...]:
    """``NAME=HOST:PORT,...`` (or a bare ``HOST:PORT``, the first listener's)."""
    from headrace.core.listener_specs import parse_advertised

    try:
        return tuple(parse_advertised(item.strip()) for item in text.split(",") if item.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _listener_name(text: str) -> str:
    from headrace.core.listener_specs import listener_name

    try:
        return listener_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_listener_arguments(parser: argparse.ArgumentParser) -> None:
    """Kafka listeners and TLS (docs/security.md, "Listeners and TLS")."""
    parser.add_argument("--kafka-listen", type=parse_host_port,
                        default=_optional_env("KAFKA_LISTEN"), metavar="HOST:PORT",
                        help="a PLAINTEXT listener named PLAINTEXT; port 0 picks a free port "
                        "(default 127.0.0.1:9092 when no --listener is given)")
    parser.add_argument("--listener", type=_listeners, action=RepeatedList,
                        default=_optional_env("LISTENER"), metavar="NAME=PROTOCOL://HOST:PORT",
                        help="a named Kafka listener, repeatable or comma-separated; PROTOCOL "
                        "is PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (Kafka's listeners)")
    parser.add_argument("--advertised-listener", type=_advertised, action=RepeatedList,
                        default=_optional_env("ADVERTISED_LISTENER"), metavar="NAME=HOST:PORT",
                        help="address clients are told to reach a listener at, repeatable; a "
                        "bare HOST:PORT is the first listener's (default: the listener's "
                        "address; Kafka's advertised.listeners)")
    parser.add_argument("--inter-broker-listener", type=_listener_name,
                        default=_optional_env("INTER_BROKER_LISTENER"), metavar="NAME",
                        help="the listener other brokers replicate and forward over (default: "
                        "the first; Kafka's inter.broker.listener.name)")
    parser.add_argument("--tls-cert", type=Path, default=_optional_env("TLS_CERT"),
                        metavar="PEM", help="the broker's certificate chain, for SSL and "
                        "SASL_SSL listeners and as client certificate towards other brokers; "
                        "re-read when it changes")
    parser.add_argument("--tls-key", type=Path, default=_optional_env("TLS_KEY"),
                        metavar="PEM", help="the private key of --tls-cert (unencrypted PEM)")
    parser.add_argument("--tls-ca", type=Path, default=_optional_env("TLS_CA"), metavar="PEM",
                        help="CA certificates trusted for client certificates and for other "
                        "brokers' (default: the system's trust store)")
    parser.add_argument("--tls-client-auth", choices=("none", "requested", "required"),
                        default=_env("TLS_CLIENT_AUTH", "none"),
                        help="whether SSL listeners ask clients for a certificate "
                        "(Kafka's ssl.client.auth)")
    parser.add_argument("--ssl-principal-mapping-rules", metavar="RULES",
                        default=_env("SSL_PRINCIPAL_MAPPING_RULES", "DEFAULT"),
                        help="client certificate subject to user name: RULE:pattern/"
                        "replacement/[LU],...,DEFAULT (Kafka's ssl.principal.mapping.rules)")


def _bool_env(name: str, default: bool) -> bool:
    raw = os.environ.get(f"HEADRACE_{name}")
    if raw is None:
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _count(text: str) -> int:
    """A positive integer flag value (argparse turns the error into one usage line)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _count_or_unbounded(text: str) -> int | None:
    """A positive integer, or -1 for "no limit" (Kafka's convention)."""
    if text.strip() == "-1":
        return None
    return _count(text)


def _ip_overrides(text: str) -> dict[str, int]:
    from headrace.server.limits import parse_ip_overrides

    try:
        return parse_ip_overrides(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _optional_env(name: str) -> str | None:
    return os.environ.get(f"HEADRACE_{name}")


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Connection and request limits (Kafka's names; docs/operations.md explains them)."""
    mib = 1024 * 1024
    parser.add_argument("--socket-request-max-bytes", "--max-request-bytes", metavar="BYTES",
                        dest="max_request_bytes", type=_count,
                        default=_env("SOCKET_REQUEST_MAX_BYTES",
                                     _env("MAX_REQUEST_BYTES", str(100 * mib))),
                        help="largest Kafka request accepted; a larger size prefix closes the "
                        "connection (socket.request.max.bytes, default 100 MiB)")
    parser.add_argument("--queued-max-request-bytes", metavar="BYTES", type=_count_or_unbounded,
                        default=_env("QUEUED_MAX_REQUEST_BYTES", str(100 * mib)),
                        help="request bytes all Kafka connections may hold at once before "
                        "reading pauses; -1: unbounded (queued.max.request.bytes, default "
                        "100 MiB)")
    parser.add_argument("--connections-max-idle-ms", metavar="MS", type=_count_or_unbounded,
                        default=_env("CONNECTIONS_MAX_IDLE_MS", "600000"),
                        help="close Kafka connections idle this long; -1: never "
                        "(connections.max.idle.ms)")
    parser.add_argument("--max-connections", metavar="N", type=_count,
                        default=_optional_env("MAX_CONNECTIONS"),
                        help="Kafka connections open at once; more are closed at once "
                        "(max.connections, default: half of the file descriptor limit)")
    parser.add_argument("--max-connections-per-ip", metavar="N", type=_count_or_unbounded,
                        default=_optional_env("MAX_CONNECTIONS_PER_IP"),
                        help="Kafka connections per client address (max.connections.per.ip, "
                        "default unlimited)")
    parser.add_argument("--max-connections-per-ip-overrides", type=_ip_overrides,
                        default=_env("MAX_CONNECTIONS_PER_IP_OVERRIDES", ""),
                        metavar="HOST:N,...",
                        help="per-address exceptions (max.connections.per.ip.overrides)")
    parser.add_argument("--max-connection-creation-rate", metavar="N",
                        type=_count_or_unbounded,
                        default=_optional_env("MAX_CONNECTION_CREATION_RATE"),
                        help="new Kafka connections accepted per second, all listeners "
                        "together; faster ones wait (KIP-612's max.connection.creation.rate, "
                        "default unlimited)")
    parser.add_argument("--quota-window-num", metavar="N", type=_count,
                        default=_env("QUOTA_WINDOW_NUM", "11"),
                        help="samples client quotas and connection rates are measured over "
                        "(quota.window.num)")
    parser.add_argument("--quota-window-size-seconds", metavar="SECONDS", type=_count,
                        default=_env("QUOTA_WINDOW_SIZE_SECONDS", "1"),
                        help="length of each of those samples (quota.window.size.seconds)")
    parser.add_argument("--http-max-connections", metavar="N", type=_count,
                        default=_optional_env("HTTP_MAX_CONNECTIONS"),
                        help="HTTP connections open at once, kept apart from the Kafka limit "
                        "(default: a quarter of the file descriptor limit)")
    parser.add_argument("--http-max-body-bytes", metavar="BYTES", type=_count,
                        default=_env("HTTP_MAX_BODY_BYTES", str(8 * mib)),
                        help="largest HTTP request body (aiohttp's client_max_size; 413 "
                        "beyond; default 8 MiB)")
    parser.add_argument("--http-header-timeout-ms", metavar="MS", type=_count,
                        default=_env("HTTP_HEADER_TIMEOUT_MS", "20000"),
                        help="an HTTP request's line and headers must arrive within this")
    parser.add_argument("--http-body-timeout-ms", metavar="MS", type=_count,
                        default=_env("HTTP_BODY_TIMEOUT_MS", "60000"),
                        help="an HTTP request body may stall this long")
    parser.add_argument("--http-keepalive-timeout-ms", metavar="MS", type=_count,
                        default=_env("HTTP_KEEPALIVE_TIMEOUT_MS", "75000"),
                        help="close an idle keep-alive HTTP connection after this long")


def _principal(text: str) -> str:
    """``User:NAME`` (argparse-friendly errors)."""
    kind, sep, name = text.partition(":")
    if not sep or not kind or not name:
        raise argparse.ArgumentTypeError(f"expected TYPE:NAME (User:alice), got {text!r}")
    return text


def _super_users(values: list[str]) -> tuple[str, ...]:
    from headrace.core.errors import UserError

    for value in values:
        try:
            _principal(value)
        except argparse.ArgumentTypeError as error:
            raise UserError(f"--super-user / HEADRACE_SUPER_USERS: {error}") from None
    return tuple(values)


def add_authorizer_arguments(parser: argparse.ArgumentParser) -> None:
    """ACLs (docs/security.md): Kafka's authorizer.class.name, super.users and
    allow.everyone.if.no.acl.found."""
    parser.add_argument("--authorizer", choices=("acl", "none"),
                        default=_env("AUTHORIZER", "none"),
                        help="acl: Kafka's ACLs decide every request, denying what no ACL "
                        "allows; none: everyone may do everything (default)")
    env_super = [v.strip() for v in _env("SUPER_USERS", "").split(",") if v.strip()]
    # The environment's values are checked when the broker starts (a bad one is one line).
    parser.add_argument("--super-user", dest="super_users", action=_Repeated, type=_principal,
                        metavar="User:NAME", default=env_super,
                        help="a principal the ACL authorizer always allows (repeatable; "
                        "HEADRACE_SUPER_USERS: comma-separated; Kafka's super.users)")
    parser.add_argument("--allow-everyone-if-no-acl-found",
                        action=argparse.BooleanOptionalAction,
                        default=_bool_env("ALLOW_EVERYONE_IF_NO_ACL_FOUND", False),
                        help="with --authorizer acl, a resource no ACL names is open to "
                        "everyone (Kafka's allow.everyone.if.no.acl.found, default false)")


def _sasl_mechanisms(value: str) -> tuple[str, ...]:
    from headrace.security.sasl import SUPPORTED_MECHANISMS

    names = tuple(name.strip().upper() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in SUPPORTED_MECHANISMS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(SUPPORTED_MECHANISMS)}, got {value!r}")
    return names


def _scram_user(value: str) -> tuple[str, str]:
    name, sep, password = value.partition(":")
    if not sep or not name or not password:
        raise argparse.ArgumentTypeError(f"expected NAME:PASSWORD, got {value!r}")
    return name, password


def _scram_users(value: str) -> list[tuple[str, str]]:
    """The environment's form: ``NAME:PASSWORD`` items separated by whitespace."""
    return [_scram_user(item) for item in value.split()]


class _Repeated(argparse.Action):
    """A repeatable flag whose default (from the environment) the first use replaces."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        given = getattr(namespace, f"_{self.dest}_given", False)
        items = list(getattr(namespace, self.dest)) if given else []
        setattr(namespace, self.dest, [*items, values])
        setattr(namespace, f"_{self.dest}_given", True)


def add_sasl_arguments(parser: argparse.ArgumentParser) -> None:
    """SASL authentication (docs/security.md): Kafka's names, KIP-368 re-authentication."""
    from headrace.security.oauthbearer import audience_list

    parser.add_argument("--sasl-mechanisms", metavar="MECHANISM,...", type=_sasl_mechanisms,
                        default=_env("SASL_MECHANISMS", "SCRAM-SHA-256,SCRAM-SHA-512"),
                        help="what SASL listeners offer: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, "
                        "OAUTHBEARER (sasl.enabled.mechanisms)")
    parser.add_argument("--scram-user", dest="scram_users", metavar="NAME:PASSWORD",
                        action=_Repeated, type=_scram_user,
                        default=_scram_users(_env("SCRAM_USERS", "")),
                        help="create this user's SCRAM credentials at start when absent "
                        "(repeatable; HEADRACE_SCRAM_USERS: space-separated)")
    parser.add_argument("--connections-max-reauth-ms", metavar="MS", type=non_negative_int,
                        default=_env("CONNECTIONS_MAX_REAUTH_MS", "0"),
                        help="SASL sessions last this long, then the client must re-"
                        "authenticate (KIP-368, connections.max.reauth.ms; 0: forever)")
    parser.add_argument("--connection-failed-authentication-delay-ms", metavar="MS",
                        type=non_negative_int,
                        default=_env("CONNECTION_FAILED_AUTHENTICATION_DELAY_MS", "100"),
                        help="answer a failed authentication this late, then close "
                        "(connection.failed.authentication.delay.ms)")
    parser.add_argument("--sasl-oauthbearer-jwks-endpoint-url", metavar="URL",
                        default=_optional_env("SASL_OAUTHBEARER_JWKS_ENDPOINT_URL"),
                        help="JWKS (http(s) or file URL) OAUTHBEARER tokens are checked "
                        "against (sasl.oauthbearer.jwks.endpoint.url)")
    parser.add_argument("--sasl-oauthbearer-expected-issuer", metavar="ISSUER",
                        default=_optional_env("SASL_OAUTHBEARER_EXPECTED_ISSUER"),
                        help="required iss claim (sasl.oauthbearer.expected.issuer)")
    parser.add_argument("--sasl-oauthbearer-expected-audience", metavar="AUDIENCE,...",
                        type=audience_list,
                        default=_env("SASL_OAUTHBEARER_EXPECTED_AUDIENCE", ""),
                        help="the aud claim must name one of these "
                        "(sasl.oauthbearer.expected.audience)")
    parser.add_argument("--sasl-oauthbearer-sub-claim-name", metavar="CLAIM",
                        default=_env("SASL_OAUTHBEARER_SUB_CLAIM_NAME", "sub"),
                        help="claim naming the principal (sasl.oauthbearer.sub.claim.name)")
    parser.add_argument("--sasl-oauthbearer-clock-skew-seconds", metavar="SECONDS",
                        type=non_negative_int,
                        default=_env("SASL_OAUTHBEARER_CLOCK_SKEW_SECONDS", "30"),
                        help="leeway on exp/nbf/iat (sasl.oauthbearer.clock.skew.seconds)")
    parser.add_argument("--sasl-oauthbearer-jwks-endpoint-refresh-ms", metavar="MS",
                        type=positive_int,
                        default=_env("SASL_OAUTHBEARER_JWKS_ENDPOINT_REFRESH_MS", "3600000"),
                        help="refetch an http(s) JWKS this often "
                        "(sasl.oauthbearer.jwks.endpoint.refresh.ms)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path(_env("DATA_DIR", "./headrace-data")),
                        help="directory for topic logs and broker state (HEADRACE_DATA_DIR)")
    add_listener_arguments(parser)
    parser.add_argument("--broker-id", type=non_negative_int, default=_env("BROKER_ID", "1"),
                        help="this broker's id, unique in its cluster (Kafka's node.id)")
    parser.add_argument("--http-listen", type=parse_host_port,
                        default=_env("HTTP_LISTEN", "127.0.0.1:8080"), metavar="HOST:PORT",
                        help="HTTP API, metrics and probes listener; port 0 picks a free port")
    add_connection_arguments(parser)
    add_sasl_arguments(parser)
    parser.add_argument("--default-partitions", type=positive_int,
                        default=_env("DEFAULT_PARTITIONS", "1"),
                        help="partitions of auto-created topics and CreateTopics with -1")
    parser.add_argument("--offsets-topic-partitions", type=positive_int,
                        default=_env("OFFSETS_TOPIC_PARTITIONS", "50"),
                        help="partitions of __consumer_offsets when it is created")
    parser.add_argument("--group-initial-rebalance-delay-ms", type=non_negative_int,
                        default=_env("GROUP_INITIAL_REBALANCE_DELAY_MS", "3000"),
                        help="how long an empty consumer group waits for more members before "
                        "its first rebalance; each joiner extends it, up to the rebalance "
                        "timeout (Kafka's group.initial.rebalance.delay.ms; 0 = at once)")
    parser.add_argument("--group-consumer-session-timeout-ms", type=positive_int,
                        default=_env("GROUP_CONSUMER_SESSION_TIMEOUT_MS", "45000"),
                        help="a KIP-848 (group.protocol=consumer) member that sends no "
                        "heartbeat for this long leaves its group "
                        "(Kafka's group.consumer.session.timeout.ms)")
    parser.add_argument("--group-consumer-heartbeat-interval-ms", type=positive_int,
                        default=_env("GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS", "5000"),
                        help="how often KIP-848 members heartbeat; below the session timeout "
                        "(Kafka's group.consumer.heartbeat.interval.ms)")
    parser.add_argument("--group-consumer-assignors", type=_assignors,
                        default=_env("GROUP_CONSUMER_ASSIGNORS", "uniform,range"),
                        help="server-side assignors KIP-848 groups may use, the first the "
                        "default: uniform, range (Kafka's group.consumer.assignors)")
    for flag, default, text in (
        ("transaction-state-log-num-partitions", "50",
         "partitions of __transaction_state when it is created"),
        ("transaction-state-log-replication-factor", "3",
         "replication factor of __transaction_state (a cluster creates it once this many "
         "brokers are up)"),
        ("transaction-state-log-min-isr", "2",
         "min.insync.replicas of __transaction_state (capped at its replication factor)"),
        ("transaction-max-timeout-ms", "900000",
         "longest transaction.timeout.ms a producer may ask for (larger: "
         "INVALID_TRANSACTION_TIMEOUT)"),
        ("transactional-id-expiration-ms", "604800000",
         "forget a transactional id idle this long"),
        ("transaction-abort-timed-out-transaction-cleanup-interval-ms", "10000",
         "how often transactions open past their timeout are aborted"),
    ):
        parser.add_argument(f"--{flag}", type=positive_int,
                            default=_env(flag.upper().replace("-", "_"), default),
                            help=f"{text} (Kafka's {flag.replace('-', '.')})")
    parser.add_argument("--transaction-version", type=int, choices=(0, 1, 2),
                        default=_env("TRANSACTION_VERSION", "2"),
                        help="the transaction.version feature level advertised to clients: 2 "
                        "has Kafka 4.x clients bump the producer epoch per transaction and "
                        "add partitions by producing (KIP-890 part 2); 0 or 1: the "
                        "AddPartitionsToTxn protocol of earlier clients (Kafka's "
                        "transaction.version feature, set there with kafka-features)")
    parser.add_argument("--producer-id-expiration-ms", type=positive_int,
                        default=_env("PRODUCER_ID_EXPIRATION_MS", "86400000"),
                        help="forget an idempotent producer's state after this long without a "
                        "write (Kafka's producer.id.expiration.ms)")
    parser.add_argument("--auto-create-topics", action=argparse.BooleanOptionalAction,
                        default=_bool_env("AUTO_CREATE_TOPICS", True),
                        help="create unknown topics on Metadata/Produce")
    parser.add_argument("--auto-create-topics-per-request", type=positive_int,
                        default=_env("AUTO_CREATE_TOPICS_PER_REQUEST", "1000"),
                        help="most unknown topics one Metadata request auto-creates; the rest "
                        "get UNKNOWN_TOPIC_OR_PARTITION until the client asks again")
    parser.add_argument("--max-broker-partitions", type=positive_int,
                        default=_env("MAX_BROKER_PARTITIONS", "100000"),
                        help="partitions this broker may hold; creations past it get "
                        "POLICY_VIOLATION (KIP-578's max.broker.partitions)")
    parser.add_argument("--max-topic-partitions", type=positive_int,
                        default=_env("MAX_TOPIC_PARTITIONS", "10000"),
                        help="partitions one topic may have; more get INVALID_PARTITIONS "
                        "(max.topic.partitions)")
    add_authorizer_arguments(parser)
    parser.add_argument("--log-level", type=log_level, default=_env("LOG_LEVEL", "info"),
                        help="debug, info, warning, error or critical (HEADRACE_LOG_LEVEL)")
    parser.add_argument("--log-format", choices=("text", "json"),
                        default=_env("LOG_FORMAT", "text"),
                        help="one format for every log line of the process (docs/logging.md)")
    parser.add_argument("--ready-file", type=Path,
                        default=os.environ.get("HEADRACE_READY_FILE"),
                        help="write {kafka_port, http_port, ...} JSON here once listening")
    # Cluster membership flags (--metadata etc.) belong to headrace.cluster.
    from headrace.cluster.options import add_cluster_arguments

    add_cluster_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from headrace.observability.logging import setup

    setup(args.log_level, args.log_format)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional on some platforms
        return asyncio.run(_serve(args))
    return int(uvloop.run(_serve(args)))


async def _serve(args: argparse.Namespace) -> int:
    from headrace.app import BrokerApp
    from headrace.cluster.options import settings_from_args
    from headrace.core.config import BrokerConfig
    from headrace.core.gc_pauses import LONG_LIVED

    http_host, http_port = args.http_listen
    listeners = _listener_configs(args)
    kafka_host = listeners[0].host
    advertised_listeners = args.advertised_listener or ()
    advertised = [(host, port) for name, host, port in advertised_listeners if name is None]
    config = BrokerConfig(
        data_dir=args.data_dir,
        node_id=args.broker_id,
        kafka_host=kafka_host,
        kafka_port=listeners[0].port,
        advertised_host=advertised[-1][0] if advertised else None,
        advertised_port=advertised[-1][1] if advertised else None,
        listeners=listeners,
        advertised_listeners={name: (host, port)
                              for name, host, port in advertised_listeners if name},
        inter_broker_listener=args.inter_broker_listener,
        tls=_tls_config(args),
        http_host=http_host,
        http_port=http_port,
        max_request_bytes=args.max_request_bytes,
        queued_max_request_bytes=args.queued_max_request_bytes,
        connections_max_idle_ms=args.connections_max_idle_ms,
        max_connections=args.max_connections,
        max_connections_per_ip=args.max_connections_per_ip,
        max_connections_per_ip_overrides=args.max_connections_per_ip_overrides,
        max_connection_creation_rate=args.max_connection_creation_rate,
        quota_window_num=args.quota_window_num,
        quota_window_size_seconds=args.quota_window_size_seconds,
        http_max_connections=args.http_max_connections,
        http_max_body_bytes=args.http_max_body_bytes,
        http_header_timeout_ms=args.http_header_timeout_ms,
        http_body_timeout_ms=args.http_body_timeout_ms,
        http_keepalive_timeout_ms=args.http_keepalive_timeout_ms,
        default_partitions=args.default_partitions,
        auto_create_topics=args.auto_create_topics,
        auto_create_topics_per_request=args.auto_create_topics_per_request,
        max_broker_partitions=args.max_broker_partitions,
        max_topic_partitions=args.max_topic_partitions,
        offsets_topic_partitions=args.offsets_topic_partitions,
        group_initial_rebalance_delay_ms=args.group_initial_rebalance_delay_ms,
        group_consumer_session_timeout_ms=args.group_consumer_session_timeout_ms,
        group_consumer_heartbeat_interval_ms=args.group_consumer_heartbeat_interval_ms,
        group_consumer_assignors=args.group_consumer_assignors,
        producer_id_expiration_ms=args.producer_id_expiration_ms,
        transaction_state_log_num_partitions=args.transaction_state_log_num_partitions,
        transaction_state_log_replication_factor=args.transaction_state_log_replication_factor,
        transaction_state_log_min_isr=args.transaction_state_log_min_isr,
        transaction_max_timeout_ms=args.transaction_max_timeout_ms,
        transactional_id_expiration_ms=args.transactional_id_expiration_ms,
        transaction_abort_timed_out_transaction_cleanup_interval_ms=(
            args.transaction_abort_timed_out_transaction_cleanup_interval_ms
        ),
        authorizer_kind=args.authorizer,
        super_users=_super_users(args.super_users),
        allow_everyone_if_no_acl_found=args.allow_everyone_if_no_acl_found,
        sasl_mechanisms=args.sasl_mechanisms,
        scram_users=tuple(args.scram_users),
        connections_max_reauth_ms=args.connections_max_reauth_ms,
        connection_failed_authentication_delay_ms=args.connection_failed_authentication_delay_ms,
        sasl_oauthbearer_jwks_endpoint_url=args.sasl_oauthbearer_jwks_endpoint_url,
        sasl_oauthbearer_expected_issuer=args.sasl_oauthbearer_expected_issuer,
        sasl_oauthbearer_expected_audience=tuple(args.sasl_oauthbearer_expected_audience),
        sasl_oauthbearer_sub_claim_name=args.sasl_oauthbearer_sub_claim_name,
        sasl_oauthbearer_clock_skew_seconds=args.sasl_oauthbearer_clock_skew_seconds,
        sasl_oauthbearer_jwks_endpoint_refresh_ms=args.sasl_oauthbearer_jwks_endpoint_refresh_ms,
        transaction_version=args.transaction_version,
    )
    app = BrokerApp(config, cluster=settings_from_args(args))  # no --metadata: single broker
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await app.start()
    except BaseException:
        await app.stop()  # a busy HTTP port or a foreign cluster: release what started
        raise
    LONG_LIVED.install()  # recovery opened every log: freeze them out of the GC's passes
    endpoint = app.broker.endpoint
    ready: dict[str, Any] = {
        "event": "listening",
        "broker_id": config.node_id,
        "kafka_host": kafka_host,
        "kafka_port": app.kafka_port,
        "http_port": app.http_port,
        "advertised": f"{endpoint.host}:{endpoint.port}",
        "listeners": dict(app.broker.listener_ports),
        "pid": os.getpid(),
    }
    try:
        if args.ready_file is not None:
            _write_ready_file(args.ready_file, ready)
        _log_banner(app, args, ready)
        await stop.wait()
        log.info("shutting down")
    finally:
        if app.node is not None:
            await app.node.prepare_shutdown()  # controlled shutdown: leadership moves first
        await app.stop()
    return 0


def _listener_configs(args: argparse.Namespace) -> tuple[Any, ...]:
    """--kafka-listen (a PLAINTEXT listener named PLAINTEXT, first) and the --listener ones;
    127.0.0.1:9092 when neither is given."""
    from headrace.core.config import DEFAULT_LISTENER, ListenerConfig, SecurityProtocol

    listeners = list(args.listener or ())
    if args.kafka_listen is not None or not listeners:
        host, port = args.kafka_listen or ("127.0.0.1", 9092)
        listeners.insert(0, ListenerConfig(DEFAULT_LISTENER, SecurityProtocol.PLAINTEXT,
                                           host, port))
    return tuple(listeners)


def _tls_config(args: argparse.Namespace) -> Any:
    from headrace.core.config import ClientAuth, TlsConfig
    from headrace.core.errors import UserError

    if args.tls_cert is None and args.tls_key is None:
        if args.tls_ca is not None:
            raise UserError("--tls-ca needs --tls-cert and --tls-key")
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise UserError("--tls-cert and --tls-key go together")
    return TlsConfig(args.tls_cert, args.tls_key, args.tls_ca,
                     ClientAuth(args.tls_client_auth), args.ssl_principal_mapping_rules)


def _log_banner(app: Any, args: argparse.Namespace, ready: dict[str, Any]) -> None:
    """The start banner: one log line saying what this process is and where it listens."""
    from headrace import __version__

    listeners = ", ".join(
        f"{listener.name}://{listener.host}:{app.broker.listener_ports[listener.name]}"
        + (f" ({listener.security_protocol})" if listener.security_protocol != listener.name
           else "")
        for listener in app.config.kafka_listeners
    )
    if app.http_port:
        listeners += f", HTTP://{args.http_listen[0]}:{app.http_port}"
    metadata = args.metadata or "none (single broker)"
    data_dir = str(Path(args.data_dir).resolve())
    log.info(
        "headrace %s broker %d started: listeners %s (advertised %s), data dir %s, "
        "cluster id %s, metadata %s", __version__, ready["broker_id"], listeners,
        ready["advertised"], data_dir, app.broker.cluster_id, metadata,
        extra={**ready, "version": __version__, "listeners": listeners, "data_dir": data_dir,
               "cluster_id": app.broker.cluster_id, "metadata": metadata},
    )


def _write_ready_file(path: Path, ready: dict[str, Any]) -> None:
    """Atomically, so a watcher never reads half of it."""
    from headrace.core.errors import UserError

    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_text(json.dumps(ready))
        os.replace(temporary, path)
    except OSError as error:
        raise UserError(f"cannot write --ready-file {path}: {error.strerror}") from None
