"""``headrace users``: list, create and delete SCRAM users over the Kafka protocol (KIP-554's
Describe/AlterUserScramCredentials through confluent-kafka's AdminClient), as
``kafka-configs.sh --entity-type users --alter --add-config SCRAM-SHA-256=[password=…]`` and
``rpk security user`` do. The client computes the salted password; the broker stores only keys.
The command authenticates itself like every client command (``--sasl-username`` and friends,
a profile's ``sasl`` table, or ``-X`` properties).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from headrace.cli.kafka_tools import (
    CliError,
    add_connection_arguments,
    admin_client,
    admin_module,
    describe_kafka_error,
    emit,
    print_table,
    progress,
    run_guarded,
    wait_future,
)

NAME = "users"
HELP = "List, create and delete SCRAM users (SASL credentials)."

MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def _mechanism(text: str) -> str:
    name = text.strip().upper()
    if name not in MECHANISMS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(MECHANISMS)}, got {text!r}")
    return name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="users and their SCRAM mechanisms")
    add_connection_arguments(listing)

    create = actions.add_parser("create", help="create a user or change its password")
    create.add_argument("user")
    create.add_argument("--password", help="the user's password (better: HEADRACE_NEW_PASSWORD, "
                        "out of ps)")
    create.add_argument("--mechanism", action="append", type=_mechanism, default=[],
                        help="SCRAM-SHA-256 and/or SCRAM-SHA-512 (repeatable; default both)")
    create.add_argument("--iterations", type=int, default=4096,
                        help="PBKDF2 iterations, 4096..16384 (default 4096)")
    add_connection_arguments(create)

    delete = actions.add_parser("delete", help="delete a user's SCRAM credentials")
    delete.add_argument("user")
    delete.add_argument("--mechanism", action="append", type=_mechanism, default=[],
                        help="only this mechanism's credential (default: every one it has)")
    add_connection_arguments(delete)


def run(args: argparse.Namespace) -> int:
    actions = {"list": _list, "create": _create, "delete": _delete}
    return run_guarded(actions[args.action], args)


def _described(args: argparse.Namespace, admin: Any) -> dict[str, Any]:
    result: dict[str, Any] = wait_future(admin.describe_user_scram_credentials(), args)
    return result


def _list(args: argparse.Namespace) -> int:
    described = _described(args, admin_client(args))
    rows = [{"user": user,
             "mechanisms": [f"{info.mechanism.name.replace('_', '-')}"
                            for info in description.scram_credential_infos],
             "iterations": [info.iterations for info in description.scram_credential_infos]}
            for user, description in sorted(described.items())]
    emit(args, rows, lambda: print_table(rows, ["user", "mechanisms", "iterations"]))
    return 0


def _create(args: argparse.Namespace) -> int:
    admin_api = admin_module()
    password = args.password or os.environ.get("HEADRACE_NEW_PASSWORD")
    if not password:
        raise CliError("users create needs a password: --password or HEADRACE_NEW_PASSWORD")
    if not 4096 <= args.iterations <= 16384:
        raise CliError(f"--iterations must be between 4096 and 16384, got {args.iterations}")
    changes = [
        admin_api.UserScramCredentialUpsertion(
            args.user,
            admin_api.ScramCredentialInfo(_wire_mechanism(admin_api, name), args.iterations),
            password.encode("utf-8"))
        for name in args.mechanism or MECHANISMS
    ]
    _alter(args, changes)
    progress(f"user {args.user}: SCRAM credentials set ({', '.join(args.mechanism or MECHANISMS)})")
    emit(args, {"user": args.user, "mechanisms": list(args.mechanism or MECHANISMS)},
         lambda: None)
    return 0


def _delete(args: argparse.Namespace) -> int:
    admin_api = admin_module()
    admin = admin_client(args)
    mechanisms = args.mechanism
    if not mechanisms:
        described = _described(args, admin)
        if args.user not in described:
            raise CliError(f"user {args.user} has no SCRAM credentials")
        mechanisms = [info.mechanism.name.replace("_", "-")
                      for info in described[args.user].scram_credential_infos]
    _alter(args, [admin_api.UserScramCredentialDeletion(
        args.user, _wire_mechanism(admin_api, name)) for name in mechanisms], admin)
    progress(f"user {args.user}: SCRAM credentials deleted ({', '.join(mechanisms)})")
    return 0


def _wire_mechanism(admin_api: Any, name: str) -> Any:
    return getattr(admin_api.ScramMechanism, name.replace("-", "_"))


def _alter(args: argparse.Namespace, changes: list[Any], admin: Any | None = None) -> None:
    from confluent_kafka import KafkaException

    client = admin or admin_client(args)
    futures = client.alter_user_scram_credentials(changes)
    for user, future in futures.items():
        try:
            wait_future(future, args)
        except KafkaException as exc:  # pragma: no cover - wait_future converts these
            raise CliError(f"user {user}: {describe_kafka_error(exc.args[0])}") from None
