"""Quix Streams (``processing_guarantee="exactly-once"``) on Headrace: a stateful word count
with a repartition topic and a changelogged RocksDB store, kill -9'd mid-stream and restarted
(with its local state kept, and with it wiped so that it is rebuilt from the changelog),
outputs each word's counts 1..n exactly once (read_committed)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.streams import wordcount
from tests.support.brokers import ROOT, BrokerProcess, subprocess_env
from tests.support.clients import create_topic

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(420),
    pytest.mark.skipif(importlib.util.find_spec("quixstreams") is None,
                       reason="quixstreams is not installed (bash tests/tools/install.sh)"),
]

SENTENCES = 1500
PARTITIONS = 2
KILLS = 3


def _start(bootstrap: str, state_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.streams.quix_wordcount", bootstrap, str(state_dir)],
            cwd=ROOT, env=subprocess_env(), stdout=output, stderr=subprocess.STDOUT,
        )



def test_quix_word_count_killed_repeatedly_counts_every_word_exactly_once(
    streams_broker: BrokerProcess, tmp_path: Path,
) -> None:
    bootstrap = streams_broker.bootstrap
    create_topic(bootstrap, "sentences", PARTITIONS)
    create_topic(bootstrap, "word-counts", PARTITIONS)
    lines = wordcount.sentences(SENTENCES)
    expected = wordcount.expected_counts(lines)
    wordcount.produce_sentences(bootstrap, "sentences", lines, PARTITIONS)
    state_dir = tmp_path / "state"
    log = tmp_path / "quix.log"
    log.touch()
    wordcount.kill_repeatedly(lambda: _start(bootstrap, state_dir, log), state_dir, log,
                              kills=KILLS, timeout=120, name="Quix")
    shutil.rmtree(state_dir, ignore_errors=True)
    processor = _start(bootstrap, state_dir, log)
    try:
        seen = wordcount.read_counts(bootstrap, "word-counts", PARTITIONS, expected,
                                     timeout=180)
    finally:
        processor.kill()
        processor.wait()
    problems = wordcount.exactly_once_problems(seen, expected)
    assert not problems, "\n".join(problems[:10])
    # The kills landed mid-stream: records were processed again after a restart.
    assert wordcount.counted(log) > sum(expected.values()), "no record was ever processed twice"
