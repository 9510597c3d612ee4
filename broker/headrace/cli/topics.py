"""``headrace topics``: create, list, describe, alter and delete topics over the Kafka protocol."""

from __future__ import annotations

import argparse
from typing import Any

from headrace.cli.arguments import positive_int
from headrace.cli.kafka_tools import (
    CliError,
    add_connection_arguments,
    admin_client,
    admin_module,
    cluster_metadata,
    emit,
    parse_key_values,
    print_table,
    progress,
    run_guarded,
    wait_future,
)

NAME = "topics"
HELP = "Create, list, describe, alter and delete topics."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list topics")
    listing.add_argument("--all", action="store_true", help="include internal topics")
    add_connection_arguments(listing)

    create = actions.add_parser("create", help="create a topic")
    create.add_argument("topic")
    create.add_argument("--partitions", "-p", type=positive_int, default=1)
    create.add_argument("--replication-factor", "-r", type=positive_int, default=1)
    create.add_argument("--config", "-c", action="append", default=[], metavar="KEY=VALUE")
    create.add_argument("--if-not-exists", action="store_true",
                        help="succeed when the topic exists already")
    add_connection_arguments(create)

    describe = actions.add_parser("describe", help="partitions, replicas and configs of topics")
    describe.add_argument("topics", nargs="+", metavar="TOPIC")
    add_connection_arguments(describe)

    alter = actions.add_parser("alter", help="change configs or add partitions")
    alter.add_argument("topic")
    alter.add_argument("--config", "-c", action="append", default=[], metavar="KEY=VALUE",
                       help="set a config (repeatable)")
    alter.add_argument("--delete-config", action="append", default=[], metavar="KEY",
                       help="reset a config to its default (repeatable)")
    alter.add_argument("--partitions", "-p", type=positive_int, help="new total partition count")
    add_connection_arguments(alter)

    delete = actions.add_parser("delete", help="delete topics")
    delete.add_argument("topics", nargs="+", metavar="TOPIC")
    delete.add_argument("--if-exists", action="store_true",
                        help="succeed when a topic does not exist")
    add_connection_arguments(delete)


def run(args: argparse.Namespace) -> int:
    actions = {"list": _list, "create": _create, "describe": _describe, "alter": _alter,
               "delete": _delete}
    return run_guarded(actions[args.action], args)


def _list(args: argparse.Namespace) -> int:
    metadata = cluster_metadata(args, admin_client(args))
    rows = []
    for name, topic in sorted(metadata.topics.items()):
        if name.startswith("__") and not args.all:
            continue
        partitions = topic.partitions.values()
        replication = max((len(p.replicas) for p in partitions), default=0)
        rows.append({"topic": name, "partitions": len(topic.partitions),
                     "replication_factor": replication})
    emit(args, rows, lambda: print_table(rows, ["topic", "partitions", "replication_factor"]))
    return 0


def _create(args: argparse.Namespace) -> int:
    new_topic_type = admin_module().NewTopic
    configs = parse_key_values(args.config, "--config")
    admin = admin_client(args)
    new_topic = new_topic_type(args.topic, num_partitions=args.partitions,
                         replication_factor=args.replication_factor, config=configs)
    futures = admin.create_topics([new_topic], request_timeout=args.timeout)
    try:
        wait_future(futures[args.topic], args)
    except CliError as exc:
        if args.if_not_exists and "TOPIC_ALREADY_EXISTS" in str(exc):
            progress(f"topic {args.topic} exists already")
            return 0
        raise
    progress(f"created topic {args.topic} with {args.partitions} partition(s)")
    emit(args, {"topic": args.topic, "partitions": args.partitions,
                "replication_factor": args.replication_factor, "configs": configs}, lambda: None)
    return 0


def _topic_configs(args: argparse.Namespace, admin: Any, topic: str) -> dict[str, dict[str, Any]]:
    kafka_admin = admin_module()
    resource = kafka_admin.ConfigResource("TOPIC", topic)
    entries = wait_future(admin.describe_configs([resource])[resource], args)
    default_source = kafka_admin.ConfigSource.DEFAULT_CONFIG.value
    return {
        name: {"value": entry.value,
               "default": entry.source == default_source or entry.is_default}
        for name, entry in sorted(entries.items())
    }


def _describe(args: argparse.Namespace) -> int:
    admin = admin_client(args)
    metadata = cluster_metadata(args, admin)
    described = []
    for name in args.topics:
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None:
            raise CliError(f"topic {name} does not exist")
        partitions = [
            {"partition": p.id, "leader": p.leader, "replicas": list(p.replicas),
             "isr": list(p.isrs)}
            for p in sorted(topic.partitions.values(), key=lambda p: p.id)
        ]
        described.append({"topic": name, "partitions": partitions,
                          "configs": _topic_configs(args, admin, name)})

    def table() -> None:
        for topic in described:
            print(f"Topic: {topic['topic']}  Partitions: {len(topic['partitions'])}")
            overrides = {k: v["value"] for k, v in topic["configs"].items() if not v["default"]}
            if overrides:
                print("Configs: " + ", ".join(f"{k}={v}" for k, v in overrides.items()))
            print_table(topic["partitions"], ["partition", "leader", "replicas", "isr"])

    emit(args, described, table)
    return 0


def _alter(args: argparse.Namespace) -> int:
    kafka_admin = admin_module()
    set_op = kafka_admin.AlterConfigOpType.SET
    delete_op = kafka_admin.AlterConfigOpType.DELETE
    updates = parse_key_values(args.config, "--config")
    if not updates and not args.delete_config and args.partitions is None:
        raise CliError("nothing to alter: give --config, --delete-config or --partitions")
    admin = admin_client(args)
    if updates or args.delete_config:
        entries = [kafka_admin.ConfigEntry(k, v, incremental_operation=set_op)
                   for k, v in updates.items()]
        entries += [kafka_admin.ConfigEntry(k, None, incremental_operation=delete_op)
                    for k in args.delete_config]
        resource = kafka_admin.ConfigResource("TOPIC", args.topic, incremental_configs=entries)
        wait_future(admin.incremental_alter_configs([resource])[resource], args)
        progress(f"altered configs of {args.topic}")
    if args.partitions is not None:
        futures = admin.create_partitions([kafka_admin.NewPartitions(args.topic, args.partitions)],
                                          request_timeout=args.timeout)
        wait_future(futures[args.topic], args)
        progress(f"topic {args.topic} now has {args.partitions} partitions")
    return 0


def _delete(args: argparse.Namespace) -> int:
    admin = admin_client(args)
    futures = admin.delete_topics(list(args.topics), request_timeout=args.timeout)
    failed = False
    for name in args.topics:
        try:
            wait_future(futures[name], args)
            progress(f"deleted topic {name}")
        except CliError as exc:
            if args.if_exists and "UNKNOWN_TOPIC" in str(exc):
                continue
            progress(f"headrace: error: {name}: {exc}")
            failed = True
    return 1 if failed else 0
