"""The Kafka-protocol path of two source trees side by side: throughput, latency, CPU, RSS.

Like ``bench/http_ab.py`` for HTTP produce: one broker per tree, each started from that tree's
own code (``python -m headrace broker`` with ``PYTHONPATH=<tree>/broker:<tree>/operator`` and
cwd ``<tree>``, ephemeral ports on 127.0.0.1, its own temporary data dir), both driven by the
same client (this tree's ``bench/kafka_bench.py``: confluent-kafka, 100-byte records, acks=all,
linger.ms=5). Each round produces ``--records`` records to a fresh topic on each broker, reads
them back, and measures end-to-end latency with ``--latency-samples`` records sent one at a
time; which tree goes first alternates round by round. Reported per tree: the median produce
and consume records/s, the median over rounds of the e2e p50/p99, the broker's CPU seconds per
million records produced (and consumed), and its peak RSS; and the median over rounds of the
paired ratios b/a (rounds next to each other share the machine's speed of the moment, so on a
shared, drifting machine these ratios are the steadiest figures).

Usage (from the repository root)::

    git worktree add /tmp/base <revision>
    python bench/kafka_ab.py /tmp/base . [--records 300000] [--rounds 5] [--json]
    git worktree remove --force /tmp/base
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load("kafka_bench_client", HERE / "kafka_bench.py")


@dataclass
class Broker:
    """One tree's broker process and the figures gathered from it, one entry per round."""

    label: str
    tree: Path
    process: subprocess.Popen[bytes]
    bootstrap: str
    log: Path
    produce: list[float] = field(default_factory=list)
    consume: list[float] = field(default_factory=list)
    produce_cpu: list[float] = field(default_factory=list)
    consume_cpu: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap}

    def cpu(self) -> float:
        return float(bench.process_cpu_seconds(self.process.pid))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _tree_env(tree: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=f"{tree / 'broker'}{os.pathsep}{tree / 'operator'}")


def start_broker(label: str, tree: Path, workdir: Path) -> Broker:
    env = _tree_env(tree)
    # headrace may also be installed (editable, pointing at some tree): make sure the broker
    # about to start really runs this tree's code.
    found = subprocess.run([sys.executable, "-c", "import headrace; print(headrace.__file__)"],
                           env=env, cwd=tree, check=True, capture_output=True, text=True)
    if not Path(found.stdout.strip()).resolve().is_relative_to(tree / "broker"):
        raise RuntimeError(f"{label}: headrace resolves to {found.stdout.strip()}, not {tree}")
    home = workdir / label
    home.mkdir()
    ready, log = home / "ready.json", home / "broker.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "headrace", "broker", "--data-dir", str(home / "data"),
             "--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
             "--ready-file", str(ready), "--log-level", "warning"],
            env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=stderr)
    broker = Broker(label, tree, process, "", log)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{label}: broker did not start; {log}:\n"
                                   + log.read_text()[-2000:])
            time.sleep(0.05)
        broker.bootstrap = f"127.0.0.1:{json.loads(ready.read_text())['kafka_port']}"
    except BaseException:  # also Ctrl-C while it starts: not yet in the caller's list
        broker.stop()
        raise
    return broker


def run_round(broker: Broker, records: int, samples: int) -> None:
    topic = f"ab-{uuid.uuid4().hex[:8]}"
    before = broker.cpu()
    rate, _queue_full = bench.produce_throughput(broker.config, topic, records)
    middle = broker.cpu()
    consumed, received = bench.consume_throughput(broker.config, topic, records)
    after = broker.cpu()
    if received != records:
        raise RuntimeError(f"{broker.label}: consumed {received} of {records} records")
    broker.produce.append(rate)
    broker.consume.append(consumed)
    broker.produce_cpu.append((middle - before) / records * 1e6)
    broker.consume_cpu.append((after - middle) / records * 1e6)
    latency_topic = f"ab-latency-{uuid.uuid4().hex[:8]}"
    bench.await_topic(bench.Producer(broker.config), latency_topic)  # creation is not timed
    latency = bench.end_to_end_latency(broker.config, latency_topic, samples)
    broker.p50.append(latency["p50_ms"])
    broker.p99.append(latency["p99_ms"])


def _paired(a: list[float], b: list[float]) -> float:
    return round(statistics.median(y / x for x, y in zip(a, b, strict=True)), 3)


def report(brokers: list[Broker], records: int, samples: int) -> dict[str, Any]:
    a, b = brokers
    per_tree = {broker.label: {
        "tree": str(broker.tree),
        "produce_records_per_s": round(statistics.median(broker.produce)),
        "consume_records_per_s": round(statistics.median(broker.consume)),
        "e2e_p50_ms": round(statistics.median(broker.p50), 2),
        "e2e_p99_ms": round(statistics.median(broker.p99), 2),
        "broker_cpu_s_per_million_produced": round(statistics.median(broker.produce_cpu), 2),
        "broker_cpu_s_per_million_consumed": round(statistics.median(broker.consume_cpu), 2),
        "broker_peak_rss_mib": round(bench.peak_rss_mib(broker.process.pid)),
        "rounds": {"produce_records_per_s": [round(r) for r in broker.produce],
                   "consume_records_per_s": [round(r) for r in broker.consume],
                   "e2e_p50_ms": [round(v, 2) for v in broker.p50],
                   "e2e_p99_ms": [round(v, 2) for v in broker.p99]},
    } for broker in brokers}
    return {"records": records, "rounds": len(a.produce), "latency_samples": samples, **per_tree,
            "median_paired_ratio_b_to_a": {
                "produce": _paired(a.produce, b.produce),
                "consume": _paired(a.consume, b.consume),
                "e2e_p50": _paired(a.p50, b.p50),
                "broker_cpu_per_produced_record": _paired(a.produce_cpu, b.produce_cpu)}}


def print_text(result: dict[str, Any]) -> None:
    print(f"{result['records']} records x {result['rounds']} rounds, "
          f"{result['latency_samples']} latency samples per round")
    for label in ("a", "b"):
        tree = result[label]
        print(f"{label} ({tree['tree']}): produce {tree['produce_records_per_s']:,}/s, "
              f"consume {tree['consume_records_per_s']:,}/s, e2e p50 {tree['e2e_p50_ms']} ms "
              f"p99 {tree['e2e_p99_ms']} ms, broker CPU {tree['broker_cpu_s_per_million_produced']}"
              f" s/M produced {tree['broker_cpu_s_per_million_consumed']} s/M consumed, "
              f"peak RSS {tree['broker_peak_rss_mib']} MiB")
        print(f"  rounds: produce {tree['rounds']['produce_records_per_s']}, "
              f"consume {tree['rounds']['consume_records_per_s']}")
    ratios = result["median_paired_ratio_b_to_a"]
    print("median paired ratio b/a: " + ", ".join(f"{k} {v}" for k, v in ratios.items()))


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(143)  # run the finally below that stops the brokers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="the first source tree (e.g. a git worktree)")
    parser.add_argument("b", type=Path, help="the second source tree")
    parser.add_argument("--records", type=int, default=300_000, help="records per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per tree (default 5)")
    parser.add_argument("--latency-samples", type=int, default=200,
                        help="e2e latency samples per round (default 200)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    trees = {"a": args.a.resolve(), "b": args.b.resolve()}
    brokers: list[Broker] = []
    with tempfile.TemporaryDirectory(prefix="kafka-ab-") as tmp:
        try:
            for label, tree in trees.items():
                brokers.append(start_broker(label, tree, Path(tmp)))
            for number in range(args.rounds):
                for broker in brokers if number % 2 == 0 else reversed(brokers):
                    run_round(broker, args.records, args.latency_samples)
            result = report(brokers, args.records, args.latency_samples)
        finally:
            for broker in brokers:
                broker.stop()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_text(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
