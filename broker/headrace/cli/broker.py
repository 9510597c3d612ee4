"""``headrace broker``: run one Kafka-compatible broker with its HTTP listener.

Every flag has a ``HEADRACE_*`` environment mirror (flag wins). Once both listeners are bound the
broker logs one JSON line ``{"event": "listening", ...}`` on stdout and, with ``--ready-file``,
writes the same JSON atomically to that path, so tests can use port 0. SIGTERM/SIGINT shut down
gracefully: listeners close, logs flush and storage writes its clean-shutdown marker.
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

NAME = "broker"
HELP = "Run a Kafka-compatible broker (Kafka protocol + HTTP API)."

log = logging.getLogger("headrace.broker")


def _env(name: str, default: str) -> str:
    return os.environ.get(f"HEADRACE_{name}", default)


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


def _bool_env(name: str, default: bool) -> bool:
    raw = os.environ.get(f"HEADRACE_{name}")
    if raw is None:
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path(_env("DATA_DIR", "./headrace-data")),
                        help="directory for topic logs and broker state (HEADRACE_DATA_DIR)")
    parser.add_argument("--kafka-listen", type=parse_host_port,
                        default=_env("KAFKA_LISTEN", "127.0.0.1:9092"), metavar="HOST:PORT",
                        help="Kafka protocol listener; port 0 picks a free port")
    parser.add_argument("--advertised-listener", type=parse_host_port,
                        default=os.environ.get("HEADRACE_ADVERTISED_LISTENER"),
                        metavar="HOST:PORT",
                        help="address clients are told to connect to (default: the listener)")
    parser.add_argument("--broker-id", type=int, default=int(_env("BROKER_ID", "1")))
    parser.add_argument("--http-listen", type=parse_host_port,
                        default=_env("HTTP_LISTEN", "127.0.0.1:8080"), metavar="HOST:PORT",
                        help="HTTP API, metrics and probes listener; port 0 picks a free port")
    parser.add_argument("--max-request-bytes", type=int,
                        default=int(_env("MAX_REQUEST_BYTES", str(100 * 1024 * 1024))),
                        help="largest Kafka request frame accepted (larger: connection closed)")
    parser.add_argument("--default-partitions", type=int,
                        default=int(_env("DEFAULT_PARTITIONS", "1")),
                        help="partitions of auto-created topics and CreateTopics with -1")
    parser.add_argument("--offsets-topic-partitions", type=int,
                        default=int(_env("OFFSETS_TOPIC_PARTITIONS", "50")),
                        help="partitions of __consumer_offsets when it is created")
    parser.add_argument("--group-initial-rebalance-delay-ms", type=int,
                        default=int(_env("GROUP_INITIAL_REBALANCE_DELAY_MS", "3000")),
                        help="how long an empty consumer group waits for more members before "
                        "its first rebalance; each joiner extends it, up to the rebalance "
                        "timeout (Kafka's group.initial.rebalance.delay.ms; 0 = at once)")
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
        parser.add_argument(f"--{flag}", type=int,
                            default=int(_env(flag.upper().replace("-", "_"), default)),
                            help=f"{text} (Kafka's {flag.replace('-', '.')})")
    parser.add_argument("--producer-id-expiration-ms", type=int,
                        default=int(_env("PRODUCER_ID_EXPIRATION_MS", "86400000")),
                        help="forget an idempotent producer's state after this long without a "
                        "write (Kafka's producer.id.expiration.ms)")
    parser.add_argument("--auto-create-topics", action=argparse.BooleanOptionalAction,
                        default=_bool_env("AUTO_CREATE_TOPICS", True),
                        help="create unknown topics on Metadata/Produce")
    parser.add_argument("--log-level", default=_env("LOG_LEVEL", "info"))
    parser.add_argument("--log-format", choices=("text", "json"),
                        default=_env("LOG_FORMAT", "text"))
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

    kafka_host, kafka_port = args.kafka_listen
    http_host, http_port = args.http_listen
    advertised = args.advertised_listener
    config = BrokerConfig(
        data_dir=args.data_dir,
        node_id=args.broker_id,
        kafka_host=kafka_host,
        kafka_port=kafka_port,
        advertised_host=advertised[0] if advertised else None,
        advertised_port=advertised[1] if advertised else None,
        http_host=http_host,
        http_port=http_port,
        max_request_bytes=args.max_request_bytes,
        default_partitions=args.default_partitions,
        auto_create_topics=args.auto_create_topics,
        offsets_topic_partitions=args.offsets_topic_partitions,
        group_initial_rebalance_delay_ms=args.group_initial_rebalance_delay_ms,
        producer_id_expiration_ms=args.producer_id_expiration_ms,
        transaction_state_log_num_partitions=args.transaction_state_log_num_partitions,
        transaction_state_log_replication_factor=args.transaction_state_log_replication_factor,
        transaction_state_log_min_isr=args.transaction_state_log_min_isr,
        transaction_max_timeout_ms=args.transaction_max_timeout_ms,
        transactional_id_expiration_ms=args.transactional_id_expiration_ms,
        transaction_abort_timed_out_transaction_cleanup_interval_ms=(
            args.transaction_abort_timed_out_transaction_cleanup_interval_ms
        ),
    )
    app = BrokerApp(config, cluster=settings_from_args(args))  # no --metadata: single broker
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await app.start()
    endpoint = app.broker.endpoint
    ready: dict[str, Any] = {
        "event": "listening",
        "broker_id": config.node_id,
        "kafka_host": kafka_host,
        "kafka_port": app.kafka_port,
        "http_port": app.http_port,
        "advertised": f"{endpoint.host}:{endpoint.port}",
        "pid": os.getpid(),
    }
    print(json.dumps(ready), flush=True)
    if args.ready_file is not None:
        temporary = args.ready_file.with_name(args.ready_file.name + ".tmp")
        temporary.write_text(json.dumps(ready))
        os.replace(temporary, args.ready_file)
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        if app.node is not None:
            await app.node.prepare_shutdown()  # controlled shutdown: leadership moves first
        await app.stop()
    return 0
