"""``headrace consume``: print records of a topic, from the beginning, an offset, a timestamp or
a consumer group's committed position.

Without ``--group`` the command assigns partitions itself (nothing is committed); with it, it
joins the group and commits what it printed. Stops after ``--count`` records or when no record
arrived for ``--idle-timeout`` seconds (default: run until interrupted).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import sys
import time
from typing import Any

from headrace.cli.arguments import non_negative_int, positive_float, positive_int
from headrace.cli.kafka_tools import (
    CliError,
    add_connection_arguments,
    admin_client,
    client_config,
    describe_kafka_error,
    make_client,
    parse_timestamp_ms,
    progress,
    run_guarded,
    topic_partitions,
)

NAME = "consume"
HELP = "Print records of a topic (from the beginning, an offset, a timestamp or a group)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true")
    start.add_argument("--offset", type=non_negative_int, metavar="N", help="start at offset N")
    start.add_argument("--timestamp", metavar="TIME",
                       help="start at the first record at/after TIME (ms or ISO 8601)")
    parser.add_argument("--partition", "-p", type=non_negative_int, action="append",
                        help="only these partitions (repeatable; default all)")
    parser.add_argument("--group", "-g", help="consume as a member of this group and commit")
    parser.add_argument("--count", "-n", type=positive_int, help="stop after N records")
    parser.add_argument("--idle-timeout", type=positive_float, metavar="SECONDS",
                        help="stop when no record arrived for this long")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text: the value per line; json: one object per record")
    parser.add_argument("--print-key", action="store_true", help="text format: KEY<sep>VALUE")
    parser.add_argument("--key-separator", default="\t")
    add_connection_arguments(parser, output=False)


def run(args: argparse.Namespace) -> int:
    return run_guarded(_consume, args)


def _render(message: Any, args: argparse.Namespace) -> str:
    key, value = message.key(), message.value()
    if args.format == "json":
        rendered: str = json.dumps({
            "topic": message.topic(), "partition": message.partition(),
            "offset": message.offset(), "timestamp": message.timestamp()[1],
            "key": _text_or_base64(key), "value": _text_or_base64(value),
            "headers": [{"name": n, "value": _text_or_base64(v)}
                        for n, v in (message.headers() or [])],
        }, ensure_ascii=False)
        return rendered
    text = "" if value is None else value.decode("utf-8", errors="replace")
    if args.print_key:
        key_text = "" if key is None else key.decode("utf-8", errors="replace")
        separator: str = args.key_separator
        return key_text + separator + text
    return text


def _text_or_base64(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


def _consume(args: argparse.Namespace) -> int:
    from confluent_kafka import (
        OFFSET_BEGINNING,
        OFFSET_END,
        Consumer,
        KafkaException,
        TopicPartition,
    )

    grouped = args.group is not None
    consumer = make_client(Consumer, client_config(
        args, **{"group.id": args.group or "headrace-cli", "enable.auto.commit": False,
                 "auto.offset.reset": "earliest" if args.from_beginning else "latest",
                 "enable.partition.eof": False}))
    try:
        partitions = topic_partitions(args, admin_client(args), args.topic, args.partition)
        if grouped and args.offset is None and args.timestamp is None and not args.partition:
            consumer.subscribe([args.topic])
        else:
            if args.timestamp is not None:
                start_ms = parse_timestamp_ms(args.timestamp, "--timestamp")
                wanted = [TopicPartition(args.topic, p, start_ms) for p in partitions]
                assignment = consumer.offsets_for_times(wanted, timeout=args.timeout)
                assignment = [tp if tp.offset >= 0 else TopicPartition(tp.topic, tp.partition,
                                                                       OFFSET_END)
                              for tp in assignment]
            else:
                start = (args.offset if args.offset is not None
                         else OFFSET_BEGINNING if args.from_beginning else OFFSET_END)
                assignment = [TopicPartition(args.topic, p, start) for p in partitions]
            consumer.assign(assignment)
        printed = 0
        last_record = time.monotonic()
        out = sys.stdout
        while args.count is None or printed < args.count:
            message = consumer.poll(0.2)
            if message is None:
                if (args.idle_timeout is not None
                        and time.monotonic() - last_record >= args.idle_timeout):
                    break
                continue
            if message.error() is not None:
                raise CliError(describe_kafka_error(message.error()))
            out.write(_render(message, args) + "\n")
            printed += 1
            last_record = time.monotonic()
            if grouped:
                consumer.commit(message=message, asynchronous=True)
        out.flush()
        if grouped:
            with contextlib.suppress(KafkaException):  # nothing new to commit
                consumer.commit(asynchronous=False)
        progress(f"{printed} record(s) consumed from {args.topic}")
        return 0
    finally:
        consumer.close()
