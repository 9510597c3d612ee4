"""Kafka's variable-length integers, bounded so damaged bytes cannot run on.

Records (RecordBatch v2) use zigzag varints: ``varint`` for 32-bit fields (at most 5 bytes) and
``varlong`` for the timestamp delta (at most 10 bytes); the request/response framing of
flexible API versions uses unsigned varints (at most 5 bytes).

Decoding runs in kio's compiled readers (twice as fast as Python in a record walk), which
enforce those widths. ``read_*`` are those readers as they are, for loops that decode many
varints and handle :data:`READ_ERRORS` once: they return the value and the number of bytes
read. ``decode_*`` return the value and the position after it, and raise
:class:`~headrace.record.errors.VarintError`.
"""

from __future__ import annotations

from kio.serial.errors import SerialError
from kio.serial.readers import read_signed_varint as read_varint
from kio.serial.readers import read_signed_varlong as read_varlong
from kio.serial.readers import read_unsigned_varint as read_uvarint

from headrace.record.errors import VarintError

Buffer = bytes | bytearray | memoryview
#: What the ``read_*`` readers raise: kio's buffer underflow (a varint cut short) and
#: ValueError (a varint longer than its type allows).
READ_ERRORS = (SerialError, ValueError)


def encode_varint(value: int) -> bytes:
    """The zigzag varint of a signed value (32 or 64 bits: the encoding is the same)."""
    encoded = (value << 1) ^ (value >> 63)
    if encoded < 0x80:
        return bytes((encoded,))
    out = bytearray()
    while encoded > 0x7F:
        out.append((encoded & 0x7F) | 0x80)
        encoded >>= 7
    out.append(encoded)
    return bytes(out)


def encode_uvarint(value: int) -> bytes:
    """The unsigned varint of a non-negative value (flexible request/response framing)."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_uvarint(data: Buffer, position: int) -> tuple[int, int]:
    """The unsigned varint at ``position`` (at most 5 bytes) and the position after it."""
    try:
        value, size = read_uvarint(data, position)
    except READ_ERRORS as error:
        raise _varint_error(error, position) from None
    return value, position + size


def decode_varint(data: Buffer, position: int) -> tuple[int, int]:
    """The zigzag varint at ``position`` (a 32-bit field, at most 5 bytes) and the position
    after it."""
    try:
        value, size = read_varint(data, position)
    except READ_ERRORS as error:
        raise _varint_error(error, position) from None
    return value, position + size


def decode_varlong(data: Buffer, position: int) -> tuple[int, int]:
    """The zigzag varint at ``position`` (a 64-bit field, at most 10 bytes) and the position
    after it."""
    try:
        value, size = read_varlong(data, position)
    except READ_ERRORS as error:
        raise _varint_error(error, position) from None
    return value, position + size


def _varint_error(error: Exception, position: int) -> VarintError:
    if isinstance(error, SerialError):
        return VarintError(f"varint at byte {position} runs past the end of its buffer")
    return VarintError(f"varint at byte {position} is longer than its type allows: {error}")


__all__ = [
    "READ_ERRORS",
    "decode_uvarint",
    "decode_varint",
    "decode_varlong",
    "encode_uvarint",
    "encode_varint",
    "read_uvarint",
    "read_varint",
    "read_varlong",
]
