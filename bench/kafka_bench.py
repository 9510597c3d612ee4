"""Kafka-protocol benchmark: headrace broker vs librdkafka's mock cluster, in one run.

Produces ``--records`` 100-byte records with confluent-kafka (acks=all, linger.ms=5), reads them
back with a consumer, and measures end-to-end latency of records produced one at a time to a
consumer on librdkafka defaults (fetch.wait.max.ms=500). The same steps run against the mock
cluster (``test.mock.num.brokers=1``) so the report can give ratios measured on the same machine
at the same time. The broker's peak RSS is read from /proc.

    python bench/kafka_bench.py --records 1000000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
VALUE = b"x" * 100


def start_broker(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    ready = data_dir.parent / "ready.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "broker"))
    process = subprocess.Popen(
        [sys.executable, "-m", "headrace", "broker", "--data-dir", str(data_dir),
         "--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
         "--ready-file", str(ready), "--log-level", "warning"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL,  # keep --json output clean
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("broker did not start")
        time.sleep(0.05)
    port = json.loads(ready.read_text())["kafka_port"]
    return process, f"127.0.0.1:{port}"


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (``/proc/<pid>/stat``, all threads)."""
    with open(f"/proc/{pid}/stat") as stat:
        # Fields after the ")" that ends the command name; utime and stime are fields 14-15.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process: the Python producer loop, librdkafka's threads and, for
    the mock target, the mock cluster's threads (they all live here)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def await_topic(producer: Producer, topic: str) -> None:
    """Have the producer learn (and the target auto-create) the topic before the clock starts.

    The same Metadata request runs on both targets; leaving it in the timed loop would charge
    headrace's durable topic creation (files and fsyncs, 10-30 ms here, more under load) to
    produce throughput, against the mock's in-memory one. The goal measures producing.
    """
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        metadata = producer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is not None and metadata.error is None and 0 in metadata.partitions:
            return
        time.sleep(0.05)
    raise RuntimeError(f"topic {topic} was not created")


def produce_throughput(config: dict[str, Any], topic: str, records: int) -> tuple[float, int]:
    """Records/s, and how often the producer's queue was full (it then waited 1 ms for acks:
    a sign the target acknowledged too slowly, rather than the producer running out of CPU)."""
    # Delivery reports for failures only: a Python callback per record would dominate.
    producer = Producer({**config, "acks": "all", "linger.ms": 5,
                         "delivery.report.only.error": True})
    failures = queue_full = 0
    await_topic(producer, topic)

    def delivered(error: Any, _message: Any) -> None:
        nonlocal failures
        if error is not None:
            failures += 1

    started = time.perf_counter()
    for _ in range(records):
        while True:
            try:
                producer.produce(topic, VALUE, partition=0, on_delivery=delivered)
                break
            except BufferError:
                queue_full += 1
                producer.poll(0.001)
    producer.flush(120)
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{failures} deliveries failed")
    return records / elapsed, queue_full


def consume_throughput(config: dict[str, Any], topic: str, records: int) -> tuple[float, int]:
    consumer = Consumer({**config, "group.id": f"bench-{uuid.uuid4()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    received = 0
    started = time.perf_counter()
    idle_since = time.perf_counter()
    while received < records:
        batch = consumer.consume(10_000, 0.5)
        now = time.perf_counter()
        if batch:
            received += sum(1 for m in batch if m.error() is None)
            idle_since = now
        elif now - idle_since > 3:  # the mock cluster keeps only its newest records
            break
    elapsed = time.perf_counter() - started
    consumer.close()
    return received / elapsed if elapsed else 0.0, received


def end_to_end_latency(config: dict[str, Any], topic: str, samples: int) -> dict[str, float]:
    producer = Producer({**config, "acks": "all", "linger.ms": 0})
    consumer = Consumer({**config, "group.id": f"latency-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    producer.produce(topic, b"warm-up", partition=0)
    producer.flush(10)
    _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.assign([TopicPartition(topic, 0, high)])
    latencies = []
    # Let the consumer reach the end and park in a long poll before the first sample.
    consumer.poll(1.0)
    for index in range(samples):
        payload = str(index).encode()
        started = time.perf_counter()
        producer.produce(topic, payload, partition=0)
        producer.poll(0)
        while True:
            message = consumer.poll(2.0)
            if message is not None and message.error() is None and message.value() == payload:
                break
            if time.perf_counter() - started > 10:
                raise RuntimeError(f"latency sample {index} lost")
        latencies.append((time.perf_counter() - started) * 1000)
    producer.flush(10)
    consumer.close()
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "samples": samples,
    }


class Target:
    """One system under test and the figures gathered from it across rounds."""

    def __init__(self, name: str, config: dict[str, Any], broker_pid: int | None = None) -> None:
        self.name = name
        self.config = config
        self.broker_pid = broker_pid
        self.produce_rates: list[float] = []
        self.consume_rates: list[float] = []
        self.consumed: list[int] = []
        # CPU seconds spent during each produce round: this (client) process, broker process.
        self.client_cpu: list[float] = []
        self.broker_cpu: list[float] = []
        self.produce_seconds: list[float] = []
        self.queue_full: list[int] = []

    def run_round(self, records: int) -> None:
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        client_before = own_cpu_seconds()
        broker_before = process_cpu_seconds(self.broker_pid) if self.broker_pid else 0.0
        rate, queue_full = produce_throughput(self.config, topic, records)
        self.queue_full.append(queue_full)
        self.client_cpu.append(own_cpu_seconds() - client_before)
        if self.broker_pid:
            self.broker_cpu.append(process_cpu_seconds(self.broker_pid) - broker_before)
        self.produce_seconds.append(records / rate)
        self.produce_rates.append(rate)
        rate, received = consume_throughput(self.config, topic, records)
        self.consume_rates.append(rate)
        self.consumed.append(received)

    def report(self, samples: int) -> dict[str, Any]:
        latency_topic = f"latency-{uuid.uuid4().hex[:8]}"
        warm = Producer({**self.config})  # auto-creates the topic outside the timing
        warm.produce(latency_topic, b"create", partition=0)
        warm.flush(10)
        return {
            "target": self.name,
            "produce_records_per_s": statistics.median(self.produce_rates),
            "produce_rounds": self.produce_rates,
            "consume_records_per_s": statistics.median(self.consume_rates),
            "consumed": min(self.consumed),
            # Where the produce time went: wall seconds and CPU seconds per round. The mock
            # cluster runs inside the client process, so its work is in client_cpu_s.
            "produce_wall_s": self.produce_seconds,
            "produce_client_cpu_s": self.client_cpu,
            "produce_broker_cpu_s": self.broker_cpu or None,
            "produce_queue_full_waits": self.queue_full,
            "latency": end_to_end_latency(self.config, latency_topic, samples),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--latency-samples", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating produce/consume rounds per target; medians reported")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    # A producer owning a mock cluster; other clients find it through its metadata.
    owner = Producer({"test.mock.num.brokers": 1})
    brokers = owner.list_topics(timeout=10).brokers
    mock_bootstrap = ",".join(f"{b.host}:{b.port}" for b in brokers.values())
    with tempfile.TemporaryDirectory() as tmp:
        process, bootstrap = start_broker(Path(tmp) / "data")
        try:
            headrace = Target("headrace", {"bootstrap.servers": bootstrap}, process.pid)
            mock = Target("librdkafka-mock", {"bootstrap.servers": mock_bootstrap})
            # Alternate targets round by round so machine noise hits both alike.
            for _ in range(args.rounds):
                headrace.run_round(args.records)
                mock.run_round(args.records)
            headrace_report = headrace.report(args.latency_samples)
            headrace_report["broker_peak_rss_mib"] = peak_rss_mib(process.pid)
            mock_report = mock.report(args.latency_samples)
        finally:
            process.terminate()
            process.wait(30)
    del owner

    report = {
        "records": args.records,
        "record_bytes": len(VALUE),
        "results": [headrace_report, mock_report],
        "ratios": {
            "produce_vs_mock": headrace_report["produce_records_per_s"]
            / mock_report["produce_records_per_s"],
            "latency_p99_vs_mock": headrace_report["latency"]["p99_ms"]
            / mock_report["latency"]["p99_ms"],
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for result in report["results"]:
            print(f"{result['target']:>16}: produce {result['produce_records_per_s']:,.0f}/s, "
                  f"consume {result['consume_records_per_s']:,.0f}/s "
                  f"({result['consumed']} records), e2e p50 {result['latency']['p50_ms']:.2f} ms "
                  f"p99 {result['latency']['p99_ms']:.2f} ms")
        for result in report["results"]:
            broker_cpu = result["produce_broker_cpu_s"]
            print(f"{result['target']:>16}: produce rounds wall "
                  + " / ".join(f"{s:.2f}" for s in result["produce_wall_s"]) + " s, client CPU "
                  + " / ".join(f"{s:.2f}" for s in result["produce_client_cpu_s"]) + " s"
                  + ("" if broker_cpu is None else ", broker CPU "
                     + " / ".join(f"{s:.2f}" for s in broker_cpu) + " s"))
        print(f"broker peak RSS {headrace_report['broker_peak_rss_mib']:.0f} MiB; "
              f"produce ratio vs mock {report['ratios']['produce_vs_mock']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
