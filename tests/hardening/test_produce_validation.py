"""Every malformed producer batch is refused with Kafka's error code and per-record errors, and
nothing of the request is stored (issue 14: "Validate every produced batch")."""

from __future__ import annotations

import gzip
import struct
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode

from headrace.core.broker import Broker
from headrace.core.topics import TopicSpec
from headrace.record.compression import CODEC_NAMES, LZ4, SNAPPY, ZSTD, compress
from tests.hardening.produce_wire import produce, record_errors
from tests.server.wire import WireClient
from tests.support.batches import encode_record, make_keyed_batch, raw_batch, zigzag_varint
from tests.support.brokers import in_process_broker

TOPIC = "checked"
COMPACTED = "compacted"


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    async with in_process_broker(tmp_path / "data") as running:
        running.app.broker.create_topic(TopicSpec(TOPIC, 1))
        running.app.broker.create_topic(
            TopicSpec(COMPACTED, 1, configs={"cleanup.policy": "compact"})
        )
        yield running.app.broker


def _records(count: int, key: bytes | None = b"k") -> bytes:
    return b"".join(encode_record(i, i, key, b"value-%d" % i) for i in range(count))


def _body(*fields: bytes) -> bytes:
    """One record from its body fields (attributes first), with a correct length prefix."""
    body = b"".join(fields)
    return zigzag_varint(len(body)) + body


def _v(value: int) -> bytes:
    return zigzag_varint(value)


GOOD_RECORD_BODY = (b"\x00", _v(0), _v(0), _v(1), b"k", _v(1), b"v", _v(0))
NOW_MS = int(time.time() * 1000)

# name -> (batch, expected error code, index of the first record error or None)
MALFORMED: dict[str, tuple[Callable[[], bytes], ErrorCode, int | None]] = {
    "header says 5 records, holds 1": (
        lambda: raw_batch(_records(1), count=5), ErrorCode.invalid_record, 1),
    "garbage records under a valid CRC": (
        lambda: raw_batch(b"\xa5" * 64, count=1), ErrorCode.invalid_record, 0),
    "bytes after the last record": (
        lambda: raw_batch(_records(2) + b"\x00\x00", count=2), ErrorCode.invalid_record, 1),
    "record body shorter than its length": (
        lambda: raw_batch(_v(9) + b"".join(GOOD_RECORD_BODY) + b"\x00", count=1),
        ErrorCode.invalid_record, 0),
    "offset delta out of sequence": (
        lambda: raw_batch(encode_record(0, 0, b"k", b"a") + encode_record(5, 1, b"k", b"b"),
                          count=2),
        ErrorCode.invalid_record, 1),
    "timestamp varlong longer than 10 bytes": (
        lambda: raw_batch(_body(b"\x00", b"\xff" * 10 + b"\x01", _v(0), _v(-1), _v(0), _v(0)),
                          count=1),
        ErrorCode.invalid_record, 0),
    "negative header key length": (
        lambda: raw_batch(_body(*GOOD_RECORD_BODY[:-1], _v(1), _v(-2), _v(-1)), count=1),
        ErrorCode.invalid_record, 0),
    "negative headers count": (
        lambda: raw_batch(_body(*GOOD_RECORD_BODY[:-1], _v(-3)), count=1),
        ErrorCode.invalid_record, 0),
    "legacy magic 1": (
        lambda: raw_batch(_records(1), count=1, magic=1), ErrorCode.invalid_record, None),
    "undecompressible gzip": (
        lambda: raw_batch(b"not gzip at all", count=1, attributes=1),
        ErrorCode.invalid_record, None),
    "gzip records fewer than the header says": (
        lambda: raw_batch(gzip.compress(_records(2)), count=3, attributes=1),
        ErrorCode.invalid_record, 2),
    **{f"garbage {CODEC_NAMES[codec]} records under a valid CRC": (
        lambda codec=codec: raw_batch(compress(codec, b"\xa5" * 64), count=1, attributes=codec),
        ErrorCode.invalid_record, 0) for codec in (SNAPPY, LZ4, ZSTD)},
    **{f"{CODEC_NAMES[codec]} records fewer than the header says": (
        lambda codec=codec: raw_batch(compress(codec, _records(2)), count=3, attributes=codec),
        ErrorCode.invalid_record, 2) for codec in (SNAPPY, LZ4, ZSTD)},
    **{f"undecompressible {CODEC_NAMES[codec]}": (
        lambda codec=codec: raw_batch(b"\x07 not compressed at all", count=1,
                                      attributes=codec),
        ErrorCode.invalid_record, None) for codec in (SNAPPY, LZ4, ZSTD)},
    "a compression codec id naming no codec": (
        lambda: raw_batch(_records(1), count=1, attributes=5), ErrorCode.invalid_record, None),
    "timestamp two hours in the future": (
        lambda: raw_batch(_records(1), count=1, timestamp_ms=NOW_MS + 2 * 3600 * 1000),
        ErrorCode.invalid_timestamp, 0),
    "producer claims LogAppendTime": (
        lambda: raw_batch(_records(1), count=1, attributes=0x08),
        ErrorCode.invalid_timestamp, 0),
    "idempotent producer without a sequence": (
        lambda: raw_batch(_records(1), count=1, producer_id=7, base_sequence=-1),
        ErrorCode.invalid_record, None),
}


@pytest.mark.parametrize("version", [8, 9])
@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_a_malformed_batch_is_refused_and_nothing_is_stored(
    broker: Broker, case: str, version: int
) -> None:
    make, code, first_bad = MALFORMED[case]
    client = await WireClient.connect(broker.kafka_port)
    try:
        answer = await produce(client, TOPIC, make(), version)
        assert answer.error_code == code, answer.error_message
        assert answer.error_message  # Produce v8+ says what is wrong
        errors = record_errors(answer)
        if first_bad is None:
            assert errors == []
        else:
            assert errors and errors[0][0] == first_bad, errors
        assert broker.offsets(TOPIC, 0) == (0, 0)
        # The connection and the partition still work.
        good = await produce(client, TOPIC, make_keyed_batch([(b"k", b"v")]), version)
        assert (good.error_code, good.base_offset) == (ErrorCode.none, 0)
    finally:
        await client.close()


async def test_a_bad_crc_is_a_corrupt_message(broker: Broker) -> None:
    batch = bytearray(make_keyed_batch([(b"k", b"v")]))
    batch[-1] ^= 0xFF
    client = await WireClient.connect(broker.kafka_port)
    answer = await produce(client, TOPIC, bytes(batch))
    await client.close()
    assert answer.error_code == ErrorCode.corrupt_message
    assert broker.offsets(TOPIC, 0) == (0, 0)


async def test_a_compacted_topic_refuses_keyless_records_by_index(broker: Broker) -> None:
    batch = make_keyed_batch([(b"a", b"1"), (None, b"2"), (b"c", b"3"), (None, b"4")])
    client = await WireClient.connect(broker.kafka_port)
    answer = await produce(client, COMPACTED, batch)
    await client.close()
    assert answer.error_code == ErrorCode.invalid_record
    assert [index for index, _ in record_errors(answer)] == [1, 3]
    assert broker.offsets(COMPACTED, 0) == (0, 0)


async def test_one_bad_batch_refuses_the_whole_partition_request(broker: Broker) -> None:
    good = make_keyed_batch([(b"k", b"good")])
    bad = raw_batch(_records(1), count=2)
    client = await WireClient.connect(broker.kafka_port)
    answer = await produce(client, TOPIC, good + bad)
    await client.close()
    assert answer.error_code == ErrorCode.invalid_record
    # Indexes count the partition's records across its batches: the good batch holds record 0.
    assert record_errors(answer)[0][0] == 2
    assert broker.offsets(TOPIC, 0) == (0, 0)


async def test_a_wrong_max_timestamp_is_rewritten_to_the_records_largest(broker: Broker) -> None:
    records = encode_record(0, 0, b"k", b"a") + encode_record(1, 500, b"k", b"b")
    batch = raw_batch(records, count=2, max_timestamp=1)
    client = await WireClient.connect(broker.kafka_port)
    answer = await produce(client, TOPIC, batch)
    await client.close()
    assert answer.error_code == ErrorCode.none
    with broker.read(TOPIC, 0, 0, 1 << 20) as read:
        stored = read.to_bytes()
    (max_timestamp,) = struct.unpack_from(">q", stored, 35)
    assert max_timestamp == 1_700_000_000_500
    assert stored[61:] == batch[61:]  # the records themselves are stored as sent
