"""Cyclic-GC pauses of a broker holding many topics, with and without freezing long-lived objects.

Each variant runs in a fresh interpreter: an in-process broker (the composition root, as the
``headrace broker`` command builds it) creates ``--topics`` one-partition topics in CreateTopics-
sized batches of ``--batch``, while :class:`~headrace.core.gc_pauses.GcPauses` records every
collection's wall time; then ``--passes`` full collections are timed (what a natural full pass
costs at that size); then the broker restarts over the same directory (recovery) and the full
passes are timed again. ``frozen`` installs :data:`~headrace.core.gc_pauses.LONG_LIVED` after
each start, as the broker command does; ``plain`` does not.

    python bench/gc_pauses.py [--topics 10000] [--batch 1000] [--passes 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0, "max_ms": 0.0, "median_ms": 0.0}
    return {"count": len(values), "max_ms": round(max(values) * 1000, 1),
            "median_ms": round(statistics.median(values) * 1000, 1)}


def _full_passes(passes: int) -> list[float]:
    times = []
    for _ in range(passes):
        started = time.perf_counter()
        gc.collect()
        times.append(time.perf_counter() - started)
    return times


async def _variant(frozen: bool, topics: int, batch: int, passes: int) -> dict[str, Any]:
    from headrace.app import BrokerApp
    from headrace.core.config import BrokerConfig
    from headrace.core.gc_pauses import LONG_LIVED, GcPauses
    from headrace.core.topics import TopicSpec

    result: dict[str, Any] = {"frozen": frozen, "topics": topics}
    with tempfile.TemporaryDirectory(prefix="gc-pauses-") as tmp:
        config = BrokerConfig(data_dir=Path(tmp), kafka_port=0, http_host=None,
                              offsets_topic_partitions=1)
        app = BrokerApp(config)
        await app.start()
        if frozen:
            LONG_LIVED.install()
        with GcPauses() as pauses:
            started = time.perf_counter()
            for first in range(0, topics, batch):
                specs = [TopicSpec(f"t-{i:05d}", 1) for i in range(first, first + batch)]
                await app.broker.create_topics(specs)
            result["create_s"] = round(time.perf_counter() - started, 2)
        result["during_creation_full"] = _ms(pauses.pauses[2])
        result["during_creation_young"] = _ms(pauses.pauses[0] + pauses.pauses[1])
        result["collected_objects"] = len(gc.get_objects())  # what a full pass scans
        result["frozen_objects"] = gc.get_freeze_count()
        result["full_pass_after_creation"] = _ms(_full_passes(passes))
        await app.stop()
        LONG_LIVED.uninstall()
        gc.collect()
        started = time.perf_counter()
        app = BrokerApp(config)  # opens (recovers) every log
        await app.start()
        result["restart_s"] = round(time.perf_counter() - started, 2)
        if frozen:
            LONG_LIVED.install()
        result["full_pass_after_restart"] = _ms(_full_passes(passes))
        await app.stop()
        LONG_LIVED.uninstall()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--topics", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--variant", choices=("frozen", "plain"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant is not None:
        print(json.dumps(asyncio.run(
            _variant(args.variant == "frozen", args.topics, args.batch, args.passes))))
        return 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "broker"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    results: dict[str, Any] = {"load_average": round(os.getloadavg()[0], 1)}
    for variant in ("plain", "frozen"):
        out = subprocess.run(
            [sys.executable, __file__, "--variant", variant, "--topics", str(args.topics),
             "--batch", str(args.batch), "--passes", str(args.passes)],
            env=env, check=True, capture_output=True, text=True)
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for key, value in results.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
