"""Child process for the crash test: appends forever with flush-every-append and prints each
acknowledged base offset; the parent SIGKILLs it at random moments.

Every batch's content is a pure function of its offset, so the parent knows exactly what each
acknowledged (or unacknowledged but surviving) batch must contain.
"""

from __future__ import annotations

import sys

from headrace.storage import LogConfig, LogManager
from tests.storage.conftest import ManualClock
from tests.support.batches import make_batch

RECORDS_PER_BATCH = 3
CONFIG = LogConfig(flush_messages=1, segment_bytes=6000, index_interval_bytes=256)
TOPIC = "crash"


def batch_for(offset: int) -> bytes:
    """The batch the writer puts at ``offset`` (sizes vary so rolls land anywhere)."""
    number = offset // RECORDS_PER_BATCH
    return make_batch(
        [b"%d:%d:" % (number, j) + b"x" * ((number * 37 + j * 11) % 400) for j in range(3)],
        timestamp_ms=1_700_000_000_000 + number,
        producer_id=5,
        producer_epoch=0,
        base_sequence=offset,
    )


def main() -> None:
    # A broker clock in the batches' era (2023): a restart that rebuilds producer state from
    # the log must not find the writer idle for years and expire it.
    manager = LogManager(sys.argv[1], default_config=CONFIG, clock_ms=ManualClock())
    if TOPIC not in manager.topics():
        manager.create_topic(TOPIC, 1)
    log = manager.get_partition(TOPIC, 0)
    print("ready", log.log_end_offset, flush=True)
    while True:
        result = log.append(batch_for(log.log_end_offset), leader_epoch=1)
        print(result.base_offset, flush=True)


if __name__ == "__main__":
    main()
