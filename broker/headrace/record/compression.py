"""Compression codecs of RecordBatch v2 records: which exist, which this package handles.

The codec is bits 0-2 of a batch's attributes. Only the records section after the 61-byte
header is compressed. This package decompresses and compresses ``none`` and ``gzip``; batches
of the other codecs (snappy, lz4, zstd) are stored and served whole, never opened: reading
their records raises :class:`UnsupportedCompressionError`.
"""

from __future__ import annotations

import gzip
import zlib

from headrace.record.errors import MalformedBatchError, UnsupportedCompressionError

CODEC_MASK = 0x07
NONE = 0
GZIP = 1
SNAPPY = 2
LZ4 = 3
ZSTD = 4
CODEC_NAMES = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}
#: The codecs :func:`compress` and :func:`decompress` handle.
SUPPORTED = frozenset({NONE, GZIP})


def codec_of(attributes: int) -> int:
    """The compression codec named by a batch's attributes."""
    return attributes & CODEC_MASK


def decompress(codec: int, data: bytes) -> bytes:
    """The records section of a batch of ``codec``, uncompressed."""
    if codec == NONE:
        return data
    if codec == GZIP:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise MalformedBatchError(f"undecompressible gzip batch: {error}") from None
    raise UnsupportedCompressionError(f"compression codec {codec}")


def compress(codec: int, data: bytes) -> bytes:
    """A records section compressed with ``codec`` (gzip without a timestamp, so the same
    records always compress to the same bytes)."""
    if codec == NONE:
        return data
    if codec == GZIP:
        return gzip.compress(data, mtime=0)
    raise UnsupportedCompressionError(f"compression codec {codec}")


__all__ = [
    "CODEC_MASK",
    "CODEC_NAMES",
    "GZIP",
    "LZ4",
    "NONE",
    "SNAPPY",
    "SUPPORTED",
    "ZSTD",
    "codec_of",
    "compress",
    "decompress",
]
