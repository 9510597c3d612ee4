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

from headrace.cli.arguments import log_level, non_negative_int, positive_int

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
    parser.add_argument("--broker-id", type=non_negative_int, default=_env("BROKER_ID", "1"),
                        help="this broker's id, unique in its cluster (Kafka's node.id)")
    parser.add_argument("--http-listen", type=parse_host_port,
                        default=_env("HTTP_LISTEN", "127.0.0.1:8080"), metavar="HOST:PORT",
                        help="HTTP API, metrics and probes listener; port 0 picks a free port")
    parser.add_argument("--max-request-bytes", type=positive_int,
                        default=_env("MAX_REQUEST_BYTES", str(100 * 1024 * 1024)),
                        help="largest Kafka request frame accepted (larger: connection closed)")
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
        auto_create_topics_per_request=args.auto_create_topics_per_request,
        max_broker_partitions=args.max_broker_partitions,
        max_topic_partitions=args.max_topic_partitions,
        offsets_topic_partitions=args.offsets_topic_partitions,
        group_initial_rebalance_delay_ms=args.group_initial_rebalance_delay_ms,
        producer_id_expiration_ms=args.producer_id_expiration_ms,
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


def _log_banner(app: Any, args: argparse.Namespace, ready: dict[str, Any]) -> None:
    """The start banner: one log line saying what this process is and where it listens."""
    from headrace import __version__

    listener = app.config.listener
    listeners = f"{listener.name}://{listener.host}:{app.kafka_port}"
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
