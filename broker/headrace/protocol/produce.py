"""Hand-framed Produce responses (v3-9): the per-request hot path, without kio's generic writer.

kio's dataclass writer spends tens of microseconds per small response on type checks; a Produce
answer is a few fixed-width fields per partition, so it is packed here directly. The tests check
every version against kio's own decoder.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from headrace.protocol.fetch import uvarint

MIN_VERSION = 3
MAX_VERSION = 9
FLEXIBLE_FROM = 9

_PARTITION = struct.Struct(">ihqq")  # index, error code, base offset, log append time
_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_I16 = struct.Struct(">h")


@dataclass(slots=True)
class PartitionResult:
    index: int
    error_code: int
    base_offset: int
    log_append_time_ms: int = -1
    log_start_offset: int = -1
    error_message: str | None = None


def _string(value: str, flexible: bool) -> bytes:
    encoded = value.encode()
    if flexible:
        return uvarint(len(encoded) + 1) + encoded
    return _I16.pack(len(encoded)) + encoded


def _nullable_string(value: str | None, flexible: bool) -> bytes:
    if value is None:
        return b"\x00" if flexible else b"\xff\xff"
    return _string(value, flexible)


def encode_produce_body(
    version: int, topics: list[tuple[str, list[PartitionResult]]], throttle_ms: int = 0
) -> bytes:
    """The ProduceResponse body (after the response header) for ``version``."""
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise ValueError(f"Produce v{version} is not hand-framed")
    flexible = version >= FLEXIBLE_FROM
    out = bytearray(uvarint(len(topics) + 1) if flexible else _I32.pack(len(topics)))
    for name, partitions in topics:
        out += _string(name, flexible)
        out += uvarint(len(partitions) + 1) if flexible else _I32.pack(len(partitions))
        for partition in partitions:
            out += _PARTITION.pack(
                partition.index,
                partition.error_code,
                partition.base_offset,
                partition.log_append_time_ms,
            )
            if version >= 5:
                out += _I64.pack(partition.log_start_offset)
            if version >= 8:
                out += b"\x01" if flexible else _I32.pack(0)  # record_errors: empty
                out += _nullable_string(partition.error_message, flexible)
            if flexible:
                out += b"\x00"
        if flexible:
            out += b"\x00"
    out += _I32.pack(throttle_ms)
    if flexible:
        out += b"\x00"
    return bytes(out)
