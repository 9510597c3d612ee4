"""The hand-written Produce request decoder agrees with kio on every version, shares the frame's
record bytes instead of copying them, and turns malformed input into ProduceDecodeError only."""

from __future__ import annotations

import datetime
import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.index import load_request_schema
from kio.serial import entity_reader, entity_writer

from headrace.protocol.produce import (
    MAX_VERSION,
    MIN_VERSION,
    ProduceDecodeError,
    decode_produce_request,
)


def _kio_request(version: int, transactional_id: str | None, topics: Any) -> Any:
    schema: Any = load_request_schema(0, version)
    module = __import__(schema.__module__, fromlist=["TopicProduceData", "PartitionProduceData"])
    return schema(
        transactional_id=transactional_id,
        acks=-1,
        timeout=datetime.timedelta(milliseconds=1234),
        topic_data=tuple(
            module.TopicProduceData(
                name=name,
                partition_data=tuple(
                    module.PartitionProduceData(index=index, records=records)
                    for index, records in partitions
                ),
            )
            for name, partitions in topics
        ),
    )


def _encode(request: Any, prefix: bytes = b"HDR") -> bytes:
    buffer = io.BytesIO()
    buffer.write(prefix)
    entity_writer(type(request))(buffer, request)
    return buffer.getvalue()


TOPICS = [
    ("orders", [(0, b"batch-zero"), (7, None), (3, b"")]),
    ("ünïcode.topic-1", [(1, b"\x00" * 300)]),
    ("empty", []),
]


@pytest.mark.parametrize("version", range(MIN_VERSION, MAX_VERSION + 1))
@pytest.mark.parametrize("transactional_id", [None, "tx-1"])
def test_decoder_matches_kio(version: int, transactional_id: str | None) -> None:
    request = _kio_request(version, transactional_id, TOPICS)
    frame = _encode(request) + b"\x01\x00"  # trailing bytes are ignored, as Kafka does
    decoded = decode_produce_request(frame, 3, version)
    expected, _ = entity_reader(type(request))(frame, 3)
    assert decoded.transactional_id == expected.transactional_id
    assert decoded.acks == expected.acks == -1
    assert decoded.timeout_ms == 1234
    assert [t.name for t in decoded.topic_data] == [t.name for t in expected.topic_data]
    for ours, theirs in zip(decoded.topic_data, expected.topic_data, strict=True):
        assert [p.index for p in ours.partition_data] == [p.index for p in theirs.partition_data]
        assert [None if p.records is None else bytes(p.records) for p in ours.partition_data] == [
            p.records for p in theirs.partition_data
        ]


def test_records_are_views_of_the_frame_not_copies() -> None:
    frame = bytearray(_encode(_kio_request(9, None, [("t", [(0, b"0123456789")])])))
    records = decode_produce_request(memoryview(frame), 3, 9).topic_data[0].partition_data[0]
    assert records.records is not None and records.records.readonly
    frame[-13:-3] = b"ABCDEFGHIJ"  # the records sit just before three empty tag sections
    assert bytes(records.records) == b"ABCDEFGHIJ"


@pytest.mark.parametrize("version", [3, 9])
def test_every_truncation_is_a_decode_error(version: int) -> None:
    frame = _encode(_kio_request(version, "tx", TOPICS))
    for end in range(3, len(frame)):
        with pytest.raises(ProduceDecodeError):
            decode_produce_request(frame[:end], 3, version)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.sampled_from(range(MIN_VERSION, MAX_VERSION + 1)))
def test_fuzz_only_decode_errors(body: bytes, version: int) -> None:
    try:
        request = decode_produce_request(body, 0, version)
    except ProduceDecodeError:
        return
    for topic in request.topic_data:
        for partition in topic.partition_data:
            assert partition.records is None or len(partition.records) <= len(body)
