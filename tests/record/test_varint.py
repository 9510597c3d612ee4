"""Varints: round trips over each type's whole range, the encoding Kafka clients use, bounds."""

from __future__ import annotations

import pytest
from aiokafka.record.util import encode_varint as aiokafka_encode_varint
from hypothesis import given
from hypothesis import strategies as st

from headrace.record.errors import VarintError
from headrace.record.varint import (
    decode_uvarint,
    decode_varint,
    decode_varlong,
    encode_uvarint,
    encode_varint,
)

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)


@given(INT32, st.binary(max_size=3))
def test_varint_round_trip(value: int, tail: bytes) -> None:
    encoded = encode_varint(value)
    assert len(encoded) <= 5
    assert decode_varint(b"\x07" + encoded + tail, 1) == (value, 1 + len(encoded))


@given(INT64)
def test_varlong_round_trip(value: int) -> None:
    encoded = encode_varint(value)
    assert len(encoded) <= 10
    assert decode_varlong(encoded, 0) == (value, len(encoded))


@given(INT64)
def test_the_encoding_is_the_one_clients_write(value: int) -> None:
    out = bytearray()
    aiokafka_encode_varint(value, out.append)
    assert encode_varint(value) == bytes(out)


@given(st.integers(0, 2**35 - 1))
def test_uvarint_round_trip(value: int) -> None:
    encoded = encode_uvarint(value)
    assert decode_uvarint(encoded, 0) == (value, len(encoded))


@pytest.mark.parametrize(
    ("decode", "limit"), [(decode_varint, 5), (decode_uvarint, 5), (decode_varlong, 10)]
)
def test_a_varint_longer_than_its_type_is_refused(decode: object, limit: int) -> None:
    assert callable(decode)
    assert decode(b"\x81" * (limit - 1) + b"\x01", 0)[1] == limit  # the longest allowed
    with pytest.raises(VarintError, match="longer than"):
        decode(b"\x80" * limit + b"\x01", 0)


@pytest.mark.parametrize("decode", [decode_varint, decode_uvarint, decode_varlong])
@pytest.mark.parametrize("data", [b"", b"\x80", b"\xff\xff"])
def test_a_varint_cut_short_is_refused(decode: object, data: bytes) -> None:
    assert callable(decode)
    with pytest.raises(VarintError, match="runs past"):
        decode(data, 0)
    with pytest.raises(VarintError):
        decode(b"\x00" + data, 1)
