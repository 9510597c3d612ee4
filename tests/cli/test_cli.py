"""The client commands end to end against a real broker: output, JSON, exit codes."""

from __future__ import annotations

import json
from typing import Any

from tests.cli.conftest import CliRunner
from tests.support.brokers import BrokerProcess
from tests.support.clients import confluent_producer
from tests.support.kip848_consumer import Kip848Consumer
from tests.support.waiting import eventually


def test_topics_lifecycle(cli: CliRunner) -> None:
    created = cli("topics", "create", "cli-topic", "--partitions", "3",
                  "--config", "retention.ms=60000")
    assert created.returncode == 0, created.stderr
    assert "created topic cli-topic" in created.stderr

    duplicate = cli("topics", "create", "cli-topic")
    assert duplicate.returncode == 1
    assert "TOPIC_ALREADY_EXISTS" in duplicate.stderr
    assert cli("topics", "create", "cli-topic", "--if-not-exists").returncode == 0

    listed = cli("topics", "list", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["topic"]: row for row in json.loads(listed.stdout)}
    assert rows["cli-topic"] == {"topic": "cli-topic", "partitions": 3, "replication_factor": 1}
    assert "__consumer_offsets" not in rows
    table = cli("topics", "list").stdout.splitlines()
    assert table[0].split() == ["TOPIC", "PARTITIONS", "REPLICATION-FACTOR"]
    assert any(line.split()[:2] == ["cli-topic", "3"] for line in table[1:])

    altered = cli("topics", "alter", "cli-topic", "--config", "segment.bytes=1048576",
                  "--delete-config", "retention.ms", "--partitions", "4")
    assert altered.returncode == 0, altered.stderr
    described = json.loads(cli("topics", "describe", "cli-topic", "-o", "json").stdout)
    (topic,) = described
    assert [p["partition"] for p in topic["partitions"]] == [0, 1, 2, 3]
    assert topic["configs"]["segment.bytes"] == {"value": "1048576", "default": False}
    assert topic["configs"]["retention.ms"]["default"] is True

    bad = cli("topics", "alter", "cli-topic", "--config", "retention.ms=soon")
    assert bad.returncode == 1 and "retention.ms" in bad.stderr
    assert cli("topics", "delete", "cli-topic").returncode == 0
    missing = cli("topics", "describe", "cli-topic")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert cli("topics", "delete", "cli-topic", "--if-exists").returncode == 0


def test_produce_and_consume_round_trip(cli: CliRunner) -> None:
    assert cli("topics", "create", "lines", "--partitions", "2").returncode == 0
    lines = [f"user-{i % 3}:value {i}" for i in range(30)]
    produced = cli("produce", "lines", "--key-separator", ":", "--header", "origin=cli",
                   "--acks", "all", "-o", "json", stdin="\n".join(lines) + "\n")
    assert produced.returncode == 0, produced.stderr
    assert json.loads(produced.stdout) == {"topic": "lines", "sent": 30, "delivered": 30,
                                           "failed": 0}

    consumed = cli("consume", "lines", "--from-beginning", "--count", "30", "--format", "json")
    assert consumed.returncode == 0, consumed.stderr
    records = [json.loads(line) for line in consumed.stdout.splitlines()]
    assert sorted((r["key"], r["value"]) for r in records) == sorted(
        (line.split(":")[0], line.split(":")[1]) for line in lines)
    assert all(r["headers"] == [{"name": "origin", "value": "cli"}] for r in records)
    for key in ("user-0", "user-1", "user-2"):
        mine = [r for r in records if r["key"] == key]
        assert len({r["partition"] for r in mine}) == 1  # same key, same partition
        values = [int(r["value"].split()[1]) for r in sorted(mine, key=lambda r: r["offset"])]
        assert values == sorted(values)

    # From an offset of one partition, text format with keys.
    first_partition = [r for r in records if r["partition"] == 0]
    from_offset = cli("consume", "lines", "--partition", "0", "--offset", "2", "--print-key",
                      "--key-separator", "=", "--idle-timeout", "1")
    assert from_offset.returncode == 0, from_offset.stderr
    expected = [f"{r['key']}={r['value']}" for r in sorted(first_partition,
                                                           key=lambda r: r["offset"])][2:]
    assert from_offset.stdout.splitlines() == expected

    # By timestamp: everything is older than the far future, so nothing arrives.
    future = cli("consume", "lines", "--timestamp", "2999-01-01T00:00:00Z", "--idle-timeout", "1")
    assert future.returncode == 0 and future.stdout == ""
    past = cli("consume", "lines", "--timestamp", "0", "--count", "30")
    assert past.returncode == 0 and len(past.stdout.splitlines()) == 30


def test_groups_lag_and_reset(cli: CliRunner) -> None:
    assert cli("topics", "create", "grouped", "--partitions", "2").returncode == 0
    produced = cli("produce", "grouped", "-K", ",", stdin="".join(
        f"k{i},v{i}\n" for i in range(10)))
    assert produced.returncode == 0, produced.stderr
    consumed = cli("consume", "grouped", "--group", "cli-group", "--from-beginning",
                   "--count", "10")
    assert consumed.returncode == 0, consumed.stderr
    assert sorted(consumed.stdout.split()) == sorted(f"v{i}" for i in range(10))

    listed = json.loads(cli("groups", "list", "-o", "json").stdout)
    assert "cli-group" in {g["group"] for g in listed}
    described = cli("groups", "describe", "cli-group", "-o", "json")
    assert described.returncode == 0, described.stderr
    (group,) = json.loads(described.stdout)
    assert {(p["partition"], p["lag"]) for p in group["partitions"]} == {(0, 0), (1, 0)}
    assert sum(p["log_end_offset"] for p in group["partitions"]) == 10

    plan = cli("groups", "reset-offsets", "cli-group", "--topic", "grouped", "--to-earliest",
               "-o", "json")
    assert plan.returncode == 0, plan.stderr
    assert all(row["new_offset"] == 0 for row in json.loads(plan.stdout))
    assert "dry run" in plan.stderr
    unchanged = json.loads(cli("groups", "describe", "cli-group", "-o", "json").stdout)
    assert sum(p["lag"] for p in unchanged[0]["partitions"]) == 0
    executed = cli("groups", "reset-offsets", "cli-group", "--topic", "grouped",
                   "--to-earliest", "--execute")
    assert executed.returncode == 0, executed.stderr
    reset = json.loads(cli("groups", "describe", "cli-group", "-o", "json").stdout)
    assert sum(p["lag"] for p in reset[0]["partitions"]) == 10
    table = cli("groups", "describe", "cli-group").stdout
    assert "LOG-END-OFFSET" in table and "LAG" in table

    assert cli("groups", "delete", "cli-group").returncode == 0
    gone = json.loads(cli("groups", "list", "-o", "json").stdout)
    assert "cli-group" not in {g["group"] for g in gone}


def test_groups_describe_shows_a_consumer_protocol_group(cli: CliRunner,
                                                         broker: BrokerProcess) -> None:
    assert cli("topics", "create", "kip848-cli", "--partitions", "2").returncode == 0
    producer = confluent_producer(broker.bootstrap)
    for index in range(10):
        producer.produce("kip848-cli", value=b"v", partition=index % 2)
    assert producer.flush(20) == 0
    with Kip848Consumer(broker.bootstrap, "kip848-cli-group", "kip848-cli",
                        commit_after=10) as member:
        member.wait_committed()
        for index in range(6):  # past the commits: lag 3 on each partition
            producer.produce("kip848-cli", value=b"late", partition=index % 2)
        assert producer.flush(20) == 0

        def described() -> dict[str, Any]:
            result = cli("groups", "describe", "kip848-cli-group", "-o", "json")
            assert result.returncode == 0, result.stderr
            (group,) = json.loads(result.stdout)
            return dict(group)

        eventually(lambda: described()["state"] == "STABLE", timeout=30,
                   message="the group Stable", retry_on=(AssertionError,))
        group = described()
        assert group["members"] == 1
        rows = {p["partition"]: p for p in group["partitions"]}
        assert {k: (r["current_offset"], r["log_end_offset"], r["lag"])
                for k, r in rows.items()} == {0: (5, 8, 3), 1: (5, 8, 3)}
        assert len({r["consumer_id"] for r in rows.values()}) == 1
        assert None not in {r["consumer_id"] for r in rows.values()}
        table = cli("groups", "describe", "kip848-cli-group").stdout
        assert "State: STABLE" in table and "Members: 1" in table


def test_cluster_views(cli: CliRunner) -> None:
    described = cli("cluster", "describe", "-o", "json")
    assert described.returncode == 0, described.stderr
    data = json.loads(described.stdout)
    assert data["cluster_id"] and data["controller_id"] == 1
    assert data["brokers"][0]["controller"] is True
    assert cli("topics", "create", "shown", "--partitions", "2").returncode == 0
    partitions = json.loads(cli("cluster", "partitions", "--topic", "shown", "-o", "json").stdout)
    assert [(p["partition"], p["leader"], p["isr"]) for p in partitions] == [
        (0, 1, [1]), (1, 1, [1])]
    under = json.loads(cli("cluster", "partitions", "--under-replicated", "-o", "json").stdout)
    assert under == []
    assert "HOST" in cli("cluster", "brokers").stdout


def test_exit_codes(cli: CliRunner) -> None:
    usage = cli("topics", "create", in_subprocess=True)
    assert usage.returncode == 2 and "usage" in usage.stderr
    unreachable = cli("topics", "list", "--timeout", "2", bootstrap="127.0.0.1:1",
                      in_subprocess=True)
    assert unreachable.returncode == 1 and unreachable.stderr.startswith("headrace: error:")
    listed = cli("topics", "list", "-o", "json", in_subprocess=True)
    assert listed.returncode == 0 and isinstance(json.loads(listed.stdout), list)
    bad_property = cli("topics", "list", "-X", "nonsense")
    assert bad_property.returncode == 1 and "KEY=VALUE" in bad_property.stderr
    no_separator = cli("produce", "whatever", "-K", ":", stdin="no separator here\n")
    assert no_separator.returncode == 1 and "separator" in no_separator.stderr


def test_topic_and_time_errors_read_alike_in_consume_and_groups(cli: CliRunner) -> None:
    assert cli("topics", "create", "checked", "--partitions", "2").returncode == 0
    for command in (("consume", "checked", "--count", "1"),
                    ("groups", "reset-offsets", "g", "--topic", "checked", "--to-earliest")):
        unknown = cli(*command, "--partition", "0", "--partition", "7")
        assert unknown.returncode == 1 and "no partition 7" in unknown.stderr, unknown.stderr
    bad_start = cli("consume", "checked", "--timestamp", "yesterday", "--count", "1")
    assert bad_start.returncode == 1 and "--timestamp must be" in bad_start.stderr
    bad_target = cli("groups", "reset-offsets", "g", "--topic", "checked",
                     "--to-datetime", "yesterday")
    assert bad_target.returncode == 1 and "--to-datetime must be" in bad_target.stderr
    by_time = cli("groups", "reset-offsets", "g", "--topic", "checked", "--to-datetime",
                  "2999-01-01T00:00:00Z", "-o", "json")
    assert by_time.returncode == 0, by_time.stderr
    assert [row["new_offset"] for row in json.loads(by_time.stdout)] == [0, 0]
