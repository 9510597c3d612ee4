"""Log cleaner, retention and producer-id expiry metrics, from a real in-process broker.

A real broker (short retention check, short ``producer.id.expiration.ms``) takes records from
a real idempotent librdkafka producer into a compacted topic, a size-retained topic and a topic
whose sealed segment is then corrupted and switched to compaction; ``/metrics`` must show the
committed cleaner passes with what they removed, the failing passes, the segments retention
deleted and the producer states that expired.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from headrace.core.broker import Broker
from headrace.core.maintenance import LogMaintenanceObserver, cleaning_result
from headrace.core.topics import TopicSpec
from headrace.observability.metrics import CLEANING_RESULTS, BrokerMetrics
from headrace.storage import PartitionLog
from tests.support.brokers import in_process_broker
from tests.support.clients import confluent_producer
from tests.support.log_reads import read_records
from tests.support.waiting import eventually_async

DEADLINE_S = 30.0
RECORDS = 40
KEYS = 5
SEGMENT_BYTES = "1024"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Running:
    broker: Broker
    session: aiohttp.ClientSession
    metrics_url: str

    async def scrape(self) -> Samples:
        async with self.session.get(self.metrics_url) as response:
            assert response.status == 200
            text = await response.text()
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    async def poll(self, what: str, condition: Callable[[Samples], bool]) -> Samples:
        async def scraped() -> Samples | None:
            samples = await self.scrape()
            return samples if condition(samples) else None

        return await eventually_async(scraped, timeout=DEADLINE_S, message=what)


def _sample(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    metrics = BrokerMetrics(1, "test", process_metrics=False)
    started = in_process_broker(tmp_path / "data", observer=metrics, http=True, node_id=1,
                                retention_check_seconds=0.05, producer_id_expiration_ms=300)
    async with started, aiohttp.ClientSession() as session:
        yield Running(started.broker, session, f"http://127.0.0.1:{started.http_port}/metrics")


def _keyed(count: int, first_key: int = 0, keys: int = KEYS) -> list[tuple[bytes, bytes | None]]:
    return [(b"k%d" % (first_key + i % keys), b"v" * 200) for i in range(count)]


# The compacted topic also gets tombstones for two keys, then records of other keys after them
# so the tombstones end up in sealed segments: the second pass over them removes them.
TOMBSTONES: list[tuple[bytes, bytes | None]] = [(b"k0", None), (b"k1", None)]
COMPACTED_RECORDS = [*_keyed(RECORDS), *TOMBSTONES, *_keyed(10, first_key=2, keys=3)]


def _produce_one_batch_per_record(
    bootstrap: str, records: dict[str, list[tuple[bytes, bytes | None]]]
) -> None:
    """Keyed records from one idempotent producer, one batch per record so small segments
    roll."""
    producer = confluent_producer(bootstrap, {"enable.idempotence": True, "linger.ms": 0})
    for i in range(max(len(batch) for batch in records.values())):
        for topic, batch in records.items():
            if i < len(batch):
                key, value = batch[i]
                producer.produce(topic, key=key, value=value, partition=0)
        assert producer.flush(DEADLINE_S) == 0


def _corrupt_first_batch(path: str) -> None:
    """Flip a byte inside the first batch's records (covered by its CRC)."""
    with open(path, "r+b") as segment:
        segment.seek(100)
        byte = segment.read(1)
        segment.seek(100)
        segment.write(bytes([byte[0] ^ 0xFF]))


async def test_cleaner_retention_and_expiry_move_the_metrics(running: Running) -> None:
    broker = running.broker
    before = await running.scrape()
    # Every series exists at 0 before any pass, so rate() and the alert see the first one.
    for result in CLEANING_RESULTS:
        assert _sample(before, "headrace_log_cleaner_passes_total", result=result) == 0
    for name in ("headrace_log_cleaner_bytes_read_total",
                 "headrace_log_cleaner_records_removed_total",
                 "headrace_log_retention_segments_deleted_total",
                 "headrace_producer_ids_expired_total", "headrace_log_cleaner_last_pass_seconds",
                 "headrace_log_cleaner_failing_partitions"):
        assert _sample(before, name) == 0, name

    small = {"segment.bytes": SEGMENT_BYTES}
    broker.create_topic(TopicSpec("compacted", 1, configs={
        **small, "cleanup.policy": "compact", "delete.retention.ms": "0"}))
    broker.create_topic(TopicSpec("sized", 1, configs={**small, "retention.bytes": "2048"}))
    broker.create_topic(TopicSpec("broken", 1, configs=small))
    await asyncio.to_thread(_produce_one_batch_per_record, f"127.0.0.1:{broker.kafka_port}",
                            {"compacted": COMPACTED_RECORDS, "sized": _keyed(RECORDS),
                             "broken": _keyed(RECORDS)})

    # The producer is idle from now on: its state expires in each of the three partitions.
    samples = await running.poll("producers expired", lambda s: _sample(
        s, "headrace_producer_ids_expired_total") >= 3)
    assert _sample(samples, "headrace_producer_ids_expired_total") == 3

    samples = await running.poll("tombstones removed by a later pass", lambda s: _sample(
        s, "headrace_log_cleaner_tombstones_removed_total") >= len(TOMBSTONES))
    assert _sample(samples, "headrace_log_cleaner_tombstones_removed_total") == len(TOMBSTONES)
    assert _sample(samples, "headrace_log_cleaner_passes_total", result="ok") >= 2
    assert broker.logs is not None
    compacted = broker.logs.get_partition("compacted", 0)
    assert isinstance(compacted, PartitionLog)
    kept = read_records(compacted)
    assert all(record.value is not None for record in kept)
    removed = len(COMPACTED_RECORDS) - len(kept)
    assert removed > 0
    assert _sample(samples, "headrace_log_cleaner_records_removed_total") == removed
    read = _sample(samples, "headrace_log_cleaner_bytes_read_total")
    written = _sample(samples, "headrace_log_cleaner_bytes_written_total")
    assert 0 < written < read
    assert _sample(samples, "headrace_log_cleaner_passes_total", result="error") == 0
    assert _sample(samples, "headrace_log_cleaner_failing_partitions") == 0
    assert 0 < _sample(samples, "headrace_log_cleaner_last_pass_seconds") < DEADLINE_S

    sized = broker.logs.get_partition("sized", 0)
    assert sized.log_start_offset > 0
    assert _sample(samples, "headrace_log_retention_segments_deleted_total") >= 1
    assert _sample(samples, "headrace_log_retention_bytes_deleted_total") >= 1024

    # A sealed segment that fails its CRC makes every pass over that partition fail.
    broken = broker.logs.get_partition("broken", 0)
    assert isinstance(broken, PartitionLog)
    _corrupt_first_batch(str(broken.segments[0].log_path))
    broker.alter_configs("broken", {**small, "cleanup.policy": "compact"})
    failed = await running.poll("a failed cleaner pass", lambda s: _sample(
        s, "headrace_log_cleaner_passes_total", result="error") >= 1)
    assert _sample(failed, "headrace_log_cleaner_failing_partitions") == 1
    # Failed passes change nothing, so they add no bytes or records.
    assert _sample(failed, "headrace_log_cleaner_bytes_read_total") == read
    assert _sample(failed, "headrace_log_cleaner_records_removed_total") == removed


def test_pass_results_and_the_observer_hook() -> None:
    assert cleaning_result(True, None) == "ok"
    assert cleaning_result(False, OSError("disk")) == "error"
    assert cleaning_result(False, None) == "aborted"
    metrics = BrokerMetrics(1, "test", process_metrics=False)
    assert isinstance(metrics, LogMaintenanceObserver)
    with pytest.raises(ValueError):
        metrics.on_cleaning_pass(None, "exploded", 0.1)  # type: ignore[arg-type]
