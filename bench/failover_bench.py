"""Replication benchmark: leader failover time and the cost of RF=3 produce.

Starts etcd plus three ``headrace broker`` processes with DEFAULT cluster settings and measures,
in one run:

* failover time over repeated SIGKILLs of a partition leader: from the last acknowledgement
  before the kill to the first acknowledgement after it, for an idempotent acks=all producer
  that keeps sending one record every few milliseconds (p50/p99/max over ``--rounds``);
* produce throughput (confluent-kafka, acks=all, linger.ms=5, 100-byte records) into an RF=3
  topic and an RF=1 topic on the same cluster, alternating ``--repeats`` times, reported as
  median records/s and the median of the per-pair ratios.

Goals: failover p99 <= 5 s; RF=3 throughput >= 0.5 x RF=1.

    python bench/failover_bench.py [--rounds 10] [--records 500000] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "broker"))

from headrace.cluster.devcluster import DevCluster


def wait_for(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise TimeoutError("condition not reached")


def partitions(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=5)
    return {
        p.id: (p.leader, list(p.replicas), list(p.isrs))
        for p in metadata.topics[topic].partitions.values()
    }


def create(bootstrap: str, topic: str, count: int, replication: int) -> None:
    client = AdminClient({"bootstrap.servers": bootstrap})
    client.create_topics([NewTopic(topic, count, replication)])[topic].result(30)
    wait_for(lambda: all(s[0] >= 0 for s in partitions(bootstrap, topic).values())
             and len(partitions(bootstrap, topic)) == count, 30)


def throughput(bootstrap: str, topic: str, records: int) -> float:
    producer = Producer({
        "bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
        "enable.idempotence": True, "queue.buffering.max.messages": 1_000_000,
    })
    payload = b"x" * 100
    start = time.perf_counter()
    for _ in range(records):
        while True:
            try:
                producer.produce(topic, payload)
                break
            except BufferError:
                producer.poll(0.01)
    remaining = producer.flush(120)
    elapsed = time.perf_counter() - start
    if remaining:
        raise RuntimeError(f"{remaining} records not acknowledged")
    return records / elapsed


class AckClock:
    """Produces to one partition continuously and timestamps every acknowledgement."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.acks: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._producer = Producer({
            "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
            "linger.ms": 0, "topic.metadata.refresh.interval.ms": 1000,
            "retry.backoff.ms": 50, "retry.backoff.max.ms": 200,
        })
        self._topic = topic
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _delivered(self, error: object, message: object) -> None:
        if error is None:
            self.acks.append(time.monotonic())
        else:
            self.errors.append(str(error))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._producer.produce(self._topic, b"tick", partition=0, on_delivery=self._delivered)
            self._producer.poll(0.005)
        self._producer.flush(30)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def failover_rounds(cluster: DevCluster, rounds: int) -> list[float]:
    bootstrap = cluster.bootstrap
    create(bootstrap, "failover", 1, 3)
    clock = AckClock(bootstrap, "failover")
    times: list[float] = []
    try:
        wait_for(lambda: len(clock.acks) > 50, 30)
        for _ in range(rounds):
            leader = partitions(bootstrap, "failover")[0][0]
            victim = cluster.broker(leader)
            killed_at = time.monotonic()
            victim.kill()
            wait_for(lambda killed_at=killed_at: clock.acks and clock.acks[-1] > killed_at, 60)
            before = max((t for t in clock.acks if t <= killed_at), default=killed_at)
            after = min(t for t in clock.acks if t > killed_at)
            times.append(after - before)
            victim.start()
            wait_for(lambda: len(partitions(bootstrap, "failover")[0][2]) == 3, 60)
    finally:
        clock.stop()
    return times


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=3,
                        help="alternating RF=1/RF=3 throughput runs (median reported)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="headrace-failover-") as root:
        cluster = DevCluster(Path(root), 3).start()
        try:
            bootstrap = cluster.bootstrap
            create(bootstrap, "rf1", 3, 1)
            create(bootstrap, "rf3", 3, 3)
            throughput(bootstrap, "rf1", min(args.records, 20_000))  # warm-up
            # Alternate RF=1 and RF=3 runs so load from elsewhere hits both alike; medians.
            rf1_runs: list[float] = []
            rf3_runs: list[float] = []
            for _ in range(args.repeats):
                rf1_runs.append(throughput(bootstrap, "rf1", args.records))
                rf3_runs.append(throughput(bootstrap, "rf3", args.records))
            rf1 = statistics.median(rf1_runs)
            rf3 = statistics.median(rf3_runs)
            ratios = sorted(b / a for a, b in zip(rf1_runs, rf3_runs, strict=True))
            times = failover_rounds(cluster, args.rounds)
        finally:
            cluster.kill()
    result = {
        "failover_rounds": len(times),
        "failover_p50_s": round(statistics.median(times), 3),
        "failover_p99_s": round(percentile(times, 0.99), 3),
        "failover_max_s": round(max(times), 3),
        "rf1_records_per_s": round(rf1),
        "rf3_records_per_s": round(rf3),
        "rf3_over_rf1": round(statistics.median(ratios), 3),
        "rf3_over_rf1_runs": [round(r, 3) for r in ratios],
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
