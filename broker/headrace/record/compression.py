"""Compression codecs of RecordBatch v2 records: which exist, which this package handles.

The codec is bits 0-2 of a batch's attributes. Only the records section after the 61-byte
header is compressed. This package decompresses and compresses ``none`` and ``gzip``; batches
of the other codecs (snappy, lz4, zstd) are stored and served whole, never opened: reading
their records raises :class:`UnsupportedCompressionError`.

Decompression is bounded: a ~1 MB gzip batch can inflate to a gigabyte, so the records are
inflated in steps of at most :data:`INFLATE_STEP` bytes and the inflation stops with
:class:`InflationLimitError` as soon as it passes the limit (by default
:data:`MAX_INFLATED_BATCH_BYTES`, 64 MiB — at least a thousand times a Java producer's batch,
and far above what a real producer's 1 MB batch of text inflates to). No path opens a batch
without that bound: produce validation, compaction, the HTTP record stream and consumers.
"""

from __future__ import annotations

import gzip
import zlib

from headrace.record.errors import (
    InflationLimitError,
    MalformedBatchError,
    UnsupportedCompressionError,
)

CODEC_MASK = 0x07
NONE = 0
GZIP = 1
SNAPPY = 2
LZ4 = 3
ZSTD = 4
CODEC_NAMES = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}
#: The codecs :func:`compress` and :func:`decompress` handle.
SUPPORTED = frozenset({NONE, GZIP})
#: The most bytes one batch's records section may inflate to (see the module docstring).
MAX_INFLATED_BATCH_BYTES = 64 * 1024 * 1024
#: Compressed input fed to the inflater at a time, and the most it may produce per call: what
#: a bomb costs before the bound stops it is the bound plus these, never its full size.
FEED_STEP = 64 * 1024
INFLATE_STEP = 1024 * 1024


def codec_of(attributes: int) -> int:
    """The compression codec named by a batch's attributes."""
    return attributes & CODEC_MASK


def decompress(
    codec: int,
    data: bytes | bytearray | memoryview,
    limit: int = MAX_INFLATED_BATCH_BYTES,
    *,
    reserve: int = 0,
) -> bytearray:
    """The records section of a batch of ``codec``, uncompressed, after ``reserve`` zero bytes
    (room for a header, so a plain batch needs no second copy of a large payload).

    Raises InflationLimitError when the records would exceed ``limit`` bytes and
    MalformedBatchError when they do not decompress.
    """
    out = bytearray(reserve)
    if codec == NONE:
        out += data
        return out
    if codec == GZIP:
        try:
            _gunzip(memoryview(data), limit, out)
        except zlib.error as error:
            raise MalformedBatchError(f"undecompressible gzip batch: {error}") from None
        return out
    raise UnsupportedCompressionError(f"compression codec {codec}")


def _gunzip(data: memoryview, limit: int, out: bytearray) -> None:
    """Inflate one or more gzip members (what Python's and Java's gzip writers produce) onto
    ``out``, in bounded steps."""
    budget = limit
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        fed = 0
        pending = b""
        while not inflater.eof:
            if not pending:
                if fed >= len(data):
                    raise MalformedBatchError("gzip batch is cut short")
                pending = bytes(data[fed : fed + FEED_STEP])
                fed += len(pending)
            piece = inflater.decompress(pending, min(INFLATE_STEP, budget + 1))
            pending = inflater.unconsumed_tail
            budget -= len(piece)
            if budget < 0:
                raise InflationLimitError(
                    f"gzip batch of {len(data)} bytes inflates past {limit} bytes"
                )
            out += piece
        rest = inflater.unused_data + bytes(data[fed:])
        if not rest:
            return
        data = memoryview(rest)  # another gzip member follows


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
    "FEED_STEP",
    "GZIP",
    "INFLATE_STEP",
    "LZ4",
    "MAX_INFLATED_BATCH_BYTES",
    "NONE",
    "SNAPPY",
    "SUPPORTED",
    "ZSTD",
    "codec_of",
    "compress",
    "decompress",
]
