"""Large produce requests: frames beyond the read buffer go through reused receive buffers, so
pipelined requests must never see each other's bytes, and stored batches must be exact."""

from __future__ import annotations

import asyncio

from kio.schema.errors import ErrorCode

from headrace.core.broker import Broker
from headrace.server.connection import FrameBufferPool, frame_capacity
from tests.server.test_wire import produce_fields
from tests.server.wire import WireClient, build_batch

_PREFIX = 17  # baseOffset, batchLength, partitionLeaderEpoch, magic: rewritten by the leader


def test_pool_reuses_buffers_and_bounds_what_it_keeps() -> None:
    pool = FrameBufferPool(max_buffer_bytes=8192, max_spare_bytes=8192)
    assert pool.take(1500) is None  # the pool never allocates: memory follows received bytes
    first = bytearray(2048)
    pool.give_back(first)
    assert pool.take(2000) is first  # reused, not reallocated
    assert pool.spare_bytes == 0
    small, large = bytearray(1024), bytearray(8192)
    pool.give_back(large)
    pool.give_back(small)  # would exceed max_spare_bytes: dropped
    assert pool.spare_bytes == 8192
    assert pool.take(500) is large  # the only spare that fits
    pool.give_back(bytearray(10_000))  # beyond max_buffer_bytes: never pooled
    assert pool.spare_bytes == 0


def test_frame_buffers_grow_to_powers_of_two_while_poolable() -> None:
    assert frame_capacity(65 * 1024) == 256 * 1024
    assert frame_capacity(300 * 1024) == 512 * 1024
    assert frame_capacity(9 * 1024 * 1024) == 9 * 1024 * 1024  # never pooled: exact


async def test_pipelined_large_produces_are_stored_exactly(broker: Broker) -> None:
    client = await WireClient.connect(broker.kafka_port)
    # Sizes straddle the 256 KiB read buffer and the pool's power-of-two sizes; every batch
    # has its own bytes so a buffer reused too early would show up as a CRC or content error.
    batches = [
        build_batch([bytes([65 + index]) * 1000 + bytes([index]) * 7] * count, key=None)
        for index, count in enumerate([300, 700, 500, 900, 280, 650])
    ]
    assert all(len(batch) > 256 * 1024 for batch in batches)
    correlations = [client.send(0, 9, **produce_fields("large", 0, b)) for b in batches]
    offsets = []
    for correlation in correlations:
        received, response = await client.receive(0, 9)
        assert received == correlation
        partition = response.responses[0].partition_responses[0]
        assert partition.error_code == ErrorCode.none
        offsets.append(partition.base_offset)
    counts = [300, 700, 500, 900, 280, 650]
    assert offsets == [sum(counts[:i]) for i in range(len(counts))]
    stored = b""
    position = 0
    while position < sum(counts):
        with broker.read("large", 0, position, 1 << 20) as read:
            stored += read.to_bytes()
            position = read.high_offset
    expected_tail = [batch[_PREFIX:] for batch in batches]
    cursor = 0
    for index, tail in enumerate(expected_tail):
        length = int.from_bytes(stored[cursor + 8 : cursor + 12], "big")
        assert int.from_bytes(stored[cursor : cursor + 8], "big") == offsets[index]
        assert stored[cursor + _PREFIX : cursor + 12 + length] == tail
        cursor += 12 + length
    assert cursor == len(stored)
    await asyncio.wait_for(client.close(), 10)
