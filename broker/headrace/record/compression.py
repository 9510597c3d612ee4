"""Compression codecs of RecordBatch v2 records: which exist, which this package handles.

The codec is bits 0-2 of a batch's attributes. Only the records section after the 61-byte
header is compressed. This package decompresses and compresses all five of Kafka's codecs
(none, gzip; snappy, lz4 and zstd through ``cramjam``'s Rust bindings); ids 5-7 name no codec
and raise :class:`UnsupportedCompressionError`. Snappy comes in two framings: the Xerial one
snappy-java (Java producers, kafka-python, aiokafka) writes, a 16-byte header then chunks of
raw snappy, each behind its big-endian length; and plain raw snappy (librdkafka). LZ4 is the
LZ4 frame format (KIP-57), zstd a zstd frame.

Decompression is bounded: a ~1 MB gzip batch can inflate to a gigabyte, so the records are
inflated in steps of at most :data:`INFLATE_STEP` bytes and the inflation stops with
:class:`InflationLimitError` as soon as it passes the limit (by default
:data:`MAX_INFLATED_BATCH_BYTES`, 64 MiB — at least a thousand times a Java producer's batch,
and far above what a real producer's 1 MB batch of text inflates to). No path opens a batch
without that bound: produce validation, compaction, the HTTP record stream and consumers.
Raw snappy states its inflated length up front, so each (Xerial) chunk's length is checked
against what is left of the bound before it is inflated. LZ4 and zstd frames need not state
theirs (Java's writers leave it out): they inflate into a buffer of a likely size and, if
that is too small, into an anonymous mapping one byte larger than the bound, where only the
pages written cost memory and a bomb stops when it is full.
"""

from __future__ import annotations

import gzip
import mmap
import struct
import zlib
from typing import Any

import cramjam

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
#: The codecs :func:`compress` and :func:`decompress` handle: all of Kafka's.
SUPPORTED = frozenset(CODEC_NAMES)
#: The most bytes one batch's records section may inflate to (see the module docstring).
MAX_INFLATED_BATCH_BYTES = 64 * 1024 * 1024
#: Compressed input fed to the inflater at a time, and the most it may produce per call: what
#: a bomb costs before the bound stops it is the bound plus these, never its full size.
FEED_STEP = 64 * 1024
INFLATE_STEP = 1024 * 1024
#: The header snappy-java's SnappyOutputStream starts its stream with: a marker byte,
#: "SNAPPY\0", version 1 and the oldest compatible version 1 (big-endian int32s).
XERIAL_HEADER = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
#: The uncompressed bytes per Xerial chunk snappy-java writes (its default block size).
XERIAL_BLOCK = 32 * 1024
#: What cramjam's LZ4 and zstd decoders say when the output buffer is full (Rust's WriteZero).
_OUTPUT_FULL = "failed to write whole buffer"
_CHUNK_LENGTH = struct.Struct(">i")
#: LZ4 and zstd records are first inflated into this many times their compressed size plus
#: the slack (most batches compress less than 8:1), else through the bound's mapping.
FRAME_GUESS_RATIO = 8
FRAME_GUESS_SLACK = 64 * 1024


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
    if codec not in SUPPORTED:
        raise UnsupportedCompressionError(f"compression codec {codec}")
    try:
        if codec == SNAPPY:
            _unsnappy(memoryview(data), limit, out)
        else:
            out = _inflate_frame(codec, data, limit, reserve)
    except cramjam.DecompressionError as error:
        raise MalformedBatchError(
            f"undecompressible {CODEC_NAMES[codec]} batch: {error}") from None
    return out


def _unsnappy(data: memoryview, limit: int, out: bytearray) -> None:
    """Inflate Xerial-framed or raw snappy onto ``out``, checking each raw snappy block's
    stated length against what is left of ``limit`` before spending memory on it."""
    if data[: len(XERIAL_HEADER)] != XERIAL_HEADER:
        blocks = [data]
    else:
        blocks = []
        position = len(XERIAL_HEADER)
        while position < len(data):
            if len(data) - position < _CHUNK_LENGTH.size:
                raise MalformedBatchError("snappy batch is cut short")
            (length,) = _CHUNK_LENGTH.unpack_from(data, position)
            position += _CHUNK_LENGTH.size
            if length < 0 or length > len(data) - position:
                raise MalformedBatchError(f"snappy chunk of {length} bytes runs past the batch")
            blocks.append(data[position : position + length])
            position += length
    budget = limit
    for block in blocks:
        size: int = cramjam.snappy.decompress_raw_len(block)  # read from the block's header
        budget -= size
        if budget < 0:
            raise InflationLimitError(
                f"snappy batch of {len(data)} bytes inflates past {limit} bytes")
        start = len(out)
        out += cramjam.snappy.decompress_raw(block)
        if len(out) - start != size:
            raise MalformedBatchError("a snappy block inflates to other than it states")


def _inflate_frame(codec: int, data: bytes | bytearray | memoryview, limit: int,
                   reserve: int) -> bytearray:
    """An LZ4 or zstd frame inflated after ``reserve`` zero bytes: first straight into a buffer
    of a likely size (most batches fit it, without a copy), else through a mapping of
    ``limit`` + 1 bytes."""
    module = cramjam.lz4 if codec == LZ4 else cramjam.zstd
    guess = min(limit + 1, FRAME_GUESS_RATIO * len(data) + FRAME_GUESS_SLACK)
    out = bytearray(reserve + guess)
    written = _inflate_into(module, data, memoryview(out)[reserve:])
    if written is not None:
        if written > limit:
            raise _past_limit(codec, data, limit)
        del out[reserve + written :]
        return out
    if guess > limit:
        raise _past_limit(codec, data, limit)
    del out[reserve:]
    with mmap.mmap(-1, limit + 1) as scratch:  # pages cost memory only once written
        written = _inflate_into(module, data, scratch)
        if written is None or written > limit:
            raise _past_limit(codec, data, limit)
        out += memoryview(scratch)[:written]
    return out


def _inflate_into(module: Any, data: bytes | bytearray | memoryview,
                  output: memoryview | mmap.mmap) -> int | None:
    """Bytes ``data`` inflated to in ``output``, or None if they did not fit."""
    try:
        written: int = module.decompress_into(data, output)
    except cramjam.DecompressionError as error:
        if str(error) == _OUTPUT_FULL:
            return None
        raise
    return written


def _past_limit(codec: int, data: bytes | bytearray | memoryview, limit: int
                ) -> InflationLimitError:
    return InflationLimitError(
        f"{CODEC_NAMES[codec]} batch of {len(data)} bytes inflates past {limit} bytes")


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
    """A records section compressed with ``codec`` as Kafka's Java writers do: gzip without a
    timestamp (the same records always compress to the same bytes), Xerial-framed snappy,
    LZ4 frames of independent blocks (KIP-57: Kafka reads no other kind), zstd level 3."""
    if codec == NONE:
        return data
    if codec == GZIP:
        return gzip.compress(data, mtime=0)
    if codec == SNAPPY:
        parts = [XERIAL_HEADER]
        for start in range(0, len(data), XERIAL_BLOCK):
            block = bytes(cramjam.snappy.compress_raw(data[start : start + XERIAL_BLOCK]))
            parts += [_CHUNK_LENGTH.pack(len(block)), block]
        return b"".join(parts)
    if codec == LZ4:
        compressor = cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
        compressor.compress(data)
        return bytes(compressor.finish())
    if codec == ZSTD:
        return bytes(cramjam.zstd.compress(data, level=3))
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
    "XERIAL_BLOCK",
    "XERIAL_HEADER",
    "ZSTD",
    "codec_of",
    "compress",
    "decompress",
]
