"""Request header parsing, kio decoding/encoding and the hand-framed Fetch response."""

from __future__ import annotations

import contextlib
import datetime
import io
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.index import load_response_schema
from kio.schema.errors import ErrorCode
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import Records, i16, i32, i32Timedelta

from headrace.cluster.wire import decode_response, encode_request
from headrace.protocol.codec import (
    MalformedRequestError,
    decode_request,
    encode_response,
    parse_request_header,
    request_schema,
    response_schema,
)
from headrace.protocol.fetch import PartitionData, encode_fetch_body
from headrace.protocol.produce import PartitionResult, encode_produce_body
from headrace.storage import FileRegion


def _frame(header: Any, body: Any) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(header))(buffer, header)
    entity_writer(type(body))(buffer, body)
    return buffer.getvalue()


def _produce_request() -> ProduceRequest:
    return ProduceRequest(
        transactional_id=None,
        acks=i16(-1),
        timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)),
        topic_data=(
            TopicProduceData(
                name="orders",  # type: ignore[arg-type]
                partition_data=(PartitionProduceData(index=i32(2), records=Records(b"abc")),),
            ),
        ),
    )


def test_flexible_request_round_trips_through_header_and_body() -> None:
    header = RequestHeaderV2(
        request_api_key=i16(0), request_api_version=i16(9), correlation_id=i32(77),
        client_id="client-é",
    )
    frame = _frame(header, _produce_request())
    schema = request_schema(0, 9)
    assert schema is ProduceRequest
    parsed, body = decode_request(frame, schema)
    assert (parsed.api_key, parsed.api_version, parsed.correlation_id) == (0, 9, 77)
    assert parsed.client_id == "client-é"
    assert body.topic_data[0].name == "orders"
    assert body.topic_data[0].partition_data[0].records == b"abc"
    assert body.acks == -1


@pytest.mark.parametrize(("api_key", "version"), [(3, 1), (3, 12), (60, 0), (60, 1)])
def test_broker_client_frames_meet_the_server_codec(api_key: int, version: int) -> None:
    """Requests the cluster's wire client frames decode on the server side, and the server's
    response frames decode in that client (Metadata v1 and v12: header v1 and v2)."""
    request = request_schema(api_key, version)
    assert request is not None
    sent = _with_fields(request, topics=None, allow_auto_topic_creation=False,
                        include_topic_authorized_operations=False,
                        include_cluster_authorized_operations=False, endpoint_type=1)
    frame = encode_request(sent, 41, "replica-9")
    assert struct.unpack_from(">i", frame)[0] == len(frame) - 4
    header, body = decode_request(frame[4:], request)
    assert (header.api_key, header.api_version, header.correlation_id) == (api_key, version, 41)
    assert header.client_id == "replica-9" and body == sent

    answer = _with_fields(response_schema(api_key, version),
                          throttle_time=i32Timedelta.parse(datetime.timedelta(0)), brokers=(),
                          topics=(), cluster_id="c", error_code=ErrorCode.none)
    correlation_id, decoded = decode_response(encode_response(41, answer)[4:], sent)
    assert correlation_id == 41 and decoded == answer


def _with_fields(cls: type[Any], **values: Any) -> Any:
    """``cls`` built from those of ``values`` this version declares."""
    names = set(cls.__dataclass_fields__)
    return cls(**{name: value for name, value in values.items() if name in names})


def test_non_flexible_header_with_null_client_id() -> None:
    header = RequestHeaderV1(
        request_api_key=i16(3), request_api_version=i16(1), correlation_id=i32(5), client_id=None
    )
    buffer = io.BytesIO()
    entity_writer(RequestHeaderV1)(buffer, header)
    parsed = parse_request_header(buffer.getvalue() + b"rest", flexible=False)
    assert parsed.client_id is None
    assert parsed.body_offset == 10


def test_trailing_bytes_are_ignored_like_kafka_does() -> None:
    header = RequestHeaderV2(
        request_api_key=i16(0), request_api_version=i16(9), correlation_id=i32(1), client_id="c"
    )
    frame = _frame(header, _produce_request()) + b"\x01\x00\x00"
    _, body = decode_request(frame, ProduceRequest)
    assert body == _produce_request()


def test_truncated_body_is_malformed() -> None:
    header = RequestHeaderV2(
        request_api_key=i16(0), request_api_version=i16(9), correlation_id=i32(1), client_id="c"
    )
    frame = _frame(header, _produce_request())
    with pytest.raises(MalformedRequestError):
        decode_request(frame[:-4], ProduceRequest)


def test_api_versions_response_uses_header_v0_even_when_flexible() -> None:
    schema = load_response_schema(18, 3)
    response = schema(error_code=ErrorCode.none, api_keys=(), throttle_time=datetime.timedelta(0))
    frame = encode_response(42, response)
    size, correlation = struct.unpack_from(">ii", frame)
    assert size == len(frame) - 4
    assert correlation == 42
    # header v0: the body (error code 0) starts right after the correlation id
    assert frame[8:10] == b"\x00\x00"


@pytest.mark.parametrize("version", range(4, 13))
def test_hand_framed_fetch_parses_with_kio(version: int, tmp_path: Path) -> None:
    segment = tmp_path / "segment"
    segment.write_bytes(b"0123456789" * 10)
    with open(segment, "rb") as file:
        region = FileRegion(file.fileno(), 5, 20)
        topics = [
            ("alpha", [
                PartitionData(0, 0, 100, 100, 3, [region, b"tail"]),
                PartitionData(1, ErrorCode.offset_out_of_range, 7, 7, 0),
            ]),
            ("beta", []),
        ]
        parts = encode_fetch_body(version, topics, session_id=0)
        body = b"".join(
            p if isinstance(p, bytes) else segment.read_bytes()[p.position : p.position + p.size]
            for p in parts
        )
    schema = load_response_schema(1, version)
    response, size = entity_reader(schema)(body, 0)
    assert size == len(body)
    alpha, beta = response.responses
    assert alpha.topic == "alpha" and beta.topic == "beta" and beta.partitions == ()
    first, second = alpha.partitions
    assert first.partition_index == 0 and first.high_watermark == 100
    assert first.last_stable_offset == 100
    assert first.records == (b"0123456789" * 10)[5:25] + b"tail"
    if version >= 5:
        assert first.log_start_offset == 3
    assert second.error_code == ErrorCode.offset_out_of_range
    assert not second.records


VALID_FRAME = _frame(
    RequestHeaderV2(
        request_api_key=i16(0), request_api_version=i16(9), correlation_id=i32(1), client_id="c"
    ),
    _produce_request(),
)


def _decode_any(frame: bytes) -> None:
    if len(frame) < 4:
        with pytest.raises(MalformedRequestError):
            parse_request_header(frame)
        return
    api_key, version = struct.unpack_from(">hh", frame)
    schema = request_schema(api_key, version)
    if schema is None:
        return
    with contextlib.suppress(MalformedRequestError):
        decode_request(frame, schema)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_random_frames_only_raise_malformed(frame: bytes) -> None:
    _decode_any(frame)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_produce_frames_only_raise_malformed(data: st.DataObject) -> None:
    frame = bytearray(VALID_FRAME)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(frame) - 1))
        frame[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    _decode_any(bytes(frame[:cut]))


@pytest.mark.parametrize("version", range(3, 10))
def test_hand_framed_produce_parses_with_kio(version: int) -> None:
    body = encode_produce_body(
        version,
        [
            ("orders", [PartitionResult(0, 0, 42, 1_700_000_000_123, 3),
                        PartitionResult(4, 10, -1, -1, -1, "too large")]),
            ("empty", []),
        ],
        throttle_ms=5,
    )
    response, size = entity_reader(load_response_schema(0, version))(body, 0)
    assert size == len(body)
    orders, empty = response.responses
    assert (orders.name, empty.name, empty.partition_responses) == ("orders", "empty", ())
    ok, failed = orders.partition_responses
    assert (ok.index, ok.error_code, ok.base_offset) == (0, ErrorCode.none, 42)
    assert ok.log_append_time is not None
    assert round(ok.log_append_time.timestamp() * 1000) == 1_700_000_000_123
    assert (failed.index, failed.error_code) == (4, ErrorCode.message_too_large)
    assert failed.log_append_time is None
    if version >= 5:
        assert ok.log_start_offset == 3
    if version >= 8:
        assert failed.error_message == "too large"
    assert response.throttle_time == datetime.timedelta(milliseconds=5)
