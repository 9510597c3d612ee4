"""``headrace transactions list|describe`` against a subprocess broker."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.brokers import ROOT, BrokerProcess, subprocess_env
from tests.support.clients import create_topic
from tests.transactions.txn_clients import transactional_producer


def _cli(broker: BrokerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headrace", "transactions", *args,
         "--bootstrap-server", broker.bootstrap],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=60,
    )


def test_list_and_describe(txn_broker: BrokerProcess) -> None:
    create_topic(txn_broker.bootstrap, "cli-t", 1)
    producer = transactional_producer(txn_broker.bootstrap, "cli-writer")
    idle = transactional_producer(txn_broker.bootstrap, "cli-idle")  # Empty: no transaction
    producer.begin_transaction()
    producer.produce("cli-t", value=b"x", partition=0)
    producer.flush(10)

    listed = _cli(txn_broker, "list", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    states = {row["transactional_id"]: row["state"] for row in json.loads(listed.stdout)}
    assert states == {"cli-writer": "Ongoing", "cli-idle": "Empty"}
    only_open = _cli(txn_broker, "list", "--state", "Ongoing", "--output", "json")
    assert [r["transactional_id"] for r in json.loads(only_open.stdout)] == ["cli-writer"]

    described = _cli(txn_broker, "describe", "cli-writer", "--output", "json")
    assert described.returncode == 0, described.stderr
    detail = json.loads(described.stdout)
    assert detail["state"] == "Ongoing" and detail["partitions"] == ["cli-t-0"]
    assert detail["start"] is not None
    empty = _cli(txn_broker, "describe", "cli-idle")
    assert empty.returncode == 0 and "Empty" in empty.stdout, empty.stderr

    missing = _cli(txn_broker, "describe", "never-seen")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "headrace: error: never-seen: TRANSACTIONAL_ID_NOT_FOUND"
    producer.commit_transaction(30)
    del idle
