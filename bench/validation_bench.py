"""Benchmark: the cost of checking a producer's batch record by record (issue 14).

Times :func:`headrace.record.check_batch` (the check every leader append runs) over one batch of
``--records`` 100-byte records, plain and gzip, against a baseline in the same run: iterating
the same plain batch with aiokafka's compiled decoder and doing nothing else (the floor of any
check that reads every record's framing). Reports ns per record and the ratio to that floor.

    python bench/validation_bench.py --json
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "broker"), str(ROOT)]

from aiokafka.record.default_records import DefaultRecordBatch  # noqa: E402
from tests.support.batches import make_keyed_batch  # noqa: E402

from headrace.record import TimestampWindow, check_batch, parse_batches  # noqa: E402


def _per_record_ns(action: Callable[[], object], records: int, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) / records * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=9000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    records = [(None, bytes(100))] * args.records
    plain = make_keyed_batch(records)
    zipped = make_keyed_batch(records, attributes=1, compress=gzip.compress)
    window = TimestampWindow(0, 2**62)
    results: dict[str, float] = {}
    for name, batch in (("plain", plain), ("gzip", zipped)):
        header = parse_batches(memoryview(batch), max_batch_bytes=None, dense=True)[0]
        results[f"check_{name}_ns_per_record"] = _per_record_ns(
            lambda b=batch, h=header: check_batch(b, h, window=window),
            args.records, args.repeats)

    def framing_only() -> None:
        for _ in DefaultRecordBatch(plain):
            pass

    floor = _per_record_ns(framing_only, args.records, args.repeats)
    results["framing_floor_ns_per_record"] = floor
    results["check_plain_vs_floor"] = results["check_plain_ns_per_record"] / floor
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key}: {value:.2f}")


if __name__ == "__main__":
    main()
