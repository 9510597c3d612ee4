"""Property test of compaction: after any sequence of keyed appends (small key alphabet,
tombstones), rolls, clock moves, cleanings and clean or unclean restarts, the log holds for
every key its latest record — or nothing once a tombstone has been cleaned for
delete.retention.ms — offsets strictly increase, every batch's CRC is valid, nothing not yet
cleaned was touched, and the cleaned part holds each key at most once."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from headrace.storage import LogConfig, LogManager, PartitionLog
from tests.storage.conftest import ManualClock, simulate_crash
from tests.support.batches import make_keyed_batch
from tests.support.log_reads import read_records

RETENTION_MS = 1000
CONFIG = LogConfig(
    segment_bytes=300,
    index_interval_bytes=64,
    cleanup_policy="compact",
    delete_retention_ms=RETENTION_MS,
    min_cleanable_dirty_ratio=0.3,
)

records_strategy = st.lists(
    st.tuples(
        st.sampled_from([b"a", b"b", b"c", b"d"]),
        st.one_of(st.none(), st.binary(min_size=1, max_size=30)),
    ),
    min_size=1,
    max_size=3,
)


@dataclass(frozen=True)
class ModelRecord:
    offset: int
    key: bytes
    value: bytes | None


class CompactionMachine(RuleBasedStateMachine):
    base_dir: Path

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(dir=self.base_dir))
        self.clock = ManualClock()
        self.manager = LogManager(self.dir, default_config=CONFIG, clock_ms=self.clock)
        self.manager.create_topic("c", 1)
        self.records: dict[int, ModelRecord] = {}
        self.end = 0
        self.first_cleaned_ms: dict[int, int] = {}  # offset -> when a pass first covered it

    @property
    def log(self) -> PartitionLog:
        return self.manager.get_partition("c", 0)

    @initialize()
    def nothing(self) -> None:
        pass

    @rule(records=records_strategy)
    def append(self, records: list[tuple[bytes, bytes | None]]) -> None:
        batch = make_keyed_batch(records, timestamp_ms=self.clock.now_ms, timestamp_step=0)
        result = self.log.append(batch, leader_epoch=0)
        assert result.base_offset == self.end
        for i, (key, value) in enumerate(records):
            self.records[self.end + i] = ModelRecord(self.end + i, key, value)
        self.end += len(records)

    @rule(ms=st.sampled_from([1, 300, RETENTION_MS - 1, RETENTION_MS]))
    def advance(self, ms: int) -> None:
        self.clock.advance(ms)

    @rule()
    def roll(self) -> None:
        self.log.roll()

    @rule()
    def clean(self) -> None:
        self.manager.clean()
        first_dirty = self.log.cleaner_checkpoint.first_dirty
        for offset in range(first_dirty):
            self.first_cleaned_ms.setdefault(offset, self.clock.now_ms)
        # Any tombstone cleaned delete.retention.ms ago is gone now (a pass was due for it).
        present = {r.offset for r in read_records(self.log)}
        for key, latest in self._latest().items():
            cleaned = self.first_cleaned_ms.get(latest.offset)
            if latest.value is None and cleaned is not None:
                expired = cleaned + RETENTION_MS <= self.clock.now_ms
                assert (latest.offset in present) is not expired, (key, latest, cleaned)

    @rule(clean_shutdown=st.booleans())
    def restart(self, clean_shutdown: bool) -> None:
        if clean_shutdown:
            self.manager.close()
        else:
            simulate_crash(self.manager)
        self.manager = LogManager(self.dir, default_config=CONFIG, clock_ms=self.clock)

    def _latest(self) -> dict[bytes, ModelRecord]:
        latest: dict[bytes, ModelRecord] = {}
        for offset in sorted(self.records):
            latest[self.records[offset].key] = self.records[offset]
        return latest

    @invariant()
    def log_matches_model(self) -> None:
        log = self.log
        assert (log.log_start_offset, log.log_end_offset) == (0, self.end)
        found = read_records(log)  # CRCs valid, offsets strictly increasing
        by_offset = {r.offset: r for r in found}
        for record in found:
            model = self.records[record.offset]
            assert (record.key, record.value) == (model.key, model.value)
        first_dirty = log.cleaner_checkpoint.first_dirty
        for offset in range(first_dirty, self.end):  # not cleaned yet: untouched
            assert offset in by_offset
        cleaned_keys = [r.key for r in found if r.offset < first_dirty]
        assert len(cleaned_keys) == len(set(cleaned_keys))
        for key, latest in self._latest().items():
            if latest.offset in by_offset:
                assert max(r.offset for r in found if r.key == key) == latest.offset
                continue
            # Only a tombstone may vanish, and only delete.retention.ms after its cleaning.
            assert latest.value is None, (key, latest)
            assert not any(r.key == key for r in found)
            cleaned = self.first_cleaned_ms[latest.offset]
            assert cleaned + RETENTION_MS <= self.clock.now_ms

    def teardown(self) -> None:
        self.manager.close()


def test_compaction_state_machine(tmp_path: Path) -> None:
    CompactionMachine.base_dir = tmp_path
    run_state_machine_as_test(
        CompactionMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
