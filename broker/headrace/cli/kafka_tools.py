"""Shared plumbing of the client commands (topics, produce, consume, groups, cluster).

They talk to any broker over the Kafka protocol with confluent-kafka, print human tables by
default or JSON with ``--output json``, report progress on stderr, and keep exit codes scripts can
trust: 0 ok, 1 error (one ``headrace: error: …`` line on stderr), 2 usage (argparse). The
confluent-kafka imports happen inside functions so ``headrace --help`` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

from headrace.cli import profiles
from headrace.cli.arguments import positive_float
from headrace.core.errors import UserError


class CliError(UserError):
    """A client command's failure (bad input, or the broker said no): one line, exit code 1."""


def add_connection_arguments(parser: argparse.ArgumentParser, *, output: bool = True) -> None:
    parser.add_argument("--bootstrap-server", "-b", metavar="HOST:PORT[,...]",
                        help="brokers to connect to (default: HEADRACE_BOOTSTRAP, the profile's, "
                             f"else {profiles.DEFAULT_BOOTSTRAP})")
    parser.add_argument("--profile", metavar="NAME",
                        help="connection profile from the config file (HEADRACE_PROFILE; "
                             "see docs/cli.md)")
    parser.add_argument("--property", "-X", action="append", default=[], metavar="KEY=VALUE",
                        help="extra librdkafka client property (repeatable)")
    parser.add_argument("--sasl-username", metavar="USER",
                        help="authenticate with SASL as USER (default: HEADRACE_SASL_USERNAME, "
                        "the profile's sasl table)")
    parser.add_argument("--sasl-password", metavar="PASSWORD",
                        help="the SASL password (better: HEADRACE_SASL_PASSWORD, out of ps)")
    parser.add_argument("--sasl-mechanism", metavar="MECHANISM",
                        help="PLAIN, SCRAM-SHA-256 (default) or SCRAM-SHA-512")
    parser.add_argument("--timeout", type=positive_float, metavar="SECONDS",
                        help="how long to wait for the broker (default: the profile's, else "
                             f"{profiles.DEFAULT_TIMEOUT:g})")
    if output:
        parser.add_argument("--output", "-o", choices=("table", "json"), default="table",
                            help="output format (default table)")


async def at_bootstrap(args: argparse.Namespace,
                       action: Callable[[argparse.Namespace, str, int], Awaitable[int]]) -> int:
    """``action(args, host, port)`` against the first ``--bootstrap-server``, for the commands
    that speak the Kafka protocol themselves (APIs librdkafka's admin client lacks), bounded by
    ``--timeout``; an unreachable broker is one clear error."""
    first = args.bootstrap_server.split(",")[0]
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        raise CliError(f"--bootstrap-server must be HOST:PORT, got {args.bootstrap_server!r}")
    try:
        return await asyncio.wait_for(action(args, host, int(port)), args.timeout)
    except (OSError, TimeoutError) as error:
        raise CliError(f"cannot reach {args.bootstrap_server}: {error or 'timed out'}") from None


async def broker_request(host: str, port: int, request: Any, seconds: float) -> Any:
    """One Kafka request on a connection of its own."""
    from headrace.cluster.wire import BrokerConnection

    connection = BrokerConnection(host, port, client_id="headrace-cli", timeout=seconds)
    try:
        return await connection.request(request)
    finally:
        await connection.close()


def parse_key_values(items: Iterable[str], what: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` → ``{"a": "1", "b": "2"}``; CliError names a malformed item."""
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"{what} must look like KEY=VALUE, got {item!r}")
        result[key] = value
    return result


def resolve_connection(args: argparse.Namespace) -> None:
    """Fill ``bootstrap_server``, ``timeout`` and ``profile_properties`` from the flags, the
    environment and the profiles file (:mod:`headrace.cli.profiles`)."""
    connection = profiles.resolve(bootstrap=args.bootstrap_server, timeout=args.timeout,
                                  profile=args.profile)
    args.bootstrap_server = connection.bootstrap
    args.timeout = connection.timeout
    args.profile_properties = dict(connection.properties)
    username = getattr(args, "sasl_username", None) or os.environ.get("HEADRACE_SASL_USERNAME")
    password = getattr(args, "sasl_password", None) or os.environ.get("HEADRACE_SASL_PASSWORD")
    mechanism = (getattr(args, "sasl_mechanism", None)
                 or os.environ.get("HEADRACE_SASL_MECHANISM"))
    if username:
        if not password:
            raise CliError("--sasl-username needs a password: --sasl-password or "
                           "HEADRACE_SASL_PASSWORD")
        args.profile_properties.update(profiles.sasl_properties(
            username, password, mechanism, args.profile_properties))
    elif mechanism:
        args.profile_properties["sasl.mechanism"] = mechanism


def client_config(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    timeout_ms = int(args.timeout * 1000)
    errors: list[Any] = []
    args.client_errors = errors
    config: dict[str, Any] = {
        "bootstrap.servers": args.bootstrap_server,
        "socket.timeout.ms": max(timeout_ms, 1000),
        "logger": _quiet_logger(),
        # A refused authentication never fails a request, it only leaves it unanswered:
        # remembered here so the timeout can say why.
        "error_cb": errors.append,
    }
    config.update(extra)
    config.update(getattr(args, "profile_properties", {}))
    config.update(parse_key_values(args.property, "--property"))
    return config


def _quiet_logger() -> logging.Logger:
    """librdkafka logs connection retries; keep them out of command output (errors are raised)."""
    logger = logging.getLogger("headrace.cli.librdkafka")
    logger.propagate = False
    logger.setLevel(logging.CRITICAL)
    return logger


def admin_module() -> Any:
    """``confluent_kafka.admin``, untyped: its names are re-exported without ``__all__``."""
    return importlib.import_module("confluent_kafka.admin")


def admin_client(args: argparse.Namespace) -> Any:
    client = make_client(admin_module().AdminClient, client_config(args))
    args.poll_client = client.poll  # serves error_cb while a future is awaited
    return client


def make_client(factory: Callable[[dict[str, Any]], Any], config: dict[str, Any]) -> Any:
    """A confluent-kafka client; a configuration librdkafka refuses (``-X`` typo, bad value)
    is a CliError naming the property."""
    from confluent_kafka import KafkaException

    try:
        return factory(config)
    except KafkaException as exc:
        error: Any = exc.args[0] if exc.args else exc
        text = error.str() if callable(getattr(error, "str", None)) else str(error)
        raise CliError(f"bad client configuration: {text}") from None
    except (TypeError, ValueError) as exc:
        raise CliError(f"bad client configuration: {exc}") from None


def wait_future(future: Any, args: argparse.Namespace) -> Any:
    """The result of an AdminClient future, as a CliError on a Kafka error or timeout."""
    import concurrent.futures

    from confluent_kafka import KafkaError, KafkaException

    no_answer = f"no answer from {args.bootstrap_server} within {args.timeout:g} s"
    deadline = time.monotonic() + args.timeout
    try:
        while True:
            try:
                return future.result(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
            except concurrent.futures.TimeoutError:
                poll = getattr(args, "poll_client", None)
                if poll is not None:
                    poll(0)
                refusal = _authentication_error(args)
                if refusal is not None:  # a refused login: say so at once, not at the timeout
                    raise CliError(refusal) from None
                if time.monotonic() >= deadline:
                    raise
    except concurrent.futures.TimeoutError:
        raise CliError(no_answer) from None
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        # librdkafka's own timeout (it may fire before ours) says nothing of where it waited.
        if getattr(error, "code", lambda: None)() in (
                KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            refusal = _authentication_error(args)
            if refusal is not None:
                raise CliError(refusal) from None
            raise CliError(f"{no_answer} ({describe_kafka_error(error)})") from None
        raise CliError(describe_kafka_error(error)) from None


def _authentication_error(args: argparse.Namespace) -> str | None:
    from confluent_kafka import KafkaError

    for error in getattr(args, "client_errors", []):
        if error.code() == KafkaError._AUTHENTICATION:
            return f"authentication failed: {error.str()}"
    return None


def describe_kafka_error(error: Any) -> str:
    name = getattr(error, "name", None)
    text = getattr(error, "str", None)
    if callable(name) and callable(text):
        return f"{name()}: {text()}"
    return str(error)


def cluster_metadata(args: argparse.Namespace, client: Any) -> Any:
    """The cluster's metadata (brokers, every topic) from any client; a CliError when no
    broker answers. Always a request for all topics: librdkafka asks a Metadata request naming
    a topic to create it, and reads must never create topics."""
    from confluent_kafka import KafkaException

    try:
        return client.list_topics(timeout=args.timeout)
    except KafkaException as exc:
        raise CliError(f"cannot reach {args.bootstrap_server}: "
                       f"{describe_kafka_error(exc.args[0])}") from None


def topic_partitions(args: argparse.Namespace, admin: Any, topic_name: str,
                     wanted: Iterable[int] | None = None) -> list[int]:
    """The sorted partition ids of an existing topic, or of ``wanted`` among them (a CliError
    names a missing topic or the first unknown partition)."""
    topic = cluster_metadata(args, admin).topics.get(topic_name)
    if topic is None or topic.error is not None:
        raise CliError(f"topic {topic_name} does not exist")
    partitions = sorted(topic.partitions)
    if wanted:
        unknown = set(wanted) - set(partitions)
        if unknown:
            raise CliError(f"topic {topic_name} has no partition {sorted(unknown)[0]}")
        partitions = sorted(wanted)
    return partitions


def parse_timestamp_ms(text: str, option: str) -> int:
    """Milliseconds since the epoch from ``text`` given as milliseconds or ISO 8601 (``Z`` ok);
    a CliError names ``option`` when it is neither."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"{option} must be milliseconds or ISO 8601, got {text!r}") from None
    return int(moment.timestamp() * 1000)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
                stream: TextIO | None = None) -> None:
    """Left-aligned columns with upper-case headings, like kafka-topics.sh."""
    out = stream or sys.stdout
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    headings = [column.upper().replace("_", "-") for column in columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headings)]
    for line in [headings, *cells]:
        out.write("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def emit(args: argparse.Namespace, data: Any, table: Callable[[], None]) -> None:
    """JSON to stdout with ``--output json``, else the human rendering."""
    if getattr(args, "output", "table") == "json":
        json.dump(data, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        table()


def progress(message: str) -> None:
    """A progress line on stderr (never mixed into stdout data)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def run_guarded(action: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; Ctrl-C is exit code 130 (a CliError reaches ``headrace.cli.main``)."""
    try:
        if hasattr(args, "profile"):
            resolve_connection(args)
        return action(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `| head` closed stdout: not an error for the user
        return 0


__all__ = [
    "CliError",
    "add_connection_arguments",
    "admin_client",
    "admin_module",
    "client_config",
    "cluster_metadata",
    "emit",
    "make_client",
    "parse_key_values",
    "parse_timestamp_ms",
    "print_table",
    "progress",
    "resolve_connection",
    "run_guarded",
    "topic_partitions",
    "wait_future",
]
