"""``headrace produce``: send lines from stdin (or a file) to a topic over the Kafka protocol.

Each line is one record; with ``--key-separator`` the text before the first separator is the
key. Delivery is confirmed before exit: the exit code is 1 when any record failed.
"""

from __future__ import annotations

import argparse
import sys
import time
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
    parse_key_values,
    progress,
    run_guarded,
)

NAME = "produce"
HELP = "Produce records from stdin lines (or a file) to a topic."

PROGRESS_EVERY = 100_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic")
    parser.add_argument("--key-separator", "-K", metavar="SEP",
                        help="split each line into KEY SEP VALUE at the first SEP")
    parser.add_argument("--header", "-H", action="append", default=[], metavar="NAME=VALUE",
                        help="header added to every record (repeatable)")
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

    headers: list[tuple[str, str | bytes | None]] = [
        (k, v.encode()) for k, v in parse_key_values(args.header, "--header").items()]
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
    for raw in source:
        line = raw.rstrip(b"\r\n")
        key: bytes | None = None
        if separator is not None:
            if separator not in line:
                raise CliError(f"line {sent + 1} has no key separator {args.key_separator!r}")
            key, line = line.split(separator, 1)
        while True:
            try:
                producer.produce(args.topic, value=line, key=key, headers=headers or None,
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
