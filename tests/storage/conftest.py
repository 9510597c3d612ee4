"""Fixtures for storage tests: a manual clock and LogManager factories over tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from headrace.storage import LogConfig, LogManager


class ManualClock:
    """A clock the test moves by hand, so time-based rolls and retention are deterministic."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


OpenManager = Callable[..., LogManager]


@pytest.fixture
def open_manager(tmp_path: Path, clock: ManualClock) -> Iterator[OpenManager]:
    """Open a LogManager on tmp_path/data (closed at teardown if the test did not)."""
    opened: list[LogManager] = []

    def factory(config: LogConfig | None = None, **kwargs: object) -> LogManager:
        kwargs.setdefault("clock_ms", clock)
        manager = LogManager(tmp_path / "data", default_config=config or LogConfig(), **kwargs)  # type: ignore[arg-type]
        opened.append(manager)
        return manager

    yield factory
    for manager in opened:
        manager.close()


def simulate_crash(manager: LogManager) -> None:
    """Drop a manager as a killed process would: descriptors closed, nothing flushed, no
    clean-shutdown marker (data already written stays in the page cache, as after SIGKILL)."""
    manager.files.close_all()
    manager._closed = True
