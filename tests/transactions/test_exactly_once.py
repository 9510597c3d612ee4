"""Exactly-once consume-transform-produce: a processor killed with -9 and restarted, again and
again, leaves every input in the output exactly once (read_committed)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from confluent_kafka import Producer

from tests.support.brokers import ROOT, BrokerProcess, subprocess_env
from tests.support.clients import create_topic
from tests.support.waiting import eventually
from tests.transactions.txn_clients import read_values

INPUTS = 3000
PARTITIONS = 2
KILLS = 3


def _start_processor(bootstrap: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.transactions.processor", bootstrap],
            cwd=ROOT, env=subprocess_env(), stdout=output, stderr=subprocess.STDOUT,
        )


def _commits(log: Path) -> int:
    return log.read_text(errors="replace").count("committed ")


def test_processor_killed_repeatedly_outputs_every_input_exactly_once(
    txn_broker: BrokerProcess, tmp_path: Path,
) -> None:
    bootstrap = txn_broker.bootstrap
    create_topic(bootstrap, "input", PARTITIONS)
    create_topic(bootstrap, "output", PARTITIONS)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                         "batch.num.messages": 20})  # many small batches: many transactions
    for index in range(INPUTS):
        producer.produce("input", value=b"in-%05d" % index, partition=index % PARTITIONS)
    producer.flush(30)
    log = tmp_path / "processor.log"
    for kill in range(KILLS):
        processor = _start_processor(bootstrap, log)
        try:
            # Kill it while it is working: after a few more of its transactions committed.
            target = _commits(log) + 3 + kill
            eventually(lambda target=target: _commits(log) >= target,  # type: ignore[misc]
                       timeout=90, message=lambda: f"processor progress:\n{log.read_text()}")
        finally:
            processor.kill()  # kill -9, mid-loop
            processor.wait()
    processor = _start_processor(bootstrap, log)
    try:
        outputs = read_values(bootstrap, "output", PARTITIONS, "read_committed", INPUTS,
                              settle=3.0, timeout=180)
    finally:
        processor.kill()
        processor.wait()
    counts = Counter(outputs)
    duplicates = {value: n for value, n in counts.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} duplicated, e.g. {list(duplicates)[:5]}"
    assert set(counts) == {b"in-%05d-out" % i for i in range(INPUTS)}
    assert _commits(log) > KILLS  # it really was killed mid-stream, more than once
