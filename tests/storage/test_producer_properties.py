"""Property test for idempotent-producer state: across appends, retries, epoch bumps, rolls,
truncations and restarts the engine dedups exactly the producer's last five batches that are
still in the log, and accepts exactly the next sequence."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from headrace.storage import LogConfig, LogManager, OutOfOrderSequenceError, PartitionLog
from tests.storage.conftest import ManualClock, simulate_crash
from tests.support.batches import make_batch

CONFIG = LogConfig(segment_bytes=500, index_interval_bytes=64)
PID = 77


@dataclasses.dataclass(frozen=True)
class Sent:
    base: int
    count: int
    epoch: int
    seq: int
    batch: bytes


class ProducerMachine(RuleBasedStateMachine):
    base_dir: Path

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(dir=self.base_dir))
        # The broker clock lives in the batches' era (their timestamps are from 2023), so a
        # rebuild from the log does not see every producer as idle for years and expire it.
        self.clock = ManualClock()
        self.manager = LogManager(self.dir, default_config=CONFIG, clock_ms=self.clock)
        self.manager.create_topic("p", 1)
        self.sent: list[Sent] = []  # idempotent batches still in the log
        self.end = 0

    @property
    def log(self) -> PartitionLog:
        return self.manager.get_partition("p", 0)

    @initialize()
    def start(self) -> None:
        pass

    def _window(self) -> list[Sent]:
        if not self.sent:
            return []
        epoch = self.sent[-1].epoch
        return [s for s in self.sent if s.epoch == epoch][-5:]

    @rule(count=st.integers(1, 4), bump=st.booleans())
    def produce(self, count: int, bump: bool) -> None:
        window = self._window()
        if window and not bump:
            epoch, seq = window[-1].epoch, window[-1].seq + window[-1].count
        else:
            epoch, seq = (window[-1].epoch + 1 if window else 0), 0
        batch = make_batch(
            [b"%d" % i for i in range(count)],
            producer_id=PID,
            producer_epoch=epoch,
            base_sequence=seq,
        )
        result = self.log.append(batch, leader_epoch=0)
        assert not result.duplicate and result.base_offset == self.end
        self.sent.append(Sent(self.end, count, epoch, seq, batch))
        self.end += count

    @rule(count=st.integers(1, 3))
    def plain(self, count: int) -> None:
        self.log.append(make_batch([b"plain"] * count), leader_epoch=0)
        self.end += count

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        window = self._window()
        original = data.draw(st.sampled_from(window))
        result = self.log.append(original.batch, leader_epoch=0)
        assert result.duplicate
        assert (result.base_offset, result.last_offset) == (
            original.base,
            original.base + original.count - 1,
        )

    @precondition(lambda self: bool(self.sent))
    @rule()
    def gap_is_refused(self) -> None:
        last = self._window()[-1]
        batch = make_batch(
            [b"gap"], producer_id=PID, producer_epoch=last.epoch, base_sequence=last.seq + 99
        )
        try:
            self.log.append(batch, leader_epoch=0)
        except OutOfOrderSequenceError:
            return
        raise AssertionError("a sequence gap was accepted")

    @rule()
    def roll(self) -> None:
        self.log.roll()

    @rule()
    def flush(self) -> None:
        self.log.flush()

    @precondition(lambda self: self.end > 0)
    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(0, self.end - 1))
        self.log.truncate_to(offset)
        self.end = self.log.log_end_offset
        assert self.end <= offset
        self.sent = [s for s in self.sent if s.base + s.count <= self.end]

    @rule(clean=st.booleans())
    def restart(self, clean: bool) -> None:
        if clean:
            self.manager.close()
        else:
            simulate_crash(self.manager)
        self.manager = LogManager(self.dir, default_config=CONFIG, clock_ms=self.clock)
        assert self.log.log_end_offset == self.end

    def teardown(self) -> None:
        self.manager.close()


def test_producer_state_model(tmp_path: Path) -> None:
    ProducerMachine.base_dir = tmp_path
    run_state_machine_as_test(
        ProducerMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
