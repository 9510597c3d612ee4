"""What a real idempotent librdkafka producer sees when a broker expires its state: the
UNKNOWN_PRODUCER_ID answer makes it bump its epoch and carry on (an OUT_OF_ORDER_SEQUENCE_NUMBER
would be fatal to it). The one storage test with a broker, because the point is the client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import confluent_kafka

from tests.support.brokers import in_process_broker
from tests.support.clients import confluent_producer
from tests.support.waiting import eventually_async

EXPIRATION_MS = 200
DEADLINE_S = 30.0


def _deliver(producer: confluent_kafka.Producer, values: list[bytes]) -> list[object]:
    """Produce ``values`` one at a time; the delivery outcome of each (offset or error)."""
    outcomes: list[object] = []

    def on_delivery(
        error: confluent_kafka.KafkaError | None, message: confluent_kafka.Message
    ) -> None:
        outcomes.append(error if error is not None else message.offset())

    for value in values:
        producer.produce("expiring", value, partition=0, on_delivery=on_delivery)
        remaining = producer.flush(DEADLINE_S)
        assert remaining == 0, "delivery did not finish"
    return outcomes


async def _scenario(data_dir: Path) -> None:
    running = await in_process_broker(
        data_dir, retention_check_seconds=0.05, producer_id_expiration_ms=EXPIRATION_MS
    ).start()
    broker = running.broker
    try:
        fatal: list[confluent_kafka.KafkaError] = []
        producer = confluent_producer(
            running.bootstrap,
            {
                "enable.idempotence": True,
                "linger.ms": 0,
                "error_cb": lambda error: fatal.append(error) if error.fatal() else None,
            },
        )
        first = await asyncio.to_thread(_deliver, producer, [b"a", b"b", b"c"])
        assert first == [0, 1, 2]
        assert broker.logs is not None
        log = broker.logs.get_partition("expiring", 0)
        state = log.producer_state  # type: ignore[attr-defined]
        (pid,) = state.producers
        # The broker's retention loop expires it.
        await eventually_async(lambda: pid not in state.producers, timeout=DEADLINE_S,
                               message="the producer state to expire")
        second = await asyncio.to_thread(_deliver, producer, [b"d", b"e", b"f"])
        assert second == [3, 4, 5] and not fatal
        # It came back under its producer id with a bumped epoch, from sequence 0.
        entry = state.producers[pid]
        assert entry.epoch == 1 and entry.batches[0].first_sequence == 0
        producer.flush(DEADLINE_S)
    finally:
        await running.stop()


def test_librdkafka_producer_survives_expiry_of_its_state(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path / "data"))
