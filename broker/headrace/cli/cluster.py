"""``headrace cluster``: the cluster id, controller, brokers and every partition's replicas."""

from __future__ import annotations

import argparse

from headrace.cli.kafka_tools import (
    add_connection_arguments,
    admin_client,
    cluster_metadata,
    emit,
    print_table,
    run_guarded,
)

NAME = "cluster"
HELP = "Show the cluster: id, controller, brokers and partitions."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    describe = actions.add_parser("describe", help="cluster id, controller and brokers")
    add_connection_arguments(describe)
    brokers = actions.add_parser("brokers", help="list brokers")
    add_connection_arguments(brokers)
    partitions = actions.add_parser("partitions", help="every partition with leader and ISR")
    partitions.add_argument("--topic", "-t", action="append", help="only these topics")
    partitions.add_argument("--under-replicated", action="store_true",
                            help="only partitions whose ISR is smaller than the replica set")
    partitions.add_argument("--all", action="store_true", help="include internal topics")
    add_connection_arguments(partitions)


def run(args: argparse.Namespace) -> int:
    actions = {"describe": _describe, "brokers": _brokers, "partitions": _partitions}
    return run_guarded(actions[args.action], args)


def _broker_rows(metadata: object) -> list[dict[str, object]]:
    controller = getattr(metadata, "controller_id", -1)
    brokers = getattr(metadata, "brokers", {})
    return [{"id": b.id, "host": b.host, "port": b.port, "controller": b.id == controller}
            for b in sorted(brokers.values(), key=lambda b: b.id)]


def _describe(args: argparse.Namespace) -> int:
    metadata = cluster_metadata(args, admin_client(args))
    data = {"cluster_id": metadata.cluster_id, "controller_id": metadata.controller_id,
            "brokers": _broker_rows(metadata)}

    def table() -> None:
        print(f"Cluster id: {data['cluster_id']}")
        print(f"Controller: {data['controller_id']}")
        print_table(data["brokers"], ["id", "host", "port", "controller"])

    emit(args, data, table)
    return 0


def _brokers(args: argparse.Namespace) -> int:
    rows = _broker_rows(cluster_metadata(args, admin_client(args)))
    emit(args, rows, lambda: print_table(rows, ["id", "host", "port", "controller"]))
    return 0


def _partitions(args: argparse.Namespace) -> int:
    metadata = cluster_metadata(args, admin_client(args))
    rows = []
    for name, topic in sorted(metadata.topics.items()):
        if args.topic and name not in args.topic:
            continue
        if name.startswith("__") and not args.all and not args.topic:
            continue
        for partition in sorted(topic.partitions.values(), key=lambda p: p.id):
            under = len(partition.isrs) < len(partition.replicas)
            if args.under_replicated and not under:
                continue
            rows.append({"topic": name, "partition": partition.id, "leader": partition.leader,
                         "replicas": list(partition.replicas), "isr": list(partition.isrs),
                         "under_replicated": under})
    emit(args, rows, lambda: print_table(rows, ["topic", "partition", "leader", "replicas",
                                                "isr", "under_replicated"]))
    return 0
