"""Benchmark: partition-log append/read throughput against a plain Python file loop.

Appends RecordBatch v2 batches of 100-byte records (16 KiB and 1 MiB batches, ``--size``
bytes of each, 1 GiB by default) through ``PartitionLog.append`` and reads them back with
``PartitionLog.read(...).to_bytes()``; in the same run a plain loop ``os.write``s / ``os.pread``s
the same bytes in the same directory. Flush policy, identical for both: no fsync per write (the
topic's default ``flush.messages``), one fsync at the end inside the timed region. Ratios are
log throughput divided by plain-loop throughput.

    python bench/log_bench.py --size 64MiB --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import google_crc32c

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "broker"))

from headrace.storage import LogConfig, LogManager

RECORD_VALUE_BYTES = 100
SIZES = {"16KiB": 16 * 1024, "1MiB": 1024 * 1024}


def _varint(value: int) -> bytes:
    encoded = (value << 1) ^ (value >> 63)
    out = bytearray()
    while encoded > 0x7F:
        out.append((encoded & 0x7F) | 0x80)
        encoded >>= 7
    out.append(encoded)
    return bytes(out)


def build_batch(target_bytes: int, seed: int) -> bytes:
    """An uncompressed v2 batch of 100-byte records, as large as fits in ``target_bytes``."""
    records = []
    size = 61
    index = 0
    while True:
        value = bytes((seed + index + i) % 251 for i in range(RECORD_VALUE_BYTES))
        body = b"\x00" + _varint(index) + _varint(index) + _varint(-1)
        body += _varint(len(value)) + value + _varint(0)
        record = _varint(len(body)) + body
        if size + len(record) > target_bytes:
            break
        records.append(record)
        size += len(record)
        index += 1
    count = len(records)
    now = time.time_ns() // 1_000_000
    tail = struct.pack(">hiqqqhii", 0, count - 1, now, now, -1, -1, -1, count) + b"".join(records)
    crc = google_crc32c.value(tail)
    return struct.pack(">qiibI", 0, 9 + len(tail), -1, 2, crc) + tail


def bench_size(
    label: str, batch_bytes: int, total: int, work: Path, rounds: int
) -> dict[str, float]:
    """Alternate plain and log phases (ABBA order) so neither always meets a dirtier page
    cache or a busier disk; every phase ends with its own timed fsync."""
    batches = [build_batch(batch_bytes, seed) for seed in range(8)]
    per_round = max(1, total // len(batches[0]) // rounds)
    plain_fd = os.open(work / "plain.bin", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    manager = LogManager(work / "log", default_config=LogConfig())
    manager.create_topic("bench", 1)
    log = manager.get_partition("bench", 0)
    plain_position = 0

    def plain_append() -> int:
        nonlocal plain_position
        for i in range(per_round):
            plain_position += os.write(plain_fd, batches[i % 8])
        os.fsync(plain_fd)
        return per_round

    def log_append() -> int:
        for i in range(per_round):
            log.append(batches[i % 8], leader_epoch=0)
        log.flush()
        return per_round

    read_state = {"plain": 0, "log": 0}
    read_step = plain_position_goal = 0

    def plain_read() -> int:
        position, goal = (
            read_state["plain"],
            min(read_state["plain"] + read_step, plain_position_goal),
        )
        moved = 0
        while position < goal and (chunk := os.pread(plain_fd, 1 << 20, position)):
            position += len(chunk)
            moved += len(chunk)
        read_state["plain"] = position
        return moved

    def log_read() -> int:
        offset, moved = read_state["log"], 0
        end = log.log_end_offset
        while offset < end and moved < read_step:
            with log.read(offset, 1 << 20) as read:
                moved += len(read.to_bytes())
                offset = read.high_offset
        read_state["log"] = offset
        return moved

    times = {"plain_append": 0.0, "log_append": 0.0, "plain_read": 0.0, "log_read": 0.0}
    moved = dict.fromkeys(times, 0)

    def run(name: str, action: Callable[[], int]) -> None:
        start = time.perf_counter()
        moved[name] += action()
        times[name] += time.perf_counter() - start

    for r in range(rounds):
        order = [("plain_append", plain_append), ("log_append", log_append)]
        for name, action in order if r % 2 == 0 else reversed(order):
            run(name, action)
    plain_position_goal = plain_position
    read_step = -(-plain_position // rounds)
    for r in range(rounds):
        order = [("plain_read", plain_read), ("log_read", log_read)]
        for name, action in order if r % 2 == 0 else reversed(order):
            run(name, action)
    appended = plain_position
    assert log.size_bytes == appended
    assert moved["plain_read"] == moved["log_read"] == appended
    os.close(plain_fd)
    manager.close()
    shutil.rmtree(work / "log")
    (work / "plain.bin").unlink()
    mib = 1024 * 1024
    return {
        f"bytes_{label}": float(appended),
        f"plain_append_MiBps_{label}": appended / mib / times["plain_append"],
        f"log_append_MiBps_{label}": appended / mib / times["log_append"],
        f"plain_read_MiBps_{label}": appended / mib / times["plain_read"],
        f"log_read_MiBps_{label}": appended / mib / times["log_read"],
        f"append_ratio_{label}": times["plain_append"] / times["log_append"],
        f"read_ratio_{label}": times["plain_read"] / times["log_read"],
    }


def parse_size(text: str) -> int:
    units = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=parse_size, default=1024**3, help="bytes per batch size")
    parser.add_argument(
        "--dir", type=Path, default=None, help="work directory (default: a temp dir)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rounds", type=int, default=8, help="alternating plain/log phases")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="log-bench-", dir=args.dir))
    try:
        results: dict[str, float | str] = {
            "size_per_batch_class": float(args.size),
            "flush_policy": "no fsync per write; one timed fsync per phase, for both",
            "rounds": float(args.rounds),
            "cpus": float(os.cpu_count() or 0),
            "loadavg_1m": os.getloadavg()[0],
        }
        for label, batch_bytes in SIZES.items():
            results.update(bench_size(label, batch_bytes, args.size, work, args.rounds))
        results["read_ratio"] = min(
            float(results["read_ratio_16KiB"]), float(results["read_ratio_1MiB"])
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=None))
    else:
        for key, value in results.items():
            print(f"{key:32} {value:.3f}" if isinstance(value, float) else f"{key:32} {value}")


if __name__ == "__main__":
    main()
