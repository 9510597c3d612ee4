"""``headrace groups``: list and describe consumer groups with lag, reset offsets, delete groups.

Lag is the partition's end offset minus the group's committed offset, asked of the broker over
the Kafka protocol (ListOffsets and OffsetFetch), like ``kafka-consumer-groups.sh``.
``reset-offsets`` shows the plan and changes nothing without ``--execute``.
"""

from __future__ import annotations

import argparse
from typing import Any

from headrace.cli.arguments import non_negative_int
from headrace.cli.kafka_tools import (
    CliError,
    add_connection_arguments,
    admin_client,
    admin_module,
    describe_kafka_error,
    emit,
    parse_timestamp_ms,
    print_table,
    progress,
    run_guarded,
    topic_partitions,
    wait_future,
)

NAME = "groups"
HELP = "List, describe (with lag), reset offsets of and delete consumer groups."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list consumer groups")
    add_connection_arguments(listing)

    describe = actions.add_parser("describe", help="members, committed offsets and lag")
    describe.add_argument("groups", nargs="+", metavar="GROUP")
    add_connection_arguments(describe)

    reset = actions.add_parser("reset-offsets", help="move a group's committed offsets")
    reset.add_argument("group")
    reset.add_argument("--topic", "-t", required=True)
    reset.add_argument("--partition", "-p", type=non_negative_int, action="append",
                       help="only these partitions (repeatable; default all)")
    target = reset.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-earliest", action="store_true")
    target.add_argument("--to-latest", action="store_true")
    target.add_argument("--to-offset", type=non_negative_int, metavar="N")
    target.add_argument("--to-datetime", metavar="TIME", help="ISO 8601 or milliseconds")
    target.add_argument("--shift-by", type=int, metavar="N", help="move by N (may be negative)")
    reset.add_argument("--execute", action="store_true",
                       help="apply the change (default: only show the plan)")
    add_connection_arguments(reset)

    delete = actions.add_parser("delete", help="delete consumer groups")
    delete.add_argument("groups", nargs="+", metavar="GROUP")
    add_connection_arguments(delete)


def run(args: argparse.Namespace) -> int:
    actions = {"list": _list, "describe": _describe, "reset-offsets": _reset,
               "delete": _delete}
    return run_guarded(actions[args.action], args)


def _state_name(state: Any) -> str:
    return str(getattr(state, "name", state))


def _list(args: argparse.Namespace) -> int:
    admin = admin_client(args)  # must outlive the future: a collected client drops requests
    result = wait_future(admin.list_consumer_groups(request_timeout=args.timeout), args)
    if result.errors and not result.valid:
        raise CliError(f"cannot list groups at {args.bootstrap_server}: "
                       f"{describe_kafka_error(result.errors[0])}")
    rows = sorted(({"group": g.group_id, "state": _state_name(g.state),
                    "simple": g.is_simple_consumer_group} for g in result.valid),
                  key=lambda row: str(row["group"]))
    emit(args, rows, lambda: print_table(rows, ["group", "state", "simple"]))
    return 0


def _end_offsets(args: argparse.Namespace, admin: Any, partitions: list[tuple[str, int]],
                 spec: Any = None) -> dict[tuple[str, int], int]:
    from confluent_kafka import TopicPartition

    if not partitions:
        return {}
    kafka_admin = admin_module()
    offset_spec = spec if spec is not None else kafka_admin.OffsetSpec.latest()
    futures = admin.list_offsets({TopicPartition(t, p): offset_spec for t, p in partitions},
                                 request_timeout=args.timeout)
    return {(tp.topic, tp.partition): wait_future(future, args).offset
            for tp, future in futures.items()}


def _committed(args: argparse.Namespace, admin: Any, group: str) -> dict[tuple[str, int], int]:
    from confluent_kafka import ConsumerGroupTopicPartitions

    request = [ConsumerGroupTopicPartitions(group)]
    futures = admin.list_consumer_group_offsets(request, request_timeout=args.timeout)
    result = wait_future(futures[group], args)
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions or []}


def _describe(args: argparse.Namespace) -> int:
    admin = admin_client(args)
    futures = admin.describe_consumer_groups(list(args.groups), request_timeout=args.timeout)
    described = []
    for group in args.groups:
        description = wait_future(futures[group], args)
        if _state_name(description.state) == "DEAD":  # what the coordinator says of no group
            raise CliError(f"group {group} does not exist")
        owners: dict[tuple[str, int], Any] = {}
        for member in description.members:
            assignment = member.assignment.topic_partitions if member.assignment else []
            for tp in assignment:
                owners[(tp.topic, tp.partition)] = member
        committed = _committed(args, admin, group)
        keys = sorted(set(committed) | set(owners))
        ends = _end_offsets(args, admin, keys)
        partitions = []
        for key in keys:
            offset = committed.get(key, -1)
            member = owners.get(key)
            end = ends.get(key, -1)
            partitions.append({
                "topic": key[0], "partition": key[1],
                "current_offset": offset if offset >= 0 else None,
                "log_end_offset": end,
                "lag": (end - offset if offset >= 0 else end) if end >= 0 else None,
                "consumer_id": member.member_id if member else None,
                "host": member.host if member else None,
                "client_id": member.client_id if member else None,
            })
        described.append({
            "group": group, "state": _state_name(description.state),
            "members": len(description.members),
            "assignor": description.partition_assignor or None,
            "partitions": partitions,
        })

    def table() -> None:
        for group in described:
            print(f"Group: {group['group']}  State: {group['state']}  "
                  f"Members: {group['members']}")
            print_table(group["partitions"], ["topic", "partition", "current_offset",
                                              "log_end_offset", "lag", "consumer_id", "host",
                                              "client_id"])

    emit(args, described, table)
    return 0


def _reset(args: argparse.Namespace) -> int:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    admin = admin_client(args)
    kafka_admin = admin_module()
    partitions = topic_partitions(args, admin, args.topic, args.partition)
    keys = [(args.topic, p) for p in partitions]
    earliest = _end_offsets(args, admin, keys, kafka_admin.OffsetSpec.earliest())
    latest = _end_offsets(args, admin, keys)
    committed = _committed(args, admin, args.group)
    targets: dict[tuple[str, int], int] = {}
    if args.to_datetime is not None:
        by_time = _end_offsets(args, admin, keys,
                               kafka_admin.OffsetSpec.for_timestamp(
                                   parse_timestamp_ms(args.to_datetime, "--to-datetime")))
    for key in keys:
        if args.to_earliest:
            target = earliest[key]
        elif args.to_latest:
            target = latest[key]
        elif args.to_offset is not None:
            target = args.to_offset
        elif args.to_datetime is not None:
            target = by_time[key] if by_time[key] >= 0 else latest[key]
        else:
            current = committed.get(key, -1)
            target = (current if current >= 0 else earliest[key]) + args.shift_by
        targets[key] = min(max(target, earliest[key]), latest[key])
    rows = [{"topic": t, "partition": p, "current_offset": committed.get((t, p), -1),
             "new_offset": targets[(t, p)]} for t, p in keys]
    if args.execute:
        request = ConsumerGroupTopicPartitions(
            args.group, [TopicPartition(t, p, targets[(t, p)]) for t, p in keys])
        futures = admin.alter_consumer_group_offsets([request], request_timeout=args.timeout)
        result = wait_future(futures[args.group], args)
        failed = [tp for tp in result.topic_partitions or [] if tp.error is not None]
        if failed:
            raise CliError(f"{failed[0].topic}-{failed[0].partition}: {failed[0].error}")
        progress(f"reset offsets of group {args.group} on {len(keys)} partition(s)")
    else:
        progress("dry run: add --execute to apply")
    emit(args, rows, lambda: print_table(rows, ["topic", "partition", "current_offset",
                                                "new_offset"]))
    return 0


def _delete(args: argparse.Namespace) -> int:
    admin = admin_client(args)
    futures = admin.delete_consumer_groups(list(args.groups), request_timeout=args.timeout)
    failed = False
    for group in args.groups:
        try:
            wait_future(futures[group], args)
            progress(f"deleted group {group}")
        except CliError as exc:
            progress(f"headrace: error: {group}: {exc}")
            failed = True
    return 1 if failed else 0
