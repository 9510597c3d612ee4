"""Child process for the compaction crash test: appends keyed records (flush every append)
and runs a cleaning pass every few appends, printing each acknowledged offset and "cleaned"
after each committed pass; the parent SIGKILLs it at random moments.

A record's key and value are a pure function of its offset, so the parent can check every
surviving record.
"""

from __future__ import annotations

import sys

from headrace.storage import LogConfig, LogManager
from tests.support.batches import make_keyed_batch

KEYS = 7
CONFIG = LogConfig(
    flush_messages=1,
    segment_bytes=500,
    index_interval_bytes=128,
    cleanup_policy="compact",
    min_cleanable_dirty_ratio=0.3,
)
TOPIC = "compacted"


def key_of(offset: int) -> bytes:
    return b"key-%d" % (offset * 5 % KEYS)


def record_for(offset: int) -> tuple[bytes, bytes]:
    return key_of(offset), b"value-%d-" % offset + b"x" * (offset * 13 % 40)


def main() -> None:
    manager = LogManager(sys.argv[1], default_config=CONFIG)
    if TOPIC not in manager.topics():
        manager.create_topic(TOPIC, 1)
    log = manager.get_partition(TOPIC, 0)
    print("ready", log.log_end_offset, flush=True)
    while True:
        offset = log.log_end_offset
        result = log.append(make_keyed_batch([record_for(offset)]), leader_epoch=0)
        print(result.base_offset, flush=True)
        if offset % 10 == 9:
            for task in manager.cleaning_tasks(now_ms=2**62):
                task.run()
                if task.finish():
                    print("cleaned", flush=True)


if __name__ == "__main__":
    main()
