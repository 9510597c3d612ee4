"""Fetch responses larger than the socket buffers: sendfile with writability waits, both loops."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest
import uvloop

from headrace.core.topics import TopicSpec
from tests.server.test_wire import fetch_fields, produce
from tests.server.wire import WireClient, build_batch
from tests.support.brokers import in_process_broker

BATCHES = 10
VALUE_BYTES = 600_000


async def _large_fetch_round_trip(data_dir: Path) -> None:
    running = await in_process_broker(data_dir).start()
    broker = running.broker
    try:
        broker.create_topic(TopicSpec("big", 1))
        producer = await WireClient.connect(broker.kafka_port)
        sent = []
        for index in range(BATCHES):
            batch = build_batch([os.urandom(VALUE_BYTES)], timestamp=index)
            result = await produce(producer, "big", batch)
            assert result.error_code == 0
            sent.append(batch)
        # A small receive buffer (set before connecting, so the window stays small) makes the
        # broker hit EAGAIN mid-sendfile and wait for writability.
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        raw.setblocking(False)
        await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", broker.kafka_port))
        consumer = WireClient(*await asyncio.open_connection(sock=raw))
        correlation = consumer.send(
            1, 12, **fetch_fields("big", 0, 0, partition_max_bytes=64 << 20)
        )
        received, response = await consumer.receive(1, 12, wait_seconds=30)
        assert received == correlation
        records = response.responses[0].partitions[0].records
        # Stored batches differ from the sent ones only in the base offset (bytes 0..7).
        assert len(records) == sum(len(b) for b in sent)
        position = 0
        for offset, batch in enumerate(sent):
            stored = records[position : position + len(batch)]
            assert int.from_bytes(stored[:8], "big") == offset
            assert stored[8:12] == batch[8:12]  # length
            assert stored[16:] == batch[16:]  # magic, CRC and records (the epoch is the leader's)
            position += len(batch)
        # The connection still works after the big response.
        after = await consumer.request(
            3, 12, topics=None, include_topic_authorized_operations=False
        )
        assert after.brokers[0].port == broker.kafka_port
        await consumer.close()
        await producer.close()
    finally:
        await running.stop()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_large_fetch_over_small_socket_buffer(loop: str, tmp_path: Path) -> None:
    scenario = _large_fetch_round_trip(tmp_path / "data")
    if loop == "uvloop":
        uvloop.run(scenario)
    else:
        asyncio.run(scenario)
