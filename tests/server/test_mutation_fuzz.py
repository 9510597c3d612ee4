"""Mutated requests over a live socket never crash the broker nor damage a log.

Hypothesis fuzzes the decoder in tests/protocol; this drives the whole server path (framing,
decoding, handlers, storage validation) with seeded byte mutations of valid Produce, Fetch and
Metadata requests, then checks the log still holds exactly the valid appends.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct

from headrace.core.broker import Broker
from headrace.core.topics import TopicSpec
from tests.server.test_wire import fetch_fields, produce, produce_fields
from tests.server.wire import WireClient, build_batch

ROUNDS = 150


def _valid_frames(client: WireClient) -> list[bytes]:
    """Capture encoded frames by encoding through the client into a buffer."""
    frames = []
    captured: list[bytes] = []
    original = client.writer.write
    client.writer.write = captured.append  # type: ignore[method-assign]
    try:
        client.send(0, 9, **produce_fields("fuzz", 0, build_batch([b"fuzz-a", b"fuzz-b"])))
        client.send(1, 12, **fetch_fields("fuzz", 0, 0))
        client.send(3, 12, topics=None, include_topic_authorized_operations=False)
        client.send(0, 3, **produce_fields("fuzz", 0, build_batch([b"old"])))
    finally:
        client.writer.write = original  # type: ignore[method-assign]
    for data in captured:
        frames.append(data[4:])
    return frames


async def test_mutated_frames_never_crash_or_corrupt(broker: Broker) -> None:
    broker.create_topic(TopicSpec("fuzz", 1))
    control = await WireClient.connect(broker.kafka_port)
    assert (await produce(control, "fuzz", build_batch([b"before"]))).base_offset == 0
    templates = _valid_frames(control)
    rng = random.Random(1234)
    for _ in range(ROUNDS):
        frame = bytearray(rng.choice(templates))
        for _ in range(rng.randint(1, 6)):
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        if rng.random() < 0.3:
            del frame[rng.randrange(len(frame)) :]
        client = await WireClient.connect(broker.kafka_port)
        client.send_raw(struct.pack(">i", len(frame)) + bytes(frame))
        # Either an answer or a closed connection; a Fetch may long-poll (max_wait 0 here).
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(client.reader.read(1 << 16), 5)
        await client.close()
    # The broker still serves, and the log still reads back batch by batch from offset 0.
    start, end = broker.offsets("fuzz", 0)
    assert start == 0
    offset = 0
    while offset < end:
        with broker.read("fuzz", 0, offset, 1 << 20) as read:
            data = read.to_bytes()
            next_offset = read.high_offset
        assert int.from_bytes(data[:8], "big") == offset
        assert next_offset > offset
        offset = next_offset
    after = await produce(control, "fuzz", build_batch([b"after"]))
    assert (after.error_code, after.base_offset) == (0, end)
    await control.close()
