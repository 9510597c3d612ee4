"""The v2 header: where its fields sit, what its CRC covers, the rewrites a leader makes."""

from __future__ import annotations

import struct

import google_crc32c
from hypothesis import given
from hypothesis import strategies as st

from headrace.record import layout
from headrace.record.layout import (
    HEADER_SIZE,
    INT32_MAX,
    BatchHeader,
    batch_crc,
    increment_sequence,
    log_append_time_header,
    pack_batch,
    parse_header,
    rewritten_prefix,
    seal,
)


def _batch(records: bytes = b"\x10records", **fields: int) -> bytes:
    values = {"record_count": 1, "last_offset_delta": 0, "base_timestamp": 5,
              "max_timestamp": 9} | fields
    return pack_batch(records, **values)


def test_field_offsets_match_the_header_struct() -> None:
    fields = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
    packed = layout.HEADER.pack(*fields)
    at = [layout.BASE_OFFSET_AT, layout.BATCH_LENGTH_AT, layout.LEADER_EPOCH_AT,
          layout.MAGIC_AT, layout.CRC_AT, layout.ATTRIBUTES_AT, layout.LAST_OFFSET_DELTA_AT,
          layout.BASE_TIMESTAMP_AT, layout.MAX_TIMESTAMP_AT, layout.PRODUCER_ID_AT,
          layout.PRODUCER_EPOCH_AT, layout.BASE_SEQUENCE_AT, layout.RECORD_COUNT_AT]
    formats = [">q", ">i", ">i", ">b", ">I", ">h", ">i", ">q", ">q", ">q", ">h", ">i", ">i"]
    assert [struct.unpack_from(f, packed, o)[0] for f, o in zip(formats, at, strict=True)] == list(
        fields)
    assert HEADER_SIZE == 61 and layout.CRC_START == 21 and layout.PREFIX_SIZE == 17


@given(st.binary(max_size=200), st.integers(0, 2**40), st.integers(-1, 2**31 - 1))
def test_pack_batch_frames_and_checksums_from_the_attributes_on(
        records: bytes, base_offset: int, epoch: int) -> None:
    batch = _batch(records, base_offset=base_offset, leader_epoch=epoch, attributes=0x10,
                   producer_id=7, producer_epoch=1, base_sequence=3)
    header = parse_header(batch)
    assert header.size == len(batch) == HEADER_SIZE + len(records)
    assert (header.base_offset, header.leader_epoch, header.magic) == (base_offset, epoch, 2)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 1, 3)
    assert header.crc == google_crc32c.value(batch[21:]) == batch_crc(batch)
    assert batch[HEADER_SIZE:] == records


def test_seal_rewrites_the_crc_after_an_edit() -> None:
    batch = bytearray(_batch())
    batch[-1] ^= 0xFF
    assert batch_crc(batch) != parse_header(batch).crc
    assert parse_header(seal(batch)).crc == google_crc32c.value(bytes(batch[21:]))


def test_the_leader_rewrites_leave_a_valid_batch() -> None:
    batch = _batch()
    header = parse_header(batch)
    moved = rewritten_prefix(header, 1000, 4) + batch[17:]
    assert parse_header(moved)[1:] == header._replace(base_offset=1000, leader_epoch=4)[1:]
    assert batch_crc(moved) == header.crc  # the prefix is outside the CRC
    stamped = log_append_time_header(memoryview(batch), header, 1000, 4, 77) + batch[61:]
    new = parse_header(stamped)
    assert (new.base_offset, new.leader_epoch, new.max_timestamp) == (1000, 4, 77)
    assert new.attributes & layout.ATTR_TIMESTAMP_TYPE
    assert new.crc == google_crc32c.value(stamped[21:])


def test_header_properties() -> None:
    header = BatchHeader(0, 10, 100, -1, 2, 0, layout.ATTR_CONTROL, 4, 0, 0, 1, 0, INT32_MAX - 1, 5)
    assert (header.size, header.last_offset, header.next_offset) == (112, 14, 15)
    assert header.is_control
    assert header.last_sequence == 2  # wrapped past INT32_MAX


def test_sequences_wrap_at_int32_max() -> None:
    assert increment_sequence(5, 3) == 8
    assert increment_sequence(INT32_MAX, 1) == 0
    assert increment_sequence(INT32_MAX - 1, 3) == 1
