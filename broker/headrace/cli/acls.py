"""``headrace acls``: create, list and delete ACLs over the Kafka protocol (as ``kafka-acls``).

The broker must run with ``--authorizer acl``; the principal the command connects as needs
ALTER (create, delete) or DESCRIBE (list) on the cluster, or to be a super user.
"""

from __future__ import annotations

import argparse
from typing import Any

from headrace.cli.kafka_tools import (
    CliError,
    add_connection_arguments,
    admin_client,
    admin_module,
    emit,
    print_table,
    progress,
    run_guarded,
    wait_future,
)

NAME = "acls"
HELP = "Create, list and delete ACLs (with --authorizer acl)."

OPERATIONS = ("ALL", "READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "CLUSTER_ACTION",
              "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE")
_RESOURCES = (("topic", "TOPIC"), ("group", "GROUP"), ("transactional_id", "TRANSACTIONAL_ID"))
_COLUMNS = ["resource_type", "name", "pattern", "principal", "host", "operation", "permission"]


def _resource_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    which = parser.add_mutually_exclusive_group(required=required)
    which.add_argument("--topic", metavar="NAME")
    which.add_argument("--group", metavar="NAME")
    which.add_argument("--transactional-id", metavar="NAME")
    which.add_argument("--cluster", action="store_true", help="the cluster resource")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="add ACLs (one per operation)")
    _resource_arguments(create, required=True)
    create.add_argument("--principal", required=True, metavar="User:NAME")
    create.add_argument("--operation", action="append", required=True, type=str.upper,
                        choices=OPERATIONS, help="repeatable")
    create.add_argument("--pattern", choices=("literal", "prefixed"), default="literal")
    create.add_argument("--host", default="*", help="client address (default: every host)")
    create.add_argument("--deny", action="store_true", help="a DENY ACL (default: ALLOW)")
    add_connection_arguments(create)

    for action, text in (("list", "show ACLs matching the filters"),
                         ("delete", "remove every ACL matching the filters")):
        sub = actions.add_parser(action, help=text)
        _resource_arguments(sub, required=False)
        sub.add_argument("--principal", metavar="User:NAME")
        sub.add_argument("--operation", type=str.upper, choices=OPERATIONS)
        sub.add_argument("--pattern", choices=("any", "match", "literal", "prefixed"),
                         default="any", help="match: every ACL that applies to the resource")
        sub.add_argument("--host")
        add_connection_arguments(sub)


def run(args: argparse.Namespace) -> int:
    return run_guarded({"create": _create, "list": _list, "delete": _delete}[args.action], args)


def _resource(args: argparse.Namespace) -> tuple[str, str | None]:
    if args.cluster:
        return "BROKER", "kafka-cluster"  # confluent-kafka calls the cluster resource BROKER
    for attribute, kind in _RESOURCES:
        value = getattr(args, attribute)
        if value is not None:
            return kind, value
    return "ANY", None


def _create(args: argparse.Namespace) -> int:
    kafka = admin_module()
    kind, name = _resource(args)
    permission = kafka.AclPermissionType.DENY if args.deny else kafka.AclPermissionType.ALLOW
    bindings = [
        kafka.AclBinding(kafka.ResourceType[kind], name,
                         kafka.ResourcePatternType[args.pattern.upper()], args.principal,
                         args.host, kafka.AclOperation[operation], permission)
        for operation in args.operation
    ]
    admin = admin_client(args)  # held until the results: a dropped client cancels its futures
    futures = admin.create_acls(bindings, request_timeout=args.timeout)
    for binding in bindings:
        wait_future(futures[binding], args)
    progress(f"created {len(bindings)} ACL(s) for {args.principal} on {kind.lower()} {name}")
    return 0


def _filter(args: argparse.Namespace) -> Any:
    kafka = admin_module()
    kind, name = _resource(args)
    return kafka.AclBindingFilter(
        kafka.ResourceType[kind], name, kafka.ResourcePatternType[args.pattern.upper()],
        args.principal, args.host, kafka.AclOperation[args.operation or "ANY"],
        kafka.AclPermissionType.ANY)


def _rows(bindings: Any) -> list[dict[str, Any]]:
    return [{"resource_type": b.restype.name, "name": b.name,
             "pattern": b.resource_pattern_type.name, "principal": b.principal,
             "host": b.host, "operation": b.operation.name,
             "permission": b.permission_type.name} for b in bindings]


def _list(args: argparse.Namespace) -> int:
    admin = admin_client(args)
    found = wait_future(admin.describe_acls(_filter(args), request_timeout=args.timeout), args)
    rows = _rows(found)
    emit(args, rows, lambda: print_table(rows, _COLUMNS))
    return 0


def _delete(args: argparse.Namespace) -> int:
    wanted = _filter(args)
    if wanted.restype.name == "ANY" and wanted.principal is None and wanted.name is None:
        raise CliError("name a resource or a principal (refusing to delete every ACL)")
    admin = admin_client(args)
    futures = admin.delete_acls([wanted], request_timeout=args.timeout)
    rows = _rows(wait_future(futures[wanted], args))
    emit(args, rows, lambda: print_table(rows, _COLUMNS))
    progress(f"deleted {len(rows)} ACL(s)")
    return 0
