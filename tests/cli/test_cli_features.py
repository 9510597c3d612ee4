"""The client commands a newcomer reaches for: reads that never create topics, unknown groups,
``--version``, connection profiles, kcat's ``-o -N`` and ``-f`` format strings, per-record
headers on ``produce``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headrace import __version__
from tests.cli.conftest import CliRunner
from tests.cli.test_startup_errors import assert_one_line_error, assert_usage_error, headrace


def topic_names(cli: CliRunner) -> set[str]:
    listed = cli("topics", "list", "--all", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    return {row["topic"] for row in json.loads(listed.stdout)}


def test_version() -> None:
    result = headrace("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"headrace {__version__}"


def test_reads_never_create_topics(cli: CliRunner) -> None:
    for command in (("consume", "ghost", "-n", "1"),
                    ("consume", "ghost", "--group", "g", "-n", "1"),
                    ("consume", "ghost", "-o", "-5", "-n", "1"),
                    ("topics", "describe", "ghost"),
                    ("groups", "reset-offsets", "g", "-t", "ghost", "--to-earliest")):
        result = cli(*command)
        assert_one_line_error(result, "topic ghost does not exist")
    shown = cli("cluster", "partitions", "--topic", "ghost", "-o", "json")
    assert shown.returncode == 0 and json.loads(shown.stdout) == []
    assert "ghost" not in topic_names(cli)


def test_unknown_group_is_an_error(cli: CliRunner) -> None:
    result = cli("groups", "describe", "nosuchgroup", in_subprocess=True)
    assert_one_line_error(result, "group nosuchgroup does not exist")


def _produce_per_partition(cli: CliRunner, topic: str, partitions: int, each: int) -> None:
    assert cli("topics", "create", topic, "-p", str(partitions)).returncode == 0
    for partition in range(partitions):
        lines = "".join(f"k{partition}-{i}:v{partition}-{i}\n" for i in range(each))
        produced = cli("produce", topic, "-p", str(partition), "-K", ":", stdin=lines)
        assert produced.returncode == 0, produced.stderr


def test_offsets_relative_to_the_end(cli: CliRunner) -> None:
    _produce_per_partition(cli, "tail", 2, 10)
    last = cli("consume", "tail", "-o", "-3", "--idle-timeout", "1", "-f", "%p %o %v\\n")
    assert last.returncode == 0, last.stderr
    assert sorted(last.stdout.splitlines()) == sorted(
        f"{p} {o} v{p}-{o}" for p in range(2) for o in (7, 8, 9))
    # More than a partition holds: all of it; beginning and absolute offsets as before.
    everything = cli("consume", "tail", "-o", "-100", "--idle-timeout", "1", "-p", "1")
    assert everything.stdout.split() == [f"v1-{i}" for i in range(10)]
    beginning = cli("consume", "tail", "-o", "beginning", "-p", "0", "-n", "10")
    assert beginning.stdout.split() == [f"v0-{i}" for i in range(10)]
    absolute = cli("consume", "tail", "-o", "8", "-p", "0", "--idle-timeout", "1")
    assert absolute.stdout.split() == ["v0-8", "v0-9"]
    at_end = cli("consume", "tail", "-o", "end", "--idle-timeout", "1")
    assert at_end.returncode == 0 and at_end.stdout == ""
    assert_usage_error(cli("consume", "tail", "-o", "soon", in_subprocess=True), "--offset")


def test_format_strings(cli: CliRunner) -> None:
    assert cli("topics", "create", "formatted").returncode == 0
    record = json.dumps({"key": "k1", "value": "hello",
                         "headers": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]})
    assert cli("produce", "formatted", "--input", "json", stdin=record + "\n").returncode == 0
    shown = cli("consume", "formatted", "--from-beginning", "-n", "1",
                "-f", "%t|%p|%o|%k|%v|%s|%h|%K|%S|100%%\\t%T\\n")
    assert shown.returncode == 0, shown.stderr
    fields, timestamp = shown.stdout.rstrip("\n").split("\t")
    assert fields == "formatted|0|0|k1|hello|hello|a=1,b=2|2|5|100%"
    assert int(timestamp) > 1_600_000_000_000
    no_newline = cli("consume", "formatted", "--from-beginning", "-n", "1", "-f", "[%v]")
    assert no_newline.stdout == "[hello]"  # as kcat: the format string says where lines end
    assert_usage_error(cli("consume", "formatted", "-f", "%k %q", in_subprocess=True),
                       "unknown directive %q")
    assert_usage_error(cli("consume", "formatted", "-f", "yaml", in_subprocess=True),
                       "--format")


def test_per_record_headers_round_trip(cli: CliRunner) -> None:
    assert cli("topics", "create", "headed").returncode == 0
    records = [
        {"key": "a", "value": "first", "headers": [{"name": "trace", "value": "t1"}]},
        {"key": None, "value": {"base64": "AP8="}, "headers": {"trace": "t2", "n": None}},
        {"value": "third"},
    ]
    stdin = "".join(json.dumps(r) + "\n" for r in records)
    produced = cli("produce", "headed", "--input", "json", "-H", "via=cli", "-H", "via=again",
                   stdin=stdin)
    assert produced.returncode == 0, produced.stderr
    consumed = cli("consume", "headed", "--from-beginning", "-n", "3", "--format", "json")
    rows = [json.loads(line) for line in consumed.stdout.splitlines()]
    via = [{"name": "via", "value": "cli"}, {"name": "via", "value": "again"}]
    assert [(r["key"], r["value"], r["headers"]) for r in rows] == [
        ("a", "first", [{"name": "trace", "value": "t1"}, *via]),
        (None, {"base64": "AP8="}, [{"name": "trace", "value": "t2"},
                                     {"name": "n", "value": None}, *via]),
        (None, "third", via),
    ]
    # What consume prints, produce takes back.
    copied = cli("produce", "headed-copy", "--input", "json", stdin=consumed.stdout)
    assert copied.returncode == 0, copied.stderr
    again = cli("consume", "headed-copy", "--from-beginning", "-n", "3", "--format", "json")
    assert [(json.loads(line)["value"], json.loads(line)["headers"])
            for line in again.stdout.splitlines()] == [(r["value"], r["headers"]) for r in rows]

    bad = cli("produce", "headed", "--input", "json", stdin='{"value": "ok"}\n{"value": 5}\n',
              in_subprocess=True)
    assert_one_line_error(bad, "line 2", "value")


def test_connection_profiles(cli: CliRunner, tmp_path: Path, broker_bootstrap: str,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'''
default_profile = "local"

[profiles.local]
bootstrap = "{broker_bootstrap}"
timeout = 10

[profiles.nowhere]
bootstrap = "127.0.0.1:1"
timeout = 2

[profiles.typo]
bootstrap = "{broker_bootstrap}"
properties = {{ "bogus.property" = "1" }}
''')
    monkeypatch.setenv("HEADRACE_CONFIG", str(config))
    assert cli("cluster", "describe", bootstrap="").returncode == 0  # the default profile

    elsewhere = cli("cluster", "describe", "--profile", "nowhere", bootstrap="",
                    in_subprocess=True)
    assert_one_line_error(elsewhere, "127.0.0.1:1")
    monkeypatch.setenv("HEADRACE_PROFILE", "nowhere")
    assert cli("cluster", "describe", bootstrap="").returncode == 1
    # The variable beats the profile, the flag beats both.
    monkeypatch.setenv("HEADRACE_BOOTSTRAP", broker_bootstrap)
    assert cli("cluster", "describe", bootstrap="").returncode == 0
    monkeypatch.delenv("HEADRACE_PROFILE")
    monkeypatch.setenv("HEADRACE_BOOTSTRAP", "127.0.0.1:1")
    assert cli("cluster", "describe").returncode == 0
    monkeypatch.delenv("HEADRACE_BOOTSTRAP")

    typo = cli("topics", "list", "--profile", "typo", bootstrap="", in_subprocess=True)
    assert_one_line_error(typo, "bogus.property")
    unknown = cli("topics", "list", "--profile", "staging", bootstrap="", in_subprocess=True)
    assert_one_line_error(unknown, "no profile 'staging'", str(config), "local, nowhere, typo")
    config.write_text("[profiles.local\n")
    broken = cli("topics", "list", bootstrap="", in_subprocess=True)
    assert_one_line_error(broken, str(config))
    monkeypatch.setenv("HEADRACE_CONFIG", str(tmp_path / "missing.toml"))
    assert_one_line_error(cli("topics", "list", "--profile", "local", bootstrap="",
                              in_subprocess=True), "missing.toml")


@pytest.fixture
def broker_bootstrap(cli: CliRunner) -> str:
    described = cli("cluster", "describe", "-o", "json")
    broker = json.loads(described.stdout)["brokers"][0]
    return f"{broker['host']}:{broker['port']}"
