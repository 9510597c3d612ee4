"""A gzip batch of ~1 MB that inflates to 1000 MiB (and its snappy, lz4 and zstd kin): refused
at produce quickly, with bounded memory, while other clients are served; and bounded on every
path that opens stored records (compaction, the HTTP stream, v2 consumer instances) when one
is in a log already."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kio.schema.errors import ErrorCode

from headrace.record import InflationLimitError, decompress
from headrace.record.compression import GZIP, LZ4, SNAPPY, ZSTD
from headrace.storage import PartitionLog
from tests.hardening.bombs import MIB, codec_bomb, gzip_bomb
from tests.hardening.produce_wire import produce
from tests.server.wire import WireClient
from tests.support.batches import make_keyed_batch
from tests.support.brokers import BrokerProcess, RunningBroker, http_broker
from tests.support.waiting import eventually_async

#: Growth of the broker's peak RSS allowed while bombs are handled: the inflation bound
#: (64 MiB) for each of the two checking threads, their plain copies and request buffers.
RSS_BOUND = 320 * MIB


def _status_kib(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def reset_peak_rss(pid: int | str = "self") -> int:
    """Reset the process's peak RSS (VmHWM) to its current RSS, and return that in bytes."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _status_kib(pid, "VmRSS") * 1024


def peak_rss(pid: int | str = "self") -> int:
    return _status_kib(pid, "VmHWM") * 1024


async def _round_trips(port: int, stop: asyncio.Event) -> list[float]:
    """ApiVersions round trips of an unrelated client until ``stop`` is set."""
    client = await WireClient.connect(port)
    times: list[float] = []
    try:
        while not stop.is_set():
            started = time.monotonic()
            await client.request(18, 3, client_software_name="probe",
                                 client_software_version="1")
            times.append(time.monotonic() - started)
            await asyncio.sleep(0.01)
    finally:
        await client.close()
    return times


async def test_gzip_bombs_are_refused_quickly_with_bounded_memory(tmp_path: Path) -> None:
    bomb = gzip_bomb(1000)
    broker = BrokerProcess(tmp_path / "data").start()
    try:
        assert broker.process is not None
        pid = broker.process.pid
        first = await WireClient.connect(broker.kafka_port)
        warm = await produce(first, "bombed", make_keyed_batch([(b"k", b"v")]))
        assert warm.error_code == ErrorCode.none
        before = reset_peak_rss(pid)
        stop = asyncio.Event()
        probe = asyncio.create_task(_round_trips(broker.kafka_port, stop))
        bombers = [await WireClient.connect(broker.kafka_port) for _ in range(4)]
        started = time.monotonic()
        answers = await asyncio.gather(*(produce(c, "bombed", bomb) for c in bombers))
        elapsed = time.monotonic() - started
        stop.set()
        round_trips = await probe
        growth = peak_rss(pid) - before
        for answer in answers:
            assert answer.error_code == ErrorCode.message_too_large, answer.error_message
            assert "inflates past" in answer.error_message
        assert elapsed < 10, f"four bombs took {elapsed:.1f} s to refuse"
        assert round_trips and max(round_trips) < 1.0, max(round_trips)
        assert growth < RSS_BOUND, f"peak RSS grew by {growth / MIB:.0f} MiB"
        after = await produce(first, "bombed", make_keyed_batch([(b"k", b"v2")]))
        assert (after.error_code, after.base_offset) == (ErrorCode.none, 1)  # nothing stored
        for client in [first, *bombers]:
            await client.close()
    finally:
        broker.stop()


#: A bomb of each codec that fits a default max.message.bytes.
BOMBS = {GZIP: lambda: gzip_bomb(1000), SNAPPY: lambda: codec_bomb(SNAPPY, 1000),
         LZ4: lambda: codec_bomb(LZ4, 200), ZSTD: lambda: codec_bomb(ZSTD, 1000)}


@pytest.mark.parametrize("codec", [SNAPPY, LZ4, ZSTD])
def test_a_bomb_of_each_codec_stops_at_the_bound(codec: int) -> None:
    bomb = BOMBS[codec]()
    before = reset_peak_rss()
    started = time.monotonic()
    with pytest.raises(InflationLimitError, match="inflates past 67108864 bytes"):
        decompress(codec, memoryview(bomb)[61:])
    assert time.monotonic() - started < 5
    assert peak_rss() - before < 2 * 64 * MIB  # the bound and its copy, never the bomb's size


async def test_snappy_lz4_and_zstd_bombs_are_refused_at_produce(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data").start()
    try:
        assert broker.process is not None
        pid = broker.process.pid
        client = await WireClient.connect(broker.kafka_port)
        warm = await produce(client, "bombed", make_keyed_batch([(b"k", b"v")]))
        assert warm.error_code == ErrorCode.none
        before = reset_peak_rss(pid)
        for codec in (SNAPPY, LZ4, ZSTD):
            started = time.monotonic()
            answer = await produce(client, "bombed", BOMBS[codec]())
            assert answer.error_code == ErrorCode.message_too_large, answer.error_message
            assert "inflates past" in answer.error_message
            assert time.monotonic() - started < 5
        assert peak_rss(pid) - before < RSS_BOUND
        after = await produce(client, "bombed", make_keyed_batch([(b"k", b"v2")]))
        assert (after.error_code, after.base_offset) == (ErrorCode.none, 1)  # nothing stored
        await client.close()
    finally:
        broker.stop()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningBroker]:
    async with (http_broker(tmp_path / "data") as started,
                aiohttp.ClientSession() as session):
        yield RunningBroker(started.broker, f"http://127.0.0.1:{started.http_port}", session)


async def _log_with_a_bomb(running: RunningBroker, topic: str, codec: int = GZIP,
                          **configs: str) -> PartitionLog:
    """``topic``'s log holding [a=1] [the bomb of ``codec``] [a=2], the bomb written straight
    to storage as a follower would (past produce validation, as from an older broker)."""
    await running.create_topic(topic, partitions=1, **configs)
    log = running.broker.replicas.log(topic, 0)
    assert isinstance(log, PartitionLog)
    log.append(make_keyed_batch([(b"a", b"1")]), leader_epoch=0)
    bomb = bytearray(BOMBS[codec]())
    bomb[0:8] = (1).to_bytes(8, "big")  # its base offset: the log end
    log.append_replica(bytes(bomb))
    log.append(make_keyed_batch([(b"a", b"2")]), leader_epoch=0)
    assert log.log_end_offset == 3
    return log


async def test_compacting_a_log_holding_a_bomb_is_bounded(running: RunningBroker) -> None:
    # Segments roll right after the bomb, so its segment is sealed and cleanable.
    log = await _log_with_a_bomb(running, "compacted-bomb", cleanup_policy="compact",
                                 segment_bytes=str(len(gzip_bomb(1000)) + 100),
                                 min_cleanable_dirty_ratio="0.01")
    assert len(log.segments) >= 2
    before = reset_peak_rss()
    started = time.monotonic()
    task = await asyncio.to_thread(log.prepare_cleaning, int(time.time() * 1000))
    assert task is not None
    await asyncio.to_thread(task.run)
    task.finish()
    assert task.error is None, task.error
    assert time.monotonic() - started < 10
    assert peak_rss() - before < RSS_BOUND
    with log.read(1, 2 << 20) as read:
        kept = read.to_bytes()
    assert kept[61:len(gzip_bomb(1000))] == gzip_bomb(1000)[61:]  # kept whole, unopened


@pytest.mark.parametrize("codec", [GZIP, ZSTD])
async def test_the_http_stream_skips_a_bomb_with_an_error_event(running: RunningBroker,
                                                               codec: int) -> None:
    await _log_with_a_bomb(running, "streamed-bomb", codec)
    before = reset_peak_rss()
    url = f"{running.cluster_url}/topics/streamed-bomb/stream?from=beginning&format=string&limit=2"
    events: list[tuple[str, dict[str, Any]]] = []
    async with running.session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as response:
        assert response.status == 200
        kind = ""
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
    assert [(kind, event["offset"]) for kind, event in events] == [
        ("record", 0), ("error", 1), ("record", 2)]
    assert "inflates past" in events[1][1]["message"]
    assert peak_rss() - before < RSS_BOUND


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD])
async def test_a_v2_consumer_instance_reading_a_bomb_is_bounded(running: RunningBroker,
                                                               codec: int) -> None:
    await _log_with_a_bomb(running, "consumed-bomb", codec)
    base = f"{running.base_url}/consumers/bomb-group"
    async with running.session.post(base, json={"format": "binary"}) as response:
        instance = (await response.json())["base_uri"]
    partitions = {"partitions": [{"topic": "consumed-bomb", "partition": 0}]}
    async with running.session.post(instance + "/assignments", json=partitions) as response:
        assert response.status == 204
    async with running.session.post(instance + "/positions", json={
            "offsets": [{"topic": "consumed-bomb", "partition": 0, "offset": 1}]}) as response:
        assert response.status == 204
    before = reset_peak_rss()
    answers: list[tuple[int, Any]] = []

    async def poll() -> bool:
        async with running.session.get(instance + "/records?timeout=300") as response:
            answers.append((response.status, await response.json()))
        return answers[-1][0] != 200 or bool(answers[-1][1])

    await eventually_async(poll, timeout=30, message="the bomb's refusal")
    status, body = answers[-1]
    assert status == 500 and "inflates past" in body["message"], body
    assert peak_rss() - before < RSS_BOUND
    async with running.session.delete(instance) as response:
        assert response.status == 204
