"""``headrace produce``: send lines from stdin (or a file) to a topic over the Kafka protocol.

Each line is one record: its value, or with ``--key-separator`` KEY SEP VALUE; with
``--input json`` a JSON object with ``key``, ``value`` and per-record ``headers`` (the shape
``consume --format json`` prints, so one can feed the other). ``-H`` adds headers to every record.
Delivery is confirmed before exit: the exit code is 1 when any record failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from typing import Any

from headrace.cli.arguments import non_negative_int
from headrace.cli.kafka_tools import (
    CliError,
    add_connection_arguments,
    client_config,
    cluster_metadata,
    describe_kafka_error,
    emit,
    make_client,
    progress,
    run_guarded,
)
from headrace.cli.record_format import bytes_from_json

NAME = "produce"
HELP = "Produce records from stdin lines (or a file) to a topic."

PROGRESS_EVERY = 100_000

Headers = list[tuple[str, bytes | None]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic")
    parser.add_argument("--key-separator", "-K", metavar="SEP",
                        help="split each line into KEY SEP VALUE at the first SEP")
    parser.add_argument("--header", "-H", action="append", default=[], metavar="NAME=VALUE",
                        help="header added to every record (repeatable; a name may repeat)")
    parser.add_argument("--input", choices=("text", "json"), default="text",
                        help="text: a line is a value (or KEY SEP VALUE); json: a line is "
                             '{"key": …, "value": …, "headers": …}')
    parser.add_argument("--acks", choices=("0", "1", "all"), default="all")
    parser.add_argument("--partition", "-p", type=non_negative_int,
                        help="send every record to this partition")
    parser.add_argument("--file", "-f", type=argparse.FileType("rb"), default=None,
                        help="read lines from FILE instead of stdin")
    parser.add_argument("--compression", choices=("none", "gzip", "snappy", "lz4", "zstd"),
                        default="none")
    parser.add_argument("--progress", action="store_true",
                        help=f"report progress every {PROGRESS_EVERY:,} records on stderr "
                             "(default when stderr is a terminal)")
    add_connection_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return run_guarded(_produce, args)


def _produce(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException, Producer

    common_headers = parse_headers(args.header)
    if args.input == "json" and args.key_separator:
        raise CliError("--key-separator applies to --input text only")
    separator = args.key_separator.encode() if args.key_separator else None
    producer = make_client(Producer, client_config(
        args, acks=args.acks, **{"linger.ms": 5, "compression.type": args.compression,
                                 "message.timeout.ms": max(int(args.timeout * 1000), 1000)}))
    cluster_metadata(args, producer)  # an unreachable broker is reported now, not per record
    failures: list[str] = []
    delivered = 0

    def on_delivery(error: Any, message: Any) -> None:
        nonlocal delivered
        if error is not None:
            failures.append(describe_kafka_error(error))
        else:
            delivered += 1

    source = args.file if args.file is not None else sys.stdin.buffer
    show_progress = args.progress or sys.stderr.isatty()
    sent = 0
    started = time.monotonic()
    extra: dict[str, Any] = {}
    if args.partition is not None:
        extra["partition"] = args.partition
    for number, raw in enumerate(source, start=1):
        line = raw.rstrip(b"\r\n")
        if args.input == "json":
            if not line.strip():
                continue
            key, value, own_headers = parse_json_record(line, number)
        else:
            key, value, own_headers = None, line, []
            if separator is not None:
                if separator not in line:
                    raise CliError(f"line {number} has no key separator {args.key_separator!r}")
                key, value = line.split(separator, 1)
        headers = own_headers + common_headers
        while True:
            try:
                producer.produce(args.topic, value=value, key=key, headers=headers or None,
                                 on_delivery=on_delivery, **extra)
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.1)
            except KafkaException as exc:
                raise CliError(describe_kafka_error(exc.args[0])) from None
        sent += 1
        producer.poll(0)
        if show_progress and sent % PROGRESS_EVERY == 0:
            progress(f"{sent:,} records sent ({sent / (time.monotonic() - started):,.0f}/s)")
    remaining = producer.flush(args.timeout)
    if remaining:
        failures.append(f"{remaining} record(s) not confirmed within {args.timeout:g} s")
    summary = {"topic": args.topic, "sent": sent, "delivered": delivered,
               "failed": sent - delivered}
    emit(args, summary, lambda: progress(f"{delivered} of {sent} record(s) delivered to "
                                         f"{args.topic}"))
    if failures:
        raise CliError(f"{len(failures)} failure(s), first: {failures[0]}")
    return 0


def parse_headers(items: Iterable[str]) -> Headers:
    """``-H NAME=VALUE`` flags in order (Kafka headers may repeat a name)."""
    headers: Headers = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"--header must look like NAME=VALUE, got {item!r}")
        headers.append((name, value.encode()))
    return headers


def parse_json_record(line: bytes, number: int) -> tuple[bytes | None, bytes | None, Headers]:
    """One ``--input json`` line → key, value, headers (``headers`` as consume prints them,
    ``[{"name": …, "value": …}]``, or as an object ``{"name": "value"}``)."""
    try:
        record = json.loads(line)
        if not isinstance(record, dict):
            raise ValueError("expected a JSON object")
        unknown = set(record) - {"key", "value", "headers", "topic", "partition", "offset",
                                 "timestamp"}
        if unknown:
            raise ValueError(f"unknown field {sorted(unknown)[0]!r}")
        key = bytes_from_json(record.get("key"), "key")
        value = bytes_from_json(record.get("value"), "value")
        raw_headers = record.get("headers") or []
        if isinstance(raw_headers, dict):
            raw_headers = [{"name": n, "value": v} for n, v in raw_headers.items()]
        if not isinstance(raw_headers, list):
            raise ValueError("headers must be a list or an object")
        headers: Headers = []
        for header in raw_headers:
            if (not isinstance(header, dict) or not isinstance(header.get("name"), str)
                    or set(header) - {"name", "value"}):
                raise ValueError('each header must be {"name": …, "value": …}')
            headers.append((header["name"], bytes_from_json(header.get("value"), "header value")))
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        raise CliError(f"line {number}: {error}") from None
    return key, value, headers
