"""Fuzz: a producer's batch, mutated any way a hostile client might, is refused or stored
exactly — and what is stored, a consumer's decoder reads as the header says."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import google_crc32c
from aiokafka.record.default_records import DefaultRecordBatch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from headrace.record.compression import SUPPORTED, compress
from headrace.storage import LogConfig, LogManager, StorageError
from tests.support.batches import make_keyed_batch

NOW_MS = 1_700_000_000_000
records_strategy = st.lists(
    st.tuples(st.none() | st.binary(max_size=20), st.none() | st.binary(max_size=40)),
    min_size=1, max_size=8,
)


@st.composite
def mutated_batches(draw: st.DrawFn) -> bytes:
    records = draw(records_strategy)
    codec = draw(st.sampled_from(sorted(SUPPORTED)))
    batch = bytearray(make_keyed_batch(
        records, timestamp_ms=NOW_MS, attributes=codec,
        compress=(lambda data: compress(codec, data)) if codec else None,
    ))
    mutation = draw(st.sampled_from(["flip", "flip", "count", "truncate", "none"]))
    if mutation == "flip":
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(21, len(batch) - 1))  # the CRC-covered part
            batch[at] ^= draw(st.integers(1, 255))
    elif mutation == "count":
        struct.pack_into(">i", batch, 57, draw(st.integers(-2, 20)))
        if draw(st.booleans()):
            struct.pack_into(">i", batch, 23, draw(st.integers(-2, 20)))  # lastOffsetDelta
    elif mutation == "truncate":
        cut = draw(st.integers(62, len(batch) - 1))
        batch = batch[:cut]
        struct.pack_into(">i", batch, 8, len(batch) - 12)
    if draw(st.booleans()) or mutation == "truncate":  # a valid CRC over the mutation
        struct.pack_into(">I", batch, 17, google_crc32c.value(bytes(batch[21:])))
    return bytes(batch)


def _unrewritten(batch: bytes) -> bytes:
    """The bytes a leader keeps as sent: magic, attributes .. base timestamp, and from the
    producer id on (offsets, epoch, CRC and max timestamp may be rewritten)."""
    return batch[16:17] + batch[21:35] + batch[43:]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=mutated_batches())
def test_a_mutated_batch_is_refused_or_stored_exactly(batch: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        manager = LogManager(Path(directory), default_config=LogConfig(),
                             clock_ms=lambda: NOW_MS)
        manager.create_topic("fuzz", 1)
        log = manager.get_partition("fuzz", 0)
        try:
            log.append(batch, leader_epoch=0)
        except StorageError as error:
            event(f"refused: {type(error).__name__}")
            assert log.log_end_offset == 0
            with log.read(0, 1 << 20) as read:
                assert read.to_bytes() == b""
            return
        finally:
            manager.close()
        event("accepted")
        manager = LogManager(Path(directory), default_config=LogConfig(),
                             clock_ms=lambda: NOW_MS)
        log = manager.get_partition("fuzz", 0)
        with log.read(0, 1 << 20) as read:
            stored = read.to_bytes()
        manager.close()
    assert len(stored) == len(batch)
    assert _unrewritten(stored) == _unrewritten(batch)
    assert google_crc32c.value(stored[21:]) == struct.unpack_from(">I", stored, 17)[0]
    (count,) = struct.unpack_from(">i", stored, 57)
    decoded = list(DefaultRecordBatch(stored))
    assert [record.offset for record in decoded] == list(range(count))
    (max_timestamp,) = struct.unpack_from(">q", stored, 35)
    assert max_timestamp == max(record.timestamp for record in decoded)
