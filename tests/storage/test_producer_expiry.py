"""Producer-id expiration (Kafka's producer.id.expiration.ms, KIP-854): idle idempotent
producers are forgotten by the retention pass and on load, live ones keep their duplicate
detection up to the boundary, and no restart brings an expired producer back."""

from __future__ import annotations

import json
import tempfile
import zlib
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from headrace.record import BatchHeader, parse_batches
from headrace.storage import (
    DEFAULT_PRODUCER_ID_EXPIRATION_MS,
    InvalidConfigError,
    LogConfig,
    LogManager,
    OutOfOrderSequenceError,
    PartitionLog,
    UnknownProducerIdError,
)
from headrace.storage.producer_state import ProducerEntry, ProducerStateManager
from tests.storage.conftest import ManualClock, OpenManager, simulate_crash
from tests.support.batches import make_batch

EXPIRATION_MS = 10_000
CONFIG = LogConfig(segment_bytes=600)


def _idem(pid: int, seq: int, clock: ManualClock, *, count: int = 1) -> bytes:
    """An idempotent batch stamped with the current (manual) time, as a live client would."""
    return make_batch(
        [b"p%d-s%d" % (pid, seq + i) for i in range(count)],
        producer_id=pid,
        producer_epoch=0,
        base_sequence=seq,
        timestamp_ms=clock.now_ms,
    )


def _open(open_manager: OpenManager) -> LogManager:
    manager = open_manager(CONFIG, producer_id_expiration_ms=EXPIRATION_MS)
    if "t" not in manager.topics():
        manager.create_topic("t", 1)
    return manager


def _refuses_continuation(log: PartitionLog, pid: int, seq: int, clock: ManualClock) -> bool:
    """The partition answers a non-zero sequence as from an unknown producer (and writes
    nothing)."""
    end = log.log_end_offset
    try:
        log.append(_idem(pid, seq, clock), leader_epoch=0)
    except UnknownProducerIdError as error:
        return error.kafka_error_code == 59 and log.log_end_offset == end
    return False


def test_retention_pass_forgets_idle_producers_and_keeps_active_ones(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager = _open(open_manager)
    log = manager.get_partition("t", 0)
    log.append(_idem(1, 0, clock), leader_epoch=0)
    log.append(_idem(2, 0, clock), leader_epoch=0)
    clock.advance(EXPIRATION_MS - 3_000)
    log.append(_idem(2, 1, clock), leader_epoch=0)  # producer 2 stays active
    clock.advance(3_000)  # producer 1 idle for exactly the expiration, producer 2 for 3 s
    report = manager.enforce_retention()
    assert report.producers_expired == 1
    assert set(log.producer_state.producers) == {2}
    # Producer 1 is now unknown: a continuation is refused, sequence 0 starts afresh.
    assert _refuses_continuation(log, 1, 1, clock)
    assert not log.append(_idem(1, 0, clock), leader_epoch=0).duplicate
    # Producer 2 kept its state: a retry is answered with the original offsets.
    retry = log.append(_idem(2, 1, clock), leader_epoch=0)
    assert retry.duplicate and retry.base_offset == 2
    assert manager.enforce_retention().producers_expired == 0


def test_duplicates_are_detected_right_up_to_the_boundary(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager = _open(open_manager)
    log = manager.get_partition("t", 0)
    batch = _idem(7, 0, clock, count=3)
    log.append(batch, leader_epoch=0)
    clock.advance(EXPIRATION_MS - 1)
    assert manager.enforce_retention().producers_expired == 0
    retry = log.append(batch, leader_epoch=0)
    assert retry.duplicate and (retry.base_offset, retry.last_offset) == (0, 2)
    assert log.log_end_offset == 3
    clock.advance(1)
    assert manager.enforce_retention().producers_expired == 1
    # The same resend is now from an unknown producer at sequence 0: it is appended again
    # (Kafka's behaviour too: deduplication ends with the producer's state).
    again = log.append(batch, leader_epoch=0)
    assert not again.duplicate and again.base_offset == 3


def test_a_retry_does_not_extend_the_producer_life(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager = _open(open_manager)
    log = manager.get_partition("t", 0)
    batch = _idem(3, 0, clock)
    log.append(batch, leader_epoch=0)
    clock.advance(EXPIRATION_MS // 2)
    assert log.append(batch, leader_epoch=0).duplicate  # nothing written: not a write
    clock.advance(EXPIRATION_MS // 2)
    assert manager.enforce_retention().producers_expired == 1


def test_expired_entry_is_not_resurrected_from_an_older_snapshot(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager = _open(open_manager)
    log = manager.get_partition("t", 0)
    log.append(_idem(1, 0, clock), leader_epoch=0)
    log.flush()  # a snapshot holding producer 1
    clock.advance(EXPIRATION_MS // 2)
    log.append(_idem(2, 0, clock), leader_epoch=0)
    log.flush()
    clock.advance(EXPIRATION_MS // 2)
    assert manager.enforce_retention().producers_expired == 1
    simulate_crash(manager)  # no snapshot written since producer 1 expired
    log = _open(open_manager).get_partition("t", 0)
    assert set(log.producer_state.producers) == {2}
    assert _refuses_continuation(log, 1, 1, clock)
    assert log.append(_idem(2, 0, clock), leader_epoch=0).duplicate


def test_batches_replayed_after_the_snapshot_do_not_resurrect_an_expired_producer(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager = _open(open_manager)
    log = manager.get_partition("t", 0)
    log.append(make_batch([b"plain"]), leader_epoch=0)
    log.flush()  # the newest snapshot is older than producer 5's only batch
    log.append(_idem(5, 0, clock), leader_epoch=0)
    clock.advance(EXPIRATION_MS)
    simulate_crash(manager)  # rebuilt by replaying producer 5's batch from the log
    log = _open(open_manager).get_partition("t", 0)
    assert 5 not in log.producer_state.producers
    assert _refuses_continuation(log, 5, 1, clock)


def test_a_write_after_the_snapshot_keeps_the_snapshotted_window(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    """A producer past its expiration but not yet swept may continue; after a restart its
    later write (replayed from the log) keeps it alive with its whole window, not half of it."""
    manager = _open(open_manager)
    log = manager.get_partition("t", 0)
    first = _idem(1, 0, clock)
    log.append(first, leader_epoch=0)
    clock.advance(EXPIRATION_MS + 1)
    log.flush()  # snapshot: producer 1 last wrote longer than the expiration ago
    log.append(_idem(1, 1, clock), leader_epoch=0)  # no sweep ran: still known, continues
    simulate_crash(manager)
    log = _open(open_manager).get_partition("t", 0)
    retry = log.append(first, leader_epoch=0)
    assert retry.duplicate and retry.base_offset == 0
    assert not log.append(_idem(1, 2, clock), leader_epoch=0).duplicate


def test_replay_of_a_fresh_start_after_expiry_keeps_only_the_new_window(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager = _open(open_manager)
    log = manager.get_partition("t", 0)
    log.append(_idem(4, 0, clock), leader_epoch=0)  # offset 0
    clock.advance(EXPIRATION_MS)
    assert manager.enforce_retention().producers_expired == 1
    restart = _idem(4, 0, clock)
    log.append(restart, leader_epoch=0)  # offset 1: sequence 0 again, same epoch
    simulate_crash(manager)  # the replay sees sequence 0 twice in one epoch
    log = _open(open_manager).get_partition("t", 0)
    retry = log.append(restart, leader_epoch=0)  # answered with the newer batch's offset
    assert retry.duplicate and retry.base_offset == 1
    assert not log.append(_idem(4, 1, clock), leader_epoch=0).duplicate


def test_producers_idle_while_the_broker_was_down_are_dropped_on_open(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager = _open(open_manager)
    log = manager.get_partition("t", 0)
    log.append(_idem(1, 0, clock), leader_epoch=0)
    clock.advance(EXPIRATION_MS // 2)
    log.append(_idem(2, 0, clock), leader_epoch=0)
    manager.close()
    clock.advance(EXPIRATION_MS // 2)
    manager = _open(open_manager)
    log = manager.get_partition("t", 0)
    assert set(log.producer_state.producers) == {2}
    manager.close()  # the state changed on open, so a fresh snapshot leaves producer 1 out
    snapshots = sorted((log.directory).glob("*.snapshot"))
    newest = json.loads(snapshots[-1].read_bytes().partition(b"\n")[2])
    assert set(newest["producers"]) == {"2"}


def test_unknown_producer_answer_is_unknown_producer_id_and_a_known_gap_stays_out_of_order(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    log = _open(open_manager).get_partition("t", 0)
    assert _refuses_continuation(log, 8, 3, clock)  # never seen
    log.append(_idem(8, 0, clock), leader_epoch=0)
    with pytest.raises(OutOfOrderSequenceError) as info:
        log.append(_idem(8, 3, clock), leader_epoch=0)
    assert info.value.kafka_error_code == 45
    assert issubclass(UnknownProducerIdError, OutOfOrderSequenceError)  # as in Kafka


def test_close_after_a_pass_writes_a_snapshot_without_the_expired(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager = _open(open_manager)
    manager.get_partition("t", 0).append(_idem(1, 0, clock), leader_epoch=0)
    manager.close()
    manager = _open(open_manager)  # a clean open: nothing to flush so far
    log = manager.get_partition("t", 0)
    clock.advance(EXPIRATION_MS)
    assert manager.enforce_retention().producers_expired == 1
    manager.close()
    newest = sorted(log.directory.glob("*.snapshot"))[-1]
    assert json.loads(newest.read_bytes().partition(b"\n")[2])["producers"] == {}


def _header(pid: int, seq: int = 0) -> BatchHeader:
    batch = make_batch([b"x"], producer_id=pid, producer_epoch=0, base_sequence=seq)
    (header,) = parse_batches(memoryview(batch), max_batch_bytes=None, dense=False)
    return header


class CountingState(ProducerStateManager):
    """Counts the entries an expiry pass looks at."""

    looked_at = 0

    def is_expired(self, entry: ProducerEntry, now_ms: int) -> bool:
        self.looked_at += 1
        return super().is_expired(entry, now_ms)


def test_a_pass_looks_only_at_the_expired_entries_and_one_more() -> None:
    state = CountingState(1_000)
    for pid in range(1_000):
        state.observe(_header(pid), pid)  # written at pid ms, in order
    assert state.remove_expired(1_009) == 10  # written at 0..9 ms
    assert state.looked_at == 11
    state.looked_at = 0
    assert state.remove_expired(1_009) == 0 and state.looked_at == 1
    state.observe(_header(10, 1), 2_000)  # producer 10 writes again: now the newest
    assert state.remove_expired(1_011) == 1 and next(iter(state.producers)) == 12


def test_out_of_order_write_times_are_still_expired_exactly() -> None:
    state = ProducerStateManager(1_000)
    times = {1: 500, 2: 100, 3: 300, 4: 900, 5: 200}  # as a replay's estimates may come
    for pid, at in times.items():
        state.observe(_header(pid), at)
    assert state.remove_expired(1_250) == 2
    assert set(state.producers) == {1, 3, 4}
    state.observe(_header(6), 50)  # a clock stepping back
    assert state.remove_expired(1_300) == 2  # producers 3 and 6
    assert set(state.producers) == {1, 4}


def test_snapshot_without_write_times_counts_its_producers_as_written_at_load() -> None:
    body = json.dumps({"offset": 4, "producers": {"9": [0, [[0, 3, 0, 3]]]}}).encode()
    state = ProducerStateManager(EXPIRATION_MS)
    offset, written = state.load_snapshot(b"%08x\n" % zlib.crc32(body) + body, 50_000)
    assert (offset, written) == (4, -1)
    assert state.producers[9].last_write_ms == 50_000
    assert state.remove_expired(50_000 + EXPIRATION_MS - 1) == 0
    assert state.remove_expired(50_000 + EXPIRATION_MS) == 1


def test_expiration_is_a_broker_setting_with_kafkas_default(tmp_path: Path) -> None:
    assert DEFAULT_PRODUCER_ID_EXPIRATION_MS == 86_400_000
    manager = LogManager(tmp_path / "a")
    manager.create_topic("t", 1)
    assert manager.get_partition("t", 0).producer_state.expiration_ms == 86_400_000
    manager.close()
    with pytest.raises(InvalidConfigError, match=r"producer\.id\.expiration\.ms"):
        LogManager(tmp_path / "b", producer_id_expiration_ms=-1)
    with pytest.raises(InvalidConfigError):  # a broker setting, not a topic config
        LogConfig.from_kafka_configs({"producer.id.expiration.ms": "1000"})


# -- property: random write times, retention passes and restarts against a model --------------

STEP = st.tuples(
    st.sampled_from(["write", "retry", "sweep", "close", "crash"]),
    st.integers(0, 3),  # producer id
    # time passing before the step; the exact values make boundaries likely
    st.one_of(
        st.sampled_from([0, 1, EXPIRATION_MS - 1, EXPIRATION_MS]),
        st.integers(0, EXPIRATION_MS * 3 // 2),
    ),
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, min_size=1, max_size=25))
def test_expiry_matches_a_model_of_last_write_times(
    tmp_path: Path, steps: list[tuple[str, int, int]]
) -> None:
    clock = ManualClock()
    directory = Path(tempfile.mkdtemp(dir=tmp_path))

    def reopen() -> LogManager:
        opened = LogManager(
            directory,
            default_config=CONFIG,
            clock_ms=clock,
            producer_id_expiration_ms=EXPIRATION_MS,
        )
        if "t" not in opened.topics():
            opened.create_topic("t", 1)
        return opened

    def expire_model() -> None:
        for pid in [p for p, at in last_write.items() if clock.now_ms - at >= EXPIRATION_MS]:
            del last_write[pid]
            del next_seq[pid]
            del last_batch[pid]

    manager = reopen()
    # The model: producers the partition still knows, their last write time, next sequence
    # and last batch. Entries leave it only where the engine may drop them: sweeps and opens.
    last_write: dict[int, int] = {}
    next_seq: dict[int, int] = {}
    last_batch: dict[int, tuple[bytes, int]] = {}
    try:
        for action, pid, elapsed in steps:
            clock.advance(elapsed)
            log = manager.get_partition("t", 0)
            if action == "write":
                if pid not in next_seq:  # unknown (never seen, or expired): must restart at 0
                    assert _refuses_continuation(log, pid, 5, clock)
                seq = next_seq.get(pid, 0)
                batch = _idem(pid, seq, clock)
                result = log.append(batch, leader_epoch=0)
                assert not result.duplicate
                last_write[pid], next_seq[pid] = clock.now_ms, seq + 1
                last_batch[pid] = (batch, result.base_offset)
            elif action == "retry" and pid in last_batch:
                batch, offset = last_batch[pid]
                retry = log.append(batch, leader_epoch=0)  # live, even if due: still known
                assert retry.duplicate and retry.base_offset == offset
            elif action == "sweep":
                expected = sum(clock.now_ms - at >= EXPIRATION_MS for at in last_write.values())
                assert manager.enforce_retention().producers_expired == expected
                expire_model()
            elif action in ("close", "crash"):
                if action == "close":
                    manager.close()
                else:
                    simulate_crash(manager)
                manager = reopen()
                expire_model()
            assert set(manager.get_partition("t", 0).producer_state.producers) == set(last_write)
    finally:
        manager.close()
