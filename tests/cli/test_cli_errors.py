"""Every client command answers bad input and an unreachable broker with one line on stderr and
a non-zero exit, as a shell sees it (``python -m headrace``), never with a traceback."""

from __future__ import annotations

import socket

import pytest

from tests.cli.conftest import CliRunner
from tests.cli.test_startup_errors import assert_one_line_error, assert_usage_error, headrace


@pytest.mark.parametrize(("command", "words"), [
    (("topics", "create", "t", "-p", "-3"), ("--partitions", "-3")),
    (("topics", "create", "t", "-r", "0"), ("--replication-factor",)),
    (("topics", "alter", "t", "-p", "x"), ("--partitions", "'x'")),
    (("produce", "t", "--timeout", "-1"), ("--timeout",)),
    (("produce", "t", "-p", "-2"), ("--partition",)),
    (("consume", "t", "--count", "0"), ("--count",)),
    (("consume", "t", "--idle-timeout", "soon"), ("--idle-timeout", "soon")),
    (("groups", "reset-offsets", "g", "-t", "t", "--to-offset", "-1"), ("--to-offset",)),
])
def test_bad_values_are_usage_errors(cli: CliRunner, command: tuple[str, ...],
                                     words: tuple[str, ...]) -> None:
    assert_usage_error(cli(*command, in_subprocess=True), *words)


def test_bad_dev_flags_are_usage_errors() -> None:
    assert_usage_error(headrace("dev", "--brokers", "0"), "--brokers")


@pytest.mark.parametrize("prop", ["bogus=1", "socket.timeout.ms=abc"])
def test_unknown_client_property_is_one_line(cli: CliRunner, prop: str) -> None:
    result = cli("topics", "list", "-X", prop, in_subprocess=True)
    assert_one_line_error(result, "bad client configuration", prop.split("=")[0])


@pytest.fixture(scope="module")
def closed_port() -> int:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return int(unused.getsockname()[1])


@pytest.mark.parametrize("command", [
    ("topics", "list"), ("topics", "describe", "t"), ("topics", "create", "t"),
    ("produce", "t"), ("consume", "t", "-n", "1"), ("groups", "list"),
    ("groups", "describe", "g"), ("cluster", "describe"),
])
def test_unreachable_bootstrap_is_one_line(cli: CliRunner, closed_port: int,
                                           command: tuple[str, ...]) -> None:
    result = cli(*command, "--timeout", "2", bootstrap=f"127.0.0.1:{closed_port}",
                 stdin="x\n", in_subprocess=True)
    assert_one_line_error(result, f"127.0.0.1:{closed_port}")
