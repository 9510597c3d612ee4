"""``headrace quotas``: describe and alter client quotas, like ``kafka-configs --entity-type
users|clients|ips``.

librdkafka's admin API has no client-quota calls, so this speaks DescribeClientQuotas and
AlterClientQuotas (KIP-546) itself, with kio over
:class:`~headrace.cluster.wire.BrokerConnection`. An entity is named by ``--user``,
``--client-id`` and ``--ip`` (``--user-default`` etc. for the type's default); ``describe``
without any lists every quota.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from headrace.cli.kafka_tools import (
    CliError,
    add_connection_arguments,
    at_bootstrap,
    broker_request,
    emit,
    print_table,
    run_guarded,
)

NAME = "quotas"
HELP = "Describe and alter client quotas (byte rates, request percentage, connection rate)."

_TYPES = (("user", "user"), ("client-id", "client_id"), ("ip", "ip"))


def _add_entity_arguments(parser: argparse.ArgumentParser) -> None:
    for kind, dest in _TYPES:
        parser.add_argument(f"--{kind}", dest=dest, metavar="NAME", help=f"the {kind} entity")
        parser.add_argument(f"--{kind.split('-')[0]}-default", dest=f"{dest}_default",
                            action="store_true", help=f"the default {kind} entity")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    describe = actions.add_parser("describe", help="quotas of the entities matching the filter")
    _add_entity_arguments(describe)
    describe.add_argument("--strict", action="store_true",
                          help="only entities with exactly the named parts")
    add_connection_arguments(describe)
    alter = actions.add_parser("alter", help="set or remove quotas of one entity")
    _add_entity_arguments(alter)
    alter.add_argument("--add-config", default="", metavar="KEY=VALUE,...",
                       help="quotas to set: producer_byte_rate, consumer_byte_rate, "
                       "request_percentage, controller_mutation_rate, connection_creation_rate")
    alter.add_argument("--delete-config", default="", metavar="KEY,...",
                       help="quotas to remove")
    alter.add_argument("--validate-only", action="store_true",
                       help="check the change without applying it")
    add_connection_arguments(alter)


def run(args: argparse.Namespace) -> int:
    return run_guarded(lambda a: asyncio.run(at_bootstrap(a, _action)), args)


def _entity(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    parts: list[tuple[str, str | None]] = []
    for kind, dest in _TYPES:
        name, default = getattr(args, dest), getattr(args, f"{dest}_default")
        if name is not None and default:
            raise CliError(f"--{kind} and --{kind.split('-')[0]}-default exclude each other")
        if name is not None or default:
            parts.append((kind, name))
    return parts


def _ops(args: argparse.Namespace) -> list[tuple[str, float | None]]:
    ops: list[tuple[str, float | None]] = []
    for item in filter(None, (part.strip() for part in args.add_config.split(","))):
        key, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or not key or number is None:
            raise CliError(f"--add-config items must look like KEY=NUMBER, got {item!r}")
        ops.append((key.strip(), number))
    ops += [(key.strip(), None) for key in args.delete_config.split(",") if key.strip()]
    if not ops:
        raise CliError("nothing to alter: give --add-config and/or --delete-config")
    return ops


def _label(kind: str, name: str | None) -> str:
    return f"{kind}={'<default>' if name is None else name}"


async def _action(args: argparse.Namespace, host: str, port: int) -> int:
    from kio.schema.alter_client_quotas.v1 import request as alter_v1
    from kio.schema.describe_client_quotas.v1 import request as describe_v1
    from kio.schema.errors import ErrorCode
    from kio.static.primitive import f64, i8

    entity = _entity(args)
    if args.action == "describe":
        components = tuple(
            describe_v1.ComponentData(entity_type=kind, match_type=i8(0 if name else 1),
                                      match=name)
            for kind, name in entity)
        answer = await broker_request(host, port, describe_v1.DescribeClientQuotasRequest(
            components=components, strict=bool(args.strict)), args.timeout)
        if answer.error_code != ErrorCode.none:
            raise CliError(f"{ErrorCode(answer.error_code).name.upper()}: "
                           f"{answer.error_message or 'describe failed'}")
        rows: list[dict[str, Any]] = [
            {"entity": ", ".join(_label(e.entity_type, e.entity_name) for e in entry.entity),
             "quotas": {v.key: float(v.value) for v in entry.values}}
            for entry in answer.entries or ()]
        emit(args, rows, lambda: print_table(
            [{"entity": row["entity"],
              "quotas": ", ".join(f"{k}={v:g}" for k, v in row["quotas"].items())}
             for row in rows], ["entity", "quotas"]))
        return 0
    if not entity:
        raise CliError("name the entity: --user/--client-id/--ip or their --*-default")
    ops = tuple(alter_v1.OpData(key=key, value=f64(value or 0.0), remove=value is None)
                for key, value in _ops(args))
    altered = await broker_request(host, port, alter_v1.AlterClientQuotasRequest(
        entries=(alter_v1.EntryData(entity=tuple(
            alter_v1.EntityData(entity_type=kind, entity_name=name) for kind, name in entity),
            ops=ops),),
        validate_only=bool(args.validate_only)), args.timeout)
    result = altered.entries[0]
    if result.error_code != ErrorCode.none:
        raise CliError(f"{ErrorCode(result.error_code).name.upper()}: "
                       f"{result.error_message or 'alter failed'}")
    done = "validated" if args.validate_only else "altered"
    emit(args, {"entity": dict(entity), "result": done},
         lambda: print(f"{done} quotas of {', '.join(_label(k, n) for k, n in entity)}"))
    return 0
