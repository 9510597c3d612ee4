"""The broker process's GC policy: long-lived objects are frozen out of full collections."""

from __future__ import annotations

import gc

from headrace.core.gc_pauses import GcPauses, LongLivedObjects


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_survivors_of_start_and_of_full_collections_are_frozen_and_thaw_frees_cycles() -> None:
    policy = LongLivedObjects()
    try:
        policy.install()
        frozen_at_start = gc.get_freeze_count()
        assert frozen_at_start > 0
        kept = [Node() for _ in range(1000)]
        with GcPauses() as pauses:
            gc.collect()
        assert pauses.pauses[2], "the full collection was not observed"
        assert gc.get_freeze_count() >= frozen_at_start + 1000  # its survivors joined
        del kept  # frozen cycles: the collector no longer sees them...
        policy.thaw()  # ...until thawed: the next full pass frees them
        assert gc.get_freeze_count() == 0
        assert gc.collect() >= 1000
        assert gc.get_freeze_count() > 0  # and freezes what survived it
    finally:
        policy.uninstall()
    assert gc.get_freeze_count() == 0
    assert not policy.installed
