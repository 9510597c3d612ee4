"""Keeping the cyclic garbage collector's pauses short with many topics.

A full (generation 2) collection scans every object the collector tracks, and a broker with
10 000 topics holds hundreds of thousands of them (logs, segments, indexes, metadata), so one
pass stopped the event loop for 40 to 190 ms (docs/bench/metadata.md). Nearly all of them live
as long as the process. :class:`LongLivedObjects` moves them out of the collector's sight with
:func:`gc.freeze`: once after start (recovery has opened every log), and again after every
full collection, whose survivors are long-lived by definition. Later passes scan only what was made
since. Frozen objects are still freed by reference counting; only a cycle among them (say, a
deleted topic's objects) would outlive its use, so :meth:`LongLivedObjects.thaw` (topic
deletion calls it) hands everything back to the collector until its next full pass.

It is a process-wide policy, so the ``headrace broker`` command installs it once the broker
has started (tests, which run many brokers in one process, do not). :class:`GcPauses`
measures the pauses (bench/gc_pauses.py).
"""

from __future__ import annotations

import gc
import time
from typing import Any

_FULL = 2


class LongLivedObjects:
    """Freezes what survives start-up and each full collection (see the module docstring)."""

    def __init__(self) -> None:
        self.installed = False

    def install(self) -> None:
        """Collect once, freeze the survivors, and refreeze after every full collection."""
        if self.installed:
            return
        gc.collect()
        gc.freeze()
        gc.callbacks.append(self._after_collection)
        self.installed = True

    def uninstall(self) -> None:
        if self.installed:
            gc.callbacks.remove(self._after_collection)
            gc.unfreeze()
            self.installed = False

    def thaw(self) -> None:
        """Let the next full collection see every object again (after objects that may form
        cycles were dropped); its survivors are frozen again. No-op unless installed."""
        if self.installed:
            gc.unfreeze()

    def _after_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == _FULL:
            gc.freeze()


#: The process's policy (installed by the broker command; topic deletion thaws through it).
LONG_LIVED = LongLivedObjects()


class GcPauses:
    """Wall time of each collection, by generation, while installed (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)


__all__ = ["LONG_LIVED", "GcPauses", "LongLivedObjects"]
