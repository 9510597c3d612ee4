"""Periodic log maintenance: retention, segment rolls, producer-id expiry and compaction, and
retrying topic deletions a disk error interrupted.

The storage package does the work (pure, synchronous); this loop schedules it and reports each
pass to the broker's observer when it has the :class:`LogMaintenanceObserver` hooks
(``BrokerMetrics`` does), so storage stays free of metrics code. Compaction rewrites sealed
segments through its own descriptors in a worker thread; only the swap (renames) runs on the
event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol, runtime_checkable

from headrace.storage import CleaningTask, LogManagerAPI, RetentionReport

log = logging.getLogger(__name__)


@runtime_checkable
class LogMaintenanceObserver(Protocol):
    """What the maintenance loop reports to."""

    def on_retention_pass(self, report: RetentionReport) -> None:
        """One retention pass (deletions, rolls, producer-id expiry) over every partition."""

    def on_cleaning_pass(self, task: CleaningTask, result: str, seconds: float) -> None:
        """One partition's compaction pass ended: ``result`` is ``ok``, ``error`` or
        ``aborted`` (:func:`cleaning_result`); ``seconds`` is its wall time."""


def cleaning_result(committed: bool, error: BaseException | None) -> str:
    """``ok`` when the pass was swapped in, ``error`` when it failed, ``aborted`` when it was
    discarded because the log changed (truncation, retention, deletion) while it ran."""
    if committed:
        return "ok"
    return "error" if error is not None else "aborted"


async def run_log_maintenance(logs: LogManagerAPI, interval: float, observer: object) -> None:
    """Every ``interval`` seconds, one retention pass then the due compactions; forever."""
    maintenance = observer if isinstance(observer, LogMaintenanceObserver) else None
    while True:
        await asyncio.sleep(interval)
        try:
            logs.retry_deletions()
            report = logs.enforce_retention()
            if maintenance is not None:
                maintenance.on_retention_pass(report)
            for task in logs.cleaning_tasks():
                started = time.monotonic()
                result = "error"  # unless finish() returns: a failed swap raises
                try:
                    await asyncio.to_thread(task.run)
                    committed = task.finish()
                    result = cleaning_result(committed, task.error)
                finally:
                    if maintenance is not None:
                        maintenance.on_cleaning_pass(task, result, time.monotonic() - started)
        except Exception:
            log.exception("retention pass failed")
