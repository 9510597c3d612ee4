"""Property test: any sequence of appends, rolls, retention, truncations, deletions and
restarts keeps offsets dense and monotonic, and reads return exactly what was appended."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from headrace.storage import LogConfig, LogManager, PartitionLog
from tests.storage.conftest import simulate_crash
from tests.support.batches import base_offset_of, batch_body, make_batch, split_batches

CONFIG = LogConfig(segment_bytes=700, index_interval_bytes=64)

batch_values = st.lists(st.binary(max_size=120), min_size=1, max_size=4)


@dataclasses.dataclass
class ModelBatch:
    base: int
    count: int
    body: bytes

    @property
    def next(self) -> int:
        return self.base + self.count


class LogMachine(RuleBasedStateMachine):
    base_dir: Path

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(dir=self.base_dir))
        self.manager = LogManager(self.dir, default_config=CONFIG)
        self.manager.create_topic("p", 1)
        self.batches: list[ModelBatch] = []
        self.start = 0
        self.end = 0

    @property
    def log(self) -> PartitionLog:
        return self.manager.get_partition("p", 0)

    @initialize()
    def nothing(self) -> None:
        pass

    @rule(appends=st.lists(batch_values, min_size=1, max_size=3), epoch=st.integers(0, 3))
    def append(self, appends: list[list[bytes]], epoch: int) -> None:
        data = [make_batch(values) for values in appends]
        result = self.log.append(b"".join(data), leader_epoch=epoch)
        assert result.base_offset == self.end
        for values, batch in zip(appends, data, strict=True):
            self.batches.append(ModelBatch(self.end, len(values), batch_body(batch)))
            self.end += len(values)
        assert result.last_offset == self.end - 1

    @rule()
    def roll(self) -> None:
        self.log.roll()

    @rule(limit=st.integers(0, 3000))
    def retention_by_size(self, limit: int) -> None:
        log = self.log
        log.update_config(dataclasses.replace(CONFIG, retention_bytes=limit))
        self.manager.enforce_retention()
        log.update_config(CONFIG)
        new_start = log.log_start_offset
        assert self.start <= new_start <= self.end
        assert new_start == self.end or any(b.base == new_start for b in self.batches)
        self._drop_before(new_start)

    @rule(data=st.data())
    def delete_records(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.start, self.end))
        assert self.log.delete_records_before(offset) == max(self.start, offset)
        self._drop_before(max(self.start, offset))

    @precondition(lambda self: self.end > 0)
    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(max(0, self.start - 2), self.end))
        self.log.truncate_to(offset)
        if offset >= self.end:
            return
        if offset < self.start:
            self.batches, self.start, self.end = [], offset, offset
            return
        cut = next(b for b in self.batches if b.next > offset)  # goes entirely
        self.batches = [b for b in self.batches if b.next <= offset]
        self.end = cut.base
        self.start = min(self.start, self.end)

    @precondition(lambda self: self.end > self.start)
    @rule(data=st.data())
    def bounded_read(self, data: st.DataObject) -> None:
        """Reads take whole batches, as many as fit, never past max_offset."""
        offset = data.draw(st.integers(self.start, self.end - 1))
        max_bytes = data.draw(st.integers(1, 1500))
        max_offset = data.draw(st.integers(offset + 1, self.end + 1))
        with self.log.read(offset, max_bytes, max_offset=max_offset) as read:
            got = split_batches(read.to_bytes())
        first = next(i for i, b in enumerate(self.batches) if b.next > offset)
        expected: list[ModelBatch] = []
        size = 0
        for batch in self.batches[first:]:
            length = len(batch.body) + 16
            if batch.base >= max_offset or (expected and size + length > max_bytes):
                break
            expected.append(batch)
            size += length
        assert [base_offset_of(b) for b in got] == [b.base for b in expected]
        assert [batch_body(b) for b in got] == [b.body for b in expected]
        assert read.high_offset == expected[-1].next

    @rule(clean=st.booleans())
    def restart(self, clean: bool) -> None:
        if clean:
            self.manager.close()
        else:
            simulate_crash(self.manager)
        self.manager = LogManager(self.dir, default_config=CONFIG)

    def _drop_before(self, offset: int) -> None:
        self.start = offset
        self.batches = [b for b in self.batches if b.next > offset]

    @invariant()
    def offsets_dense_and_bytes_exact(self) -> None:
        log = self.log
        assert (log.log_start_offset, log.log_end_offset) == (self.start, self.end)
        with log.read(self.start, 1 << 30) as read:
            got = split_batches(read.to_bytes())
            assert read.high_offset == (self.end if self.start < self.end else self.start)
        assert [base_offset_of(b) for b in got] == [b.base for b in self.batches]
        assert [batch_body(b) for b in got] == [b.body for b in self.batches]
        for before, after in zip(self.batches, self.batches[1:], strict=False):
            assert before.next == after.base

    @invariant()
    def every_offset_reads_its_batch(self) -> None:
        log = self.log
        for batch in self.batches[-6:]:
            for offset in {max(batch.base, self.start), batch.next - 1}:
                with log.read(offset, 1) as read:
                    got = read.to_bytes()
                    assert base_offset_of(got) == batch.base
                    assert batch_body(got) == batch.body

    def teardown(self) -> None:
        self.manager.close()


def test_log_model(tmp_path: Path) -> None:
    LogMachine.base_dir = tmp_path
    run_state_machine_as_test(
        LogMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
