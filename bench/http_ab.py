"""HTTP produce of two source trees side by side: records/s and the broker's CPU per record.

On a shared machine whose speed drifts, comparing two versions of the produce path in separate
runs minutes apart measures the drift as much as the code. This runs one broker per tree (each
tree's own ``bench/http_bench.py --serve``, so each its own code), drives both with the same wrk
load (this tree's client) in short rounds, alternating which goes first, and reports per tree
the best round's records/s and the best and median CPU per record, and the median over
rounds of b's CPU per record divided by a's in the same round.

Usage (from the repository root; ``wrk`` from ``tests/tools/install.sh``)::

    git worktree add /tmp/base <revision>
    python bench/http_ab.py /tmp/base . [--api v3|v2] [--rounds 8] [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import tempfile
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare(trees: dict[str, Path], api: str, rounds: int, seconds: float) -> dict[str, object]:
    client = _load("http_bench_client", HERE / "http_bench.py")
    servers = {label: _load(f"http_bench_{label}", tree / "bench" / "http_bench.py")
               for label, tree in trees.items()}
    with tempfile.TemporaryDirectory(prefix="http-ab-") as tmp:
        workdir = Path(tmp)
        brokers = {label: servers[label].BrokerProcess(workdir, label) for label in trees}
        try:
            figures: dict[str, list[tuple[float, float]]] = {label: [] for label in trees}
            for number in range(rounds):
                order = list(trees) if number % 2 == 0 else list(reversed(trees))
                for label in order:
                    broker = brokers[label]
                    topic = f"ab-{number}"
                    asyncio.run(client.http_create_topic(broker, topic))
                    cpu_before = broker.cpu_seconds()
                    rate = client.http_produce(broker, topic, seconds, workdir, api=api)
                    written = asyncio.run(client.http_log_end_offset(broker, topic))
                    cpu_us = (broker.cpu_seconds() - cpu_before) / written * 1e6
                    figures[label].append((rate, cpu_us))
        finally:
            for broker in brokers.values():
                broker.stop()
    first, second = figures.values()
    return {**{label: {"tree": str(trees[label]),
                       "best_records_per_s": round(max(rate for rate, _ in rounds_)),
                       "best_cpu_us_per_record": round(min(cpu for _, cpu in rounds_), 3),
                       "median_cpu_us_per_record": round(statistics.median(
                           cpu for _, cpu in rounds_), 3)}
               for label, rounds_ in figures.items()},
            # Rounds next to each other in time share the machine's speed of the moment: the
            # median of their ratios is the steadiest figure on a drifting machine.
            "median_paired_cpu_ratio_b_to_a": round(statistics.median(
                b_cpu / a_cpu for (_, a_cpu), (_, b_cpu) in zip(first, second, strict=True)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="the first source tree (e.g. a git worktree)")
    parser.add_argument("b", type=Path, help="the second source tree")
    parser.add_argument("--api", choices=("v3", "v2"), default="v3")
    parser.add_argument("--rounds", type=int, default=8, help="rounds per tree (default 8)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per round")
    args = parser.parse_args()
    trees = {"a": args.a.resolve(), "b": args.b.resolve()}
    print(json.dumps(compare(trees, args.api, args.rounds, args.seconds), indent=2))


if __name__ == "__main__":
    main()
