"""Kafka Streams (Java, ``exactly_once_v2``) on Headrace: a stateful word count with a
repartition topic and a changelogged RocksDB store, kill -9'd mid-stream and restarted (with its
local state kept, and with it wiped so that it is rebuilt from the changelog), outputs each
word's counts 1..n exactly once (read_committed).

The application (tests/peers/streams) is built by tests/tools/install.d/kafka-streams.sh; the
test skips, saying so, when it is not built or there is no Java 17+.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from tests.peers.kafka_streams import streams_missing_reason, word_count_command
from tests.streams import wordcount
from tests.support.brokers import BrokerProcess
from tests.support.clients import create_topic
from tests.support.waiting import eventually

MISSING = streams_missing_reason()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(480),
    pytest.mark.skipif(MISSING is not None, reason=str(MISSING)),
]

SENTENCES = 1500
PARTITIONS = 2
KILLS = 3
APPLICATION = "streams-wordcount"  # its application.id: the group and the topic prefix


def _start(bootstrap: str, state_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as output:
        return subprocess.Popen(
            word_count_command(bootstrap, state_dir), stdin=subprocess.DEVNULL,
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )


def _counted(log: Path) -> int:
    return log.read_text(errors="replace").count("\ncounted ")


def test_kafka_streams_word_count_killed_repeatedly_counts_every_word_exactly_once(
    streams_broker: BrokerProcess, tmp_path: Path,
) -> None:
    bootstrap = streams_broker.bootstrap
    create_topic(bootstrap, "sentences", PARTITIONS)
    create_topic(bootstrap, "word-counts", PARTITIONS)
    lines = wordcount.sentences(SENTENCES)
    expected = wordcount.expected_counts(lines)
    wordcount.produce_sentences(bootstrap, "sentences", lines, PARTITIONS)
    state_dir = tmp_path / "state"
    log = tmp_path / "streams.log"
    log.touch()
    for kill in range(KILLS):
        if kill % 2:
            shutil.rmtree(state_dir, ignore_errors=True)  # rebuilt from the changelog
        application = _start(bootstrap, state_dir, log)
        try:
            target = _counted(log) + 700 + 300 * kill  # killed mid-stream, after some commits
            eventually(lambda target=target: _counted(log) >= target,  # type: ignore[misc]
                       timeout=150,
                       message=lambda: f"Kafka Streams progress:\n{log.read_text()[-3000:]}")
        finally:
            application.kill()  # kill -9
            application.wait()
    shutil.rmtree(state_dir, ignore_errors=True)
    application = _start(bootstrap, state_dir, log)
    try:
        seen = wordcount.read_counts(bootstrap, "word-counts", PARTITIONS, expected,
                                     timeout=240)
        _assert_internal_topics(bootstrap)
    finally:
        application.kill()
        application.wait()
    problems = wordcount.exactly_once_problems(seen, expected)
    assert not problems, "\n".join(problems[:10]) + f"\n{log.read_text()[-3000:]}"
    assert _counted(log) > sum(expected.values()), "no record was ever processed twice"


def _assert_internal_topics(bootstrap: str) -> None:
    """The topics Kafka Streams created for itself, with its configs, and its purge of the
    repartition topic (DeleteRecords up to the committed offsets)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    repartition = f"{APPLICATION}-by-word-repartition"
    changelog = f"{APPLICATION}-counts-changelog"
    topics = admin.list_topics(timeout=10).topics
    assert repartition in topics and changelog in topics, sorted(topics)
    described = admin.describe_configs([ConfigResource(ResourceType.TOPIC, changelog)])
    configs = next(iter(described.values())).result(timeout=10)
    assert configs["cleanup.policy"].value == "compact"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        def purged() -> bool:
            return any(consumer.get_watermark_offsets(TopicPartition(repartition, p),
                                                      timeout=10)[0] > 0
                       for p in range(PARTITIONS))

        eventually(purged, timeout=30, message="the repartition topic was never purged")
    finally:
        consumer.close()
