"""Decompression bombs for the hardening tests: small gzip batches that inflate enormously,
built by streaming zeros through the compressor (the test never holds the inflated bytes)."""

from __future__ import annotations

import functools
import zlib

from tests.support.batches import raw_batch, zigzag_varint

MIB = 1024 * 1024


@functools.cache
def gzip_bomb(inflated_mib: int = 1000, timestamp_ms: int = 1_700_000_000_000) -> bytes:
    """A valid gzip batch of one keyed record whose value is ``inflated_mib`` MiB of zeros
    (about a thousandth of that on the wire)."""
    size = inflated_mib * MIB
    key = b"bomb"
    body_head = (b"\x00" + zigzag_varint(0) + zigzag_varint(0) + zigzag_varint(len(key)) + key
                 + zigzag_varint(size))
    body_length = len(body_head) + size + 1  # + the headers count
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [compressor.compress(zigzag_varint(body_length) + body_head)]
    chunk = bytes(MIB)
    for _ in range(inflated_mib):
        parts.append(compressor.compress(chunk))
    parts.append(compressor.compress(b"\x00"))
    parts.append(compressor.flush())
    return raw_batch(b"".join(parts), count=1, attributes=1, timestamp_ms=timestamp_ms)
