"""The codecs: each round-trips, reads what other clients write (both snappy framings), refuses
garbage as a malformed batch and records past the bound (bombs: tests/hardening)."""

from __future__ import annotations

import os
import time

import cramjam
import pytest
from aiokafka import codec as aiokafka_codec

from headrace.record import build_batch, costly_to_open
from headrace.record.compression import (
    LZ4,
    SNAPPY,
    SUPPORTED,
    XERIAL_HEADER,
    ZSTD,
    compress,
    decompress,
)
from headrace.record.errors import InflationLimitError, MalformedBatchError

MIB = 1024 * 1024
DATA = os.urandom(3000) * 40 + b"text " * 20_000  # several Xerial chunks, some compressible
COMPRESSED = sorted(SUPPORTED - {0})
NAMES = {1: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}


@pytest.mark.parametrize("codec", COMPRESSED)
def test_each_codec_round_trips_after_a_reserve(codec: int) -> None:
    inflated = decompress(codec, compress(codec, DATA), reserve=61)
    assert inflated[:61] == bytes(61) and inflated[61:] == DATA


@pytest.mark.parametrize("codec", [SNAPPY, LZ4, ZSTD])
def test_what_aiokafka_writes_is_read_and_what_we_write_aiokafka_reads(codec: int) -> None:
    encode = {SNAPPY: aiokafka_codec.snappy_encode, LZ4: aiokafka_codec.lz4_encode,
              ZSTD: aiokafka_codec.zstd_encode}[codec]
    decode = {SNAPPY: aiokafka_codec.snappy_decode, LZ4: aiokafka_codec.lz4_decode,
              ZSTD: aiokafka_codec.zstd_decode}[codec]
    assert decompress(codec, encode(DATA)) == DATA
    assert decode(compress(codec, DATA)) == DATA


def test_snappy_comes_xerial_framed_or_raw() -> None:
    xerial = compress(SNAPPY, DATA)
    assert xerial.startswith(XERIAL_HEADER)  # as snappy-java writes it
    assert decompress(SNAPPY, bytes(cramjam.snappy.compress_raw(DATA))) == DATA  # librdkafka
    assert decompress(SNAPPY, aiokafka_codec.snappy_encode(DATA, xerial_compatible=False)) == DATA


@pytest.mark.parametrize("codec", COMPRESSED)
def test_garbage_and_truncation_are_malformed(codec: int) -> None:
    with pytest.raises(MalformedBatchError, match=f"undecompressible {NAMES[codec]}"):
        decompress(codec, b"\x07garbage bytes, not a compressed stream" * 3)
    whole = compress(codec, DATA)
    with pytest.raises(MalformedBatchError):
        decompress(codec, whole[: len(whole) // 2])


def test_a_xerial_chunk_running_past_the_batch_is_malformed() -> None:
    with pytest.raises(MalformedBatchError, match="runs past"):
        decompress(SNAPPY, XERIAL_HEADER + (1000).to_bytes(4, "big") + b"short")


@pytest.mark.parametrize("codec", COMPRESSED)
def test_records_past_the_bound_are_refused(codec: int) -> None:
    packed = compress(codec, DATA)
    assert decompress(codec, packed, limit=len(DATA)) == DATA
    with pytest.raises(InflationLimitError, match="inflates past"):
        decompress(codec, packed, limit=len(DATA) - 1)


def test_a_raw_snappy_block_stating_a_huge_length_is_refused_before_inflating() -> None:
    # Raw snappy starts with its inflated length (a varint): 4 GiB - 1 here, then garbage.
    liar = b"\xff\xff\xff\xff\x0f" + b"\x00" * 100
    started = time.monotonic()
    with pytest.raises(InflationLimitError):
        decompress(SNAPPY, liar)
    with pytest.raises(InflationLimitError):
        decompress(SNAPPY, XERIAL_HEADER + len(liar).to_bytes(4, "big") + liar)
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("codec", COMPRESSED)
def test_a_compressed_batch_of_any_codec_over_4_kib_is_opened_off_the_loop(codec: int) -> None:
    small = build_batch([(0, b"k", b"v", [])], compression=codec)
    large = build_batch([(0, b"k", os.urandom(8192), [])], compression=codec)
    assert not costly_to_open(small)
    assert costly_to_open(small + large)
    assert not costly_to_open(build_batch([(0, b"k", os.urandom(8192), [])]))  # plain: cheap
