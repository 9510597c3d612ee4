"""Client quotas against real clients and tools on a ``headrace broker`` process: a
confluent-kafka producer and consumer held to their byte rates (measured rate near the quota,
the throttle reported in librdkafka's statistics), ``headrace quotas`` and Kafka's own
``kafka-configs`` altering and describing quotas.

The broker measures over 3 windows of 1 s (``--quota-window-num 3``) so a fresh client's free
burst (two windows' worth) stays small next to the measured seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headrace.cli import main as headrace_main
from tests.peers.kafka import kafka_missing_reason, run_kafka_tool
from tests.support.brokers import BrokerProcess
from tests.support.clients import confluent_consumer, confluent_producer, create_topic

WINDOWS = 3
QUOTA = 200_000  # bytes per second
MEASURE_SECONDS = 4.0
CONFIG_COMMAND = "org.apache.kafka.tools.ConfigCommand"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path / "data",
                            extra_args=("--quota-window-num", str(WINDOWS))).start()
    try:
        yield process
    finally:
        process.stop()


def _quotas(broker: BrokerProcess, *args: str) -> None:
    assert headrace_main(["quotas", *args, "-b", broker.bootstrap]) == 0


class ThrottleStats:
    """The largest broker throttle librdkafka's statistics reported."""

    def __init__(self) -> None:
        self.max_ms = 0

    def __call__(self, text: str) -> None:
        for broker in json.loads(text).get("brokers", {}).values():
            self.max_ms = max(self.max_ms, int(broker.get("throttle", {}).get("max", 0)))


def _assert_near_quota(moved: int, seconds: float) -> None:
    # At most the quota over the time plus the free first span and one window overlapping it;
    # at least half of it (payload bytes are below request bytes; the machine is shared).
    assert moved <= QUOTA * (seconds + WINDOWS + 1)
    assert moved >= QUOTA * seconds * 0.5


def test_a_producer_is_held_to_its_producer_byte_rate(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "quota-produce")
    _quotas(broker, "alter", "--user", "ANONYMOUS",
            "--add-config", f"producer_byte_rate={QUOTA}")
    stats = ThrottleStats()
    producer = confluent_producer(broker.bootstrap, {
        # Batches well below a window's worth of quota: a request larger than the quota
        # allows per window earns the free span again each time its throttle outlasts it
        # (Kafka's arithmetic, see tests/security/test_quota_math.py).
        "linger.ms": 5, "batch.size": 16384, "statistics.interval.ms": 200, "stats_cb": stats,
        "queue.buffering.max.messages": 2000})
    acked = [0]

    def delivered(error: Any, message: Any) -> None:
        if error is None:
            acked[0] += len(message.value())

    value = b"x" * 1000
    started = time.monotonic()
    while time.monotonic() - started < MEASURE_SECONDS:
        try:
            producer.produce("quota-produce", value, on_delivery=delivered)
        except BufferError:
            producer.poll(0.05)
        producer.poll(0)
    seconds = time.monotonic() - started
    moved = acked[0]
    producer.flush(30)
    _assert_near_quota(moved, seconds)
    deadline = time.monotonic() + 10
    while stats.max_ms == 0 and time.monotonic() < deadline:
        producer.poll(0.2)
    assert stats.max_ms > 0, "librdkafka never saw a throttle"


def test_a_consumer_is_held_to_its_consumer_byte_rate(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "quota-fetch")
    producer = confluent_producer(broker.bootstrap, {"linger.ms": 20})
    value = b"y" * 1000
    for _ in range(3000):  # 3 MB: more than the consumer may read while measured
        producer.produce("quota-fetch", value)
        producer.poll(0)
    assert producer.flush(30) == 0
    _quotas(broker, "alter", "--client-id", "quota-consumer",
            "--add-config", f"consumer_byte_rate={QUOTA}")
    stats = ThrottleStats()
    consumer = confluent_consumer(broker.bootstrap, {
        "client.id": "quota-consumer", "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "statistics.interval.ms": 200, "stats_cb": stats})
    consumer.subscribe(["quota-fetch"])
    try:
        moved, started = 0, None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            message = consumer.poll(0.1)
            if message is None or message.error():
                continue
            if started is None:
                started = time.monotonic()  # the group has formed: measure from here
            moved += len(message.value())
            if time.monotonic() - started >= MEASURE_SECONDS:
                break
        assert started is not None, "nothing consumed"
        seconds = time.monotonic() - started
        _assert_near_quota(moved, seconds)
        while stats.max_ms == 0 and time.monotonic() < deadline:
            consumer.poll(0.2)
        assert stats.max_ms > 0, "librdkafka never saw a throttle"
    finally:
        consumer.close()


KAFKA_MISSING = kafka_missing_reason()


@pytest.mark.skipif(KAFKA_MISSING is not None, reason=str(KAFKA_MISSING))
def test_kafka_configs_alters_and_describes_client_quotas(
    broker: BrokerProcess, capsys: pytest.CaptureFixture[str],
) -> None:
    def tool(*args: str) -> str:
        done = run_kafka_tool(CONFIG_COMMAND, "--bootstrap-server", broker.bootstrap, *args,
                              timeout=90)
        assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        return done.stdout

    tool("--alter", "--entity-type", "clients", "--entity-name", "reports",
         "--add-config", "producer_byte_rate=1048576,consumer_byte_rate=2097152")
    tool("--alter", "--entity-type", "users", "--entity-name", "alice",
         "--entity-type", "clients", "--entity-default", "--add-config", "request_percentage=50")
    described = tool("--describe", "--entity-type", "clients", "--entity-name", "reports")
    assert "producer_byte_rate=1048576" in described
    assert "consumer_byte_rate=2097152" in described
    capsys.readouterr()
    _quotas(broker, "describe", "--user", "alice", "--output", "json")
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"entity": "client-id=<default>, user=alice",
                     "quotas": {"request_percentage": 50.0}}]
    tool("--alter", "--entity-type", "clients", "--entity-name", "reports",
         "--delete-config", "producer_byte_rate")
    assert "producer_byte_rate" not in tool("--describe", "--entity-type", "clients",
                                            "--entity-name", "reports")
