"""``headrace consume``: print records of a topic, from the beginning, an offset (absolute, or
the last N of each partition as kcat's ``-o -N``), a timestamp or a group's committed position.

Without ``--group`` the command assigns partitions itself (nothing is committed); with it, it
joins the group and commits what it printed. Stops after ``--count`` records or when no record
arrived for ``--idle-timeout`` seconds (default: run until interrupted). Reading never creates
the topic: a missing one is an error, and the consumer runs with auto-creation off.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from dataclasses import dataclass
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
from headrace.cli.record_format import parse_format, render

NAME = "consume"
HELP = "Print records of a topic (from the beginning, an offset, a timestamp or a group)."


@dataclass(frozen=True, slots=True)
class StartOffset:
    """Where ``--offset`` starts: an absolute offset, the last ``from_end`` records, or an end."""

    offset: int | None = None
    from_end: int | None = None
    beginning: bool = False


def parse_start_offset(text: str) -> StartOffset:
    """``N``, ``-N`` (the last N of each partition), ``beginning`` or ``end`` (argparse type)."""
    if text in ("beginning", "end"):
        return StartOffset(beginning=text == "beginning", from_end=0 if text == "end" else None)
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected N, -N, beginning or end, got {text!r}") from None
    return StartOffset(from_end=-number) if number < 0 else StartOffset(offset=number)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true")
    start.add_argument("--offset", "-o", type=parse_start_offset, metavar="N|-N|beginning|end",
                       help="start at offset N, or N records before each partition's end (-N)")
    start.add_argument("--timestamp", metavar="TIME",
                       help="start at the first record at/after TIME (ms or ISO 8601)")
    parser.add_argument("--partition", "-p", type=non_negative_int, action="append",
                        help="only these partitions (repeatable; default all)")
    parser.add_argument("--group", "-g", help="consume as a member of this group and commit")
    parser.add_argument("--count", "-n", type=positive_int, help="stop after N records")
    parser.add_argument("--idle-timeout", type=positive_float, metavar="SECONDS",
                        help="stop when no record arrived for this long")
    parser.add_argument("--format", "-f", type=parse_format, default="text", metavar="FORMAT",
                        help="text: the value per line; json: one object per record; or a "
                             "kcat format string, e.g. '%%k %%v %%p %%o %%T %%h\\n'")
    parser.add_argument("--print-key", action="store_true", help="text format: KEY<sep>VALUE")
    parser.add_argument("--key-separator", default="\t")
    add_connection_arguments(parser, output=False)


def run(args: argparse.Namespace) -> int:
    return run_guarded(_consume, args)


def _assignment(args: argparse.Namespace, consumer: Any, partitions: list[int]) -> list[Any]:
    """The TopicPartitions to start from, as ``--timestamp``/``--offset``/``--from-beginning``
    ask (default: the end)."""
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaException, TopicPartition

    topic = args.topic
    if args.timestamp is not None:
        start_ms = parse_timestamp_ms(args.timestamp, "--timestamp")
        wanted = [TopicPartition(topic, p, start_ms) for p in partitions]
        found = consumer.offsets_for_times(wanted, timeout=args.timeout)
        return [tp if tp.offset >= 0 else TopicPartition(tp.topic, tp.partition, OFFSET_END)
                for tp in found]
    start: StartOffset = args.offset or StartOffset(beginning=args.from_beginning, from_end=0)
    if start.offset is not None:
        return [TopicPartition(topic, p, start.offset) for p in partitions]
    if start.beginning:
        return [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
    assert start.from_end is not None
    if start.from_end == 0:
        return [TopicPartition(topic, p, OFFSET_END) for p in partitions]
    assignment = []
    for partition in partitions:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                       timeout=args.timeout)
        except KafkaException as exc:
            raise CliError(f"{topic}-{partition}: {describe_kafka_error(exc.args[0])}") from None
        assignment.append(TopicPartition(topic, partition, max(low, high - start.from_end)))
    return assignment


def _consume(args: argparse.Namespace) -> int:
    from confluent_kafka import Consumer, KafkaException

    grouped = args.group is not None
    consumer = make_client(Consumer, client_config(
        args, **{"group.id": args.group or "headrace-cli", "enable.auto.commit": False,
                 "auto.offset.reset": "earliest" if args.from_beginning else "latest",
                 "enable.partition.eof": False, "allow.auto.create.topics": False}))
    try:
        partitions = topic_partitions(args, admin_client(args), args.topic, args.partition)
        if grouped and args.offset is None and args.timestamp is None and not args.partition:
            consumer.subscribe([args.topic])
        else:
            consumer.assign(_assignment(args, consumer, partitions))
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
            out.write(render(message, args.format, print_key=args.print_key,
                             key_separator=args.key_separator))
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
