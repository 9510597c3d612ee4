"""Decompression bombs for the hardening tests: small batches that inflate enormously, built
by streaming zeros through the compressor (the test never holds the inflated bytes). Snappy
cannot compress much better than 20:1, so its bomb lies instead: a raw snappy block whose
header states a gigabyte."""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterator

import cramjam

from headrace.record.compression import LZ4, SNAPPY, XERIAL_HEADER, ZSTD
from tests.support.batches import raw_batch, zigzag_varint

MIB = 1024 * 1024


def _bomb_records(inflated_mib: int) -> Iterator[bytes]:
    """The records section of one keyed record whose value is ``inflated_mib`` MiB of zeros,
    a MiB at a time."""
    size = inflated_mib * MIB
    key = b"bomb"
    body_head = (b"\x00" + zigzag_varint(0) + zigzag_varint(0) + zigzag_varint(len(key)) + key
                 + zigzag_varint(size))
    body_length = len(body_head) + size + 1  # + the headers count
    yield zigzag_varint(body_length) + body_head
    chunk = bytes(MIB)
    for _ in range(inflated_mib):
        yield chunk
    yield b"\x00"


@functools.cache
def codec_bomb(codec: int, inflated_mib: int = 1000) -> bytes:
    """A valid-CRC batch of ``codec`` (snappy, lz4, zstd) whose records inflate past the bound:
    a real frame of ``inflated_mib`` MiB for lz4 and zstd (lz4 reaches about 250:1, so keep it
    to ~200 MiB for the batch to fit max.message.bytes), a lying raw snappy block for snappy."""
    if codec == SNAPPY:
        stated = _uvarint(inflated_mib * MIB)
        block = stated + bytes(cramjam.snappy.compress_raw(b"\x00" * 4096))[len(_uvarint(4096)):]
        section = XERIAL_HEADER + len(block).to_bytes(4, "big") + block
    else:
        compressor = (cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
                      if codec == LZ4 else cramjam.zstd.Compressor())
        for piece in _bomb_records(inflated_mib):
            compressor.compress(piece)
        section = bytes(compressor.finish())
    assert codec in (SNAPPY, LZ4, ZSTD)
    return raw_batch(section, count=1, attributes=codec)


def _uvarint(value: int) -> bytes:
    """An unsigned LEB128 varint, as raw snappy states its length."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@functools.cache
def gzip_bomb(inflated_mib: int = 1000, timestamp_ms: int = 1_700_000_000_000) -> bytes:
    """A valid gzip batch of one keyed record whose value is ``inflated_mib`` MiB of zeros
    (about a thousandth of that on the wire)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [compressor.compress(piece) for piece in _bomb_records(inflated_mib)]
    parts.append(compressor.flush())
    return raw_batch(b"".join(parts), count=1, attributes=1, timestamp_ms=timestamp_ms)
