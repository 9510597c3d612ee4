"""Kafka Streams (Java, ``exactly_once_v2``) on Headrace: a stateful word count with a
repartition topic and a changelogged RocksDB store, kill -9'd mid-stream and restarted (with its
local state kept, and with it wiped so that it is rebuilt from the changelog), outputs each
word's counts 1..n exactly once (read_committed). Run against both transaction protocols the
Java client negotiates: version 2 (KIP-890 part 2: an epoch bump per transaction, partitions and
offsets added by Produce v12 and TxnOffsetCommit v5) and version 1 (AddPartitionsToTxn,
AddOffsetsToTxn).

The application (tests/peers/streams) is built by tests/tools/install.d/kafka-streams.sh; the
test skips, saying so, when it is not built or there is no Java 17+.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from headrace.transactions import records
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



@pytest.fixture
def versioned_broker(transaction_version: int, tmp_path: Path) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(tmp_path / "data", (
        "--transaction-state-log-num-partitions", "3",
        "--transaction-version", str(transaction_version),
    ))
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.mark.parametrize("transaction_version", [2, 1])
def test_kafka_streams_word_count_killed_repeatedly_counts_every_word_exactly_once(
    versioned_broker: BrokerProcess, transaction_version: int, tmp_path: Path,
) -> None:
    bootstrap = versioned_broker.bootstrap
    create_topic(bootstrap, "sentences", PARTITIONS)
    create_topic(bootstrap, "word-counts", PARTITIONS)
    lines = wordcount.sentences(SENTENCES)
    expected = wordcount.expected_counts(lines)
    wordcount.produce_sentences(bootstrap, "sentences", lines, PARTITIONS)
    state_dir = tmp_path / "state"
    log = tmp_path / "streams.log"
    log.touch()
    wordcount.kill_repeatedly(lambda: _start(bootstrap, state_dir, log), state_dir, log,
                              kills=KILLS, timeout=150, name="Kafka Streams")
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
    assert wordcount.counted(log) > sum(expected.values()), "no record was ever processed twice"
    # Version 1 clients leave ClientTransactionVersion at its default, 0.
    versions = _client_transaction_versions(bootstrap)
    assert versions == {2 if transaction_version == 2 else 0}, versions


def _client_transaction_versions(bootstrap: str) -> set[int]:
    """The transaction versions the application's producers ended transactions with, as the
    coordinator logged them in ``__transaction_state``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "state-reader",
                         "enable.auto.commit": False})
    found: dict[str, int] = {}
    try:
        consumer.assign([TopicPartition(records.TRANSACTION_TOPIC, p, 0) for p in range(3)])
        ends = [consumer.get_watermark_offsets(TopicPartition(records.TRANSACTION_TOPIC, p),
                                               timeout=10)[1] for p in range(3)]
        seen = [0, 0, 0]

        def read() -> bool:
            for message in consumer.consume(500, 0.5):
                if message.error() is None:
                    seen[message.partition()] = message.offset() + 1
                    if message.value() is not None:
                        txn_id = records.decode_key(message.key())
                        value = records.decode_value(txn_id, message.value())
                        found[txn_id] = value.client_version
            return all(s >= e for s, e in zip(seen, ends, strict=True))

        eventually(read, timeout=30, interval=0, message="__transaction_state not read")
    finally:
        consumer.close()
    return {v for txn_id, v in found.items() if txn_id.startswith(APPLICATION)}


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
