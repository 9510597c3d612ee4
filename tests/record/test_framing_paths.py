"""The C walk over a batch's records (headrace.record._framing) and the pure-Python walk it
replaces give the same verdict on any batch: accepted with the same max timestamp, or refused
naming the same records with the same kind of problem."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headrace.record import InvalidRecordsError, framing
from headrace.record.framing import TimestampWindow, check_records
from tests.support.batches import raw_batch, zigzag_varint

pytestmark = pytest.mark.skipif(not framing.COMPILED, reason="headrace.record._framing not built")

NOW_MS = 1_700_000_000_000
text_keys = st.text(max_size=6).map(str.encode)
header_keys = st.one_of(text_keys, text_keys, text_keys, st.binary(max_size=6))  # some not UTF-8
headers = st.lists(st.tuples(header_keys, st.none() | st.binary(max_size=6)), max_size=3)
records = st.lists(
    st.tuples(st.none() | st.binary(max_size=8), st.none() | st.binary(max_size=12), headers,
              st.integers(-3, 3)),  # key, value, headers, timestamp delta
    min_size=1, max_size=6,
)


def _bytes_field(data: bytes | None) -> bytes:
    return zigzag_varint(-1) if data is None else zigzag_varint(len(data)) + data


def _record(index: int, record: tuple[bytes | None, bytes | None,
                                      list[tuple[bytes, bytes | None]], int]) -> bytes:
    key, value, pairs, timestamp_delta = record
    body = b"\x00" + zigzag_varint(timestamp_delta) + zigzag_varint(index)
    body += _bytes_field(key) + _bytes_field(value) + zigzag_varint(len(pairs))
    for header_key, header_value in pairs:
        body += zigzag_varint(len(header_key)) + header_key + _bytes_field(header_value)
    return zigzag_varint(len(body)) + body


@st.composite
def batches(draw: st.DrawFn) -> tuple[bytes, int]:
    """A plain batch, often mutated past its framing, and the record count its header says."""
    drawn = draw(records)
    body = bytearray(b"".join(_record(i, r) for i, r in enumerate(drawn)))
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):
        if not body:
            break
        at = draw(st.integers(0, len(body) - 1))
        mutation = draw(st.sampled_from(["flip", "insert", "delete", "varint"]))
        if mutation == "flip":
            body[at] ^= draw(st.integers(1, 255))
        elif mutation == "insert":
            body[at:at] = draw(st.binary(min_size=1, max_size=3))
        elif mutation == "delete":
            del body[at : at + draw(st.integers(1, 3))]
        else:  # a huge or overlong varint, as a hostile length would be
            body[at:at] = draw(st.sampled_from(
                [b"\xff" * 9 + b"\x7f", b"\xfe" * 10 + b"\x01", b"\x80\x00", b"\xff" * 11]))
    count = len(drawn) if draw(st.integers(0, 4)) else draw(st.integers(0, 8))
    batch = bytearray(raw_batch(bytes(body), count=len(drawn), timestamp_ms=NOW_MS))
    struct.pack_into(">i", batch, 57, count)
    return bytes(batch), count


def _verdict(walk: object) -> tuple[object, ...]:
    assert callable(walk)
    try:
        return ("accepted", walk())
    except InvalidRecordsError as error:
        return ("refused", error.timestamp,
                [(index, _kind(message)) for index, message in error.record_errors])


def _kind(message: str) -> str:
    """The class of a problem; aiokafka words some framing problems differently. A header key
    that is not UTF-8 counts as framing: a record with both problems is refused at the same
    index either way (INVALID_RECORD), and which the walks meet first depends on aiokafka's
    order of reads, which differs for truncated and overlong varints."""
    for kind in ("offset delta", "out of range", "without a key", "fewer than"):
        if kind in message:
            return kind
    return "framing"


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=batches(), need_keys=st.booleans(), base_offset=st.sampled_from([0, 7]),
       window=st.none() | st.just(TimestampWindow(NOW_MS - 1, NOW_MS + 1)))
def test_compiled_and_python_walks_agree(
    drawn: tuple[bytes, int], need_keys: bool, base_offset: int,
    window: TimestampWindow | None,
) -> None:
    batch, count = drawn
    batch = struct.pack(">q", base_offset) + batch[8:]
    compiled = _verdict(lambda: check_records(batch, base_offset, count,
                                              need_keys=need_keys, window=window))
    python = _verdict(lambda: framing._walk_in_python(batch, base_offset, count,
                                                      need_keys=need_keys, window=window))
    assert compiled == python


def test_a_length_near_two_to_the_63_is_refused_on_both_paths() -> None:
    body = b"\x00" + zigzag_varint(0) + zigzag_varint(0) + zigzag_varint(2**63 - 1) + b"abc"
    batch = raw_batch(zigzag_varint(len(body)) + body, count=1)
    for walk in (check_records, framing._walk_in_python):
        with pytest.raises(InvalidRecordsError) as refused:
            walk(batch, 0, 1, need_keys=False, window=None)
        assert [index for index, _ in refused.value.record_errors] == [0]
