"""Every ``headrace broker`` flag has the ``HEADRACE_*`` variable docs/configuration.md names
for it, and setting that variable changes the flag's value (the flag still wins)."""

from __future__ import annotations

import argparse
import os
from typing import Any

import pytest
from charts import generate

from headrace.cli import build_parser


def _broker_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            broker: argparse.ArgumentParser = action.choices["broker"]
            return broker
    raise AssertionError("no subcommands")


def _probe(action: argparse.Action, default: Any) -> str:
    """A valid value for the flag that differs from ``default``, its parsed built-in value."""
    if isinstance(action, argparse.BooleanOptionalAction):
        return "false" if action.default else "true"
    if action.choices is not None:
        return next(str(c) for c in action.choices if c != default)
    if action.dest == "listener":
        return "SASL_PLAINTEXT://10.1.2.3:1234"
    if action.dest.endswith("listen") or action.dest == "advertised_listener":
        return "10.1.2.3:1234"
    if action.dest == "listener":
        return "SSL=SSL://10.1.2.3:1234"
    if action.dest == "log_level":
        return "error"
    if action.dest in ("metadata",):
        return "etcd://10.1.2.3:2379"
    if isinstance(default, int | float) and not isinstance(default, bool):
        return str(int(default) + 7)
    if callable(action.type):  # a typed value (a limit, a list of names): the first it takes
        for candidate in ("7", "127.0.0.1:7", "range", "PLAIN"):
            try:
                parsed = action.type(candidate)
            except (argparse.ArgumentTypeError, ValueError):
                continue
            if parsed != default:
                return candidate
    return "/probe/value" if action.dest.endswith(("dir", "file")) else "probe-value"


BROKER_FLAGS = [a for a in _broker_parser()._actions
                if a.option_strings and not isinstance(a, argparse._HelpAction)]


@pytest.mark.parametrize("action", BROKER_FLAGS, ids=lambda a: a.option_strings[0])
def test_each_broker_flag_reads_its_environment_variable(
        action: argparse.Action, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("HEADRACE_")]:
        monkeypatch.delenv(key)
    baseline: Any = getattr(_broker_parser().parse_args([]), action.dest)
    variable = generate.env_variable(action)
    monkeypatch.setenv(variable, _probe(action, baseline))
    mirrored: Any = getattr(_broker_parser().parse_args([]), action.dest)
    assert mirrored != baseline, f"{variable} does not set {action.option_strings[0]}"
