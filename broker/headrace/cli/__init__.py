"""The single ``headrace`` command line entry point.

Each subcommand lives in its own module exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; this module only wires them
into one ``argparse`` tree, so adding a command never touches another one's code.
Subcommand modules import heavy dependencies inside ``run`` to keep ``--help`` fast.

Errors: usage mistakes are argparse's (usage, one ``error:`` line, exit 2); a
:class:`~headrace.core.errors.UserError` raised anywhere below (a busy port, a data dir that is
another broker's, a missing topic) is printed here as one ``headrace: error: …`` line, exit 1.
Any other exception keeps its traceback: that is a bug to report.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from headrace import __version__
from headrace.core.errors import UserError

#: Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "headrace.cli.broker",
    "headrace.cli.topics",
    "headrace.cli.produce",
    "headrace.cli.consume",
    "headrace.cli.groups",
    "headrace.cli.transactions",
    "headrace.cli.acls",
    "headrace.cli.users",
    "headrace.cli.quotas",
    "headrace.cli.cluster",
    "headrace.cli.dev",
)


class Command(Protocol):
    NAME: str
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headrace",
        description="Headrace: an event-streaming platform that speaks the Kafka protocol.",
    )
    parser.add_argument("--version", action="version", version=f"headrace {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        command = cast(Command, importlib.import_module(module_name))
        sub = subparsers.add_parser(command.NAME, help=command.HELP, description=command.HELP)
        command.add_arguments(sub)
        sub.set_defaults(_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = cast(Command, args._command)
    try:
        return command.run(args)
    except UserError as error:
        sys.stderr.write(f"headrace: error: {error}\n")
        sys.stderr.flush()
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
