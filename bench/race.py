"""Headrace raced against Apache Kafka itself: the same workloads, one run, alternating.

Starts Apache Kafka (the pinned 4.x jars of ``tests/tools/install.d/kafka.sh``: one KRaft node,
broker and controller in one JVM, heap ``--kafka-heap``, 1 GiB by default on this 2-core/24 GiB
machine) and a Headrace broker (``python -m headrace broker`` from this tree, ephemeral ports, a
temporary data dir) side by side, then runs every workload against both, one system after the
other, the order flipping each round so a drifting, shared machine hits both alike. Each
workload's figure per system is the median over rounds; its ratio is Headrace/Kafka, the median
of the per-round paired ratios (rounds next to each other share the machine's speed of the
moment). Whether a ratio above 1 is good depends on the figure: ``better`` says which way.

Workloads (confluent-kafka unless said otherwise; 100-byte records, one partition):

- ``produce``: ``--records`` records, acks=all, linger ``--linger-ms``; records/s.
- ``consume``: the same records read back by an assigned consumer; records/s.
- ``e2e_p50/p99/p99.9``: records sent at ``--rate``/s for ``--latency-seconds`` (acks=all,
  linger 0) to a consumer in another thread; send → receive, ms.
- ``linger0_requests``: linger 0 and ``batch.num.messages=1``, so every record is its own
  ProduceRequest; requests/s.
- ``fanout``: one producer writes ``--fanout-records`` while 10 consumer groups (already
  joined) read them; records delivered/s over all groups.
- ``cold_catchup``: a topic written at the start of the round, read at its end after all the
  other workloads; records/s. The machine has 24 GiB and no way to drop the page cache without
  root tricks, so "cold" only means older than everything else: it is read from the page cache.
- ``kafka_producer_perf`` / ``kafka_consumer_perf``: Apache Kafka's own
  ``ProducerPerformance`` / ``ConsumerPerformance`` (a JVM client, same for both); records/s.
- ``cpu_s_per_gb_produced`` / ``cpu_s_per_gb_consumed``: the broker process's user+system CPU
  (``/proc/<pid>/stat``, all threads) during ``produce`` / ``consume``, per GB of record values.
- ``peak_rss_mib``: the broker's VmHWM at the end (the JVM's includes its pre-touched heap
  only as far as it was used; ``-Xms`` equals ``-Xmx``, as Kafka's scripts do).
- ``ready_s``: process start → first Metadata answer listing the broker (once per system: Kafka's
  storage format, a JVM of its own, is excluded and reported beside).

    python bench/race.py --json                # the full run (≈6 min here)
    python bench/race.py --quick --json        # small sizes, one round (< 2 min)
    python bench/race.py --plot docs/bench/race-ratios.png

Exit 2 with one line when the Apache Kafka peer is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.kafka_bench import (  # noqa: E402
    await_topic,
    consume_throughput,
    peak_rss_mib,
    process_cpu_seconds,
)
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402
from tests.peers import kafka as kafka_peer  # noqa: E402

VALUE = b"x" * 100
PRODUCER_PERFORMANCE = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERFORMANCE = "org.apache.kafka.tools.ConsumerPerformance"
# The perf tools are the load generator, not a short-lived admin command: full JIT, more heap.
PERF_JVM_OPTIONS = ("-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true")
FANOUT_GROUPS = 10


@dataclass
class System:
    """One broker under test and its figures, one entry per round per workload."""

    name: str
    pid: int
    bootstrap: str
    stop: Callable[[], object]
    ready_s: float
    extra: dict[str, float] = field(default_factory=dict)
    figures: dict[str, list[float]] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap}

    def record(self, workload: str, value: float) -> None:
        self.figures.setdefault(workload, []).append(value)

    def cpu(self) -> float:
        return float(process_cpu_seconds(self.pid))


def _metadata_lists_a_broker(bootstrap: str) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000})
    try:
        return bool(admin.list_topics(timeout=2).brokers)
    except Exception:  # KafkaException while the broker starts
        return False


def start_headrace(workdir: Path) -> System:
    home = workdir / "headrace"
    home.mkdir()
    ready_file = home / "ready.json"
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'broker'}{os.pathsep}{ROOT / 'operator'}")
    started = time.monotonic()
    with (home / "broker.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "headrace", "broker", "--data-dir", str(home / "data"),
             "--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
             "--ready-file", str(ready_file), "--log-level", "warning"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    deadline = started + 60
    try:
        while not ready_file.exists():  # the port is only known from the ready file
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Headrace broker did not start:\n"
                                   + (home / "broker.log").read_text()[-2000:])
            time.sleep(0.01)
        bootstrap = f"127.0.0.1:{json.loads(ready_file.read_text())['kafka_port']}"
        while not _metadata_lists_a_broker(bootstrap):
            if time.monotonic() > deadline:
                raise RuntimeError("Headrace broker does not answer Metadata")
            time.sleep(0.01)
    except BaseException:
        stop()
        raise
    return System("headrace", process.pid, bootstrap, stop, time.monotonic() - started)


def start_kafka(workdir: Path, heap: str) -> System:
    peer = kafka_peer.start_kraft_broker(workdir, heap=heap)
    return System("kafka", peer.process.pid, peer.bootstrap, peer.stop,
                  peer.ready_seconds - peer.format_seconds,
                  extra={"storage_format_s": peer.format_seconds})


# --- workloads -------------------------------------------------------------------------------

def produce(config: dict[str, Any], topic: str, records: int, **settings: Any) -> float:
    """Records/s for ``records`` 100-byte records to partition 0, delivery counted by flush."""
    producer = Producer({**config, "acks": "all", "delivery.report.only.error": True,
                         **settings})
    await_topic(producer, topic)  # creation is not timed
    failures = 0

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
                producer.poll(0.001)
    if producer.flush(300) or failures:
        raise RuntimeError(f"{topic}: {failures} deliveries failed")
    return records / (time.perf_counter() - started)


def read_all(config: dict[str, Any], topic: str, records: int) -> float:
    rate, received = consume_throughput(config, topic, records)
    if received < records:
        raise RuntimeError(f"{topic}: read {received} of {records} records")
    return rate


def latency_at_rate(config: dict[str, Any], topic: str, rate: int,
                    seconds: float) -> dict[str, float]:
    """Send → receive of records sent at a fixed rate (acks=all, linger 0); p50/p99/p99.9 ms."""
    producer = Producer({**config, "acks": "all", "linger.ms": 0})
    await_topic(producer, topic)
    consumer = Consumer({**config, "group.id": f"race-latency-{uuid.uuid4()}",
                         "enable.auto.commit": False, "auto.offset.reset": "latest"})
    _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.assign([TopicPartition(topic, 0, high)])
    consumer.poll(0.5)  # reach the end and park in a fetch before the first send
    total = int(rate * seconds)
    latencies: list[float] = []
    done = threading.Event()

    def receive() -> None:
        deadline = time.monotonic() + seconds + 30
        while len(latencies) < total and time.monotonic() < deadline:
            # poll, not consume(n, timeout): consume waits for n records or the timeout.
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            if len(sent := message.value() or b"") == 8:
                now = time.perf_counter()
                latencies.append((now - struct.unpack("d", sent)[0]) * 1000)
        done.set()

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    started = time.perf_counter()
    for index in range(total):
        due = started + index / rate
        while (wait := due - time.perf_counter()) > 0:
            producer.poll(min(wait, 0.001))
        producer.produce(topic, struct.pack("d", time.perf_counter()), partition=0)
        producer.poll(0)
    producer.flush(30)
    done.wait(seconds + 35)
    consumer.close()
    if len(latencies) < total:
        raise RuntimeError(f"{topic}: {total - len(latencies)} latency samples lost")
    latencies.sort()

    def quantile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * q))]

    return {"p50": quantile(0.5), "p99": quantile(0.99), "p99.9": quantile(0.999)}


def fanout(config: dict[str, Any], topic: str, records: int) -> float:
    """Records delivered/s over ``FANOUT_GROUPS`` groups reading while one producer writes."""
    await_topic(Producer(config), topic)
    assigned = threading.Barrier(FANOUT_GROUPS + 1, timeout=60)
    finished: list[float] = []
    errors: list[str] = []

    def read(group: str) -> None:
        consumer = Consumer({**config, "group.id": group, "auto.offset.reset": "earliest",
                             "enable.auto.commit": False})
        waiting = [True]

        def on_assign(_consumer: Any, partitions: Any) -> None:
            if partitions and waiting[0]:
                waiting[0] = False
                assigned.wait()

        consumer.subscribe([topic], on_assign=on_assign)
        received = 0
        deadline = time.monotonic() + 300
        try:
            while received < records and time.monotonic() < deadline:
                received += sum(1 for m in consumer.consume(10_000, 0.2) if m.error() is None)
            finished.append(time.perf_counter())
            if received < records:
                errors.append(f"{group}: read {received} of {records}")
        except threading.BrokenBarrierError:
            errors.append(f"{group}: never assigned")
        finally:
            consumer.close()

    readers = [threading.Thread(target=read, args=(f"race-fanout-{uuid.uuid4()}",), daemon=True)
               for _ in range(FANOUT_GROUPS)]
    for reader in readers:
        reader.start()
    assigned.wait()  # every group joined: the clock measures delivery, not joining
    started = time.perf_counter()
    produce(config, topic, records, **{"linger.ms": 5})
    for reader in readers:
        reader.join(310)
    if errors or len(finished) < FANOUT_GROUPS:
        raise RuntimeError(f"fan-out on {topic}: {errors}")
    return records * FANOUT_GROUPS / (max(finished) - started)


def _perf_tool(main_class: str, *args: str, timeout: float) -> str:
    java, classpath = kafka_peer.java_executable(), kafka_peer.kafka_classpath()
    assert java is not None and classpath is not None  # checked at the start
    done = subprocess.run(
        [java, *PERF_JVM_OPTIONS, f"-Dlog4j2.configurationFile={kafka_peer.TOOLS_LOG4J}",
         "-cp", classpath, main_class, *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{main_class} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout


def kafka_producer_perf(config: dict[str, Any], topic: str, records: int,
                        linger_ms: int) -> float:
    await_topic(Producer(config), topic)
    out = _perf_tool(PRODUCER_PERFORMANCE, "--topic", topic, "--num-records", str(records),
                     "--record-size", str(len(VALUE)), "--throughput", "-1",
                     "--command-property", f"bootstrap.servers={config['bootstrap.servers']}",
                     "acks=all", f"linger.ms={linger_ms}", timeout=600)
    # "<n> records sent, <rate> records/sec (<x> MB/sec), ..." is the last summary line.
    match = re.findall(rf"{records} records sent, ([\d.]+) records/sec", out)
    if not match:
        raise RuntimeError(f"ProducerPerformance printed no summary:\n{out[-2000:]}")
    return float(match[-1])


def kafka_consumer_perf(config: dict[str, Any], topic: str, records: int) -> float:
    out = _perf_tool(CONSUMER_PERFORMANCE, "--bootstrap-server", config["bootstrap.servers"],
                     "--topic", topic, "--num-records", str(records), "--timeout", "60000",
                     "--group", f"race-perf-{uuid.uuid4()}", timeout=600)
    # CSV: start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,
    # rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec. fetch.nMsg.sec leaves
    # the group join out.
    rows = [line.split(",") for line in out.splitlines() if line.count(",") >= 9]
    data = [row for row in rows if re.fullmatch(r"\s*[\d.]+\s*", row[4])]
    if not data or int(float(data[-1][4])) < records:
        raise RuntimeError(f"ConsumerPerformance did not read {records} records:\n{out[-2000:]}")
    return float(data[-1][9])


# --- the race --------------------------------------------------------------------------------

# workload -> (unit, which way is better)
WORKLOADS: dict[str, tuple[str, str]] = {
    "produce": ("records/s", "higher"),
    "consume": ("records/s", "higher"),
    "e2e_p50": ("ms", "lower"),
    "e2e_p99": ("ms", "lower"),
    "e2e_p99.9": ("ms", "lower"),
    "linger0_requests": ("requests/s", "higher"),
    "fanout": ("records/s delivered", "higher"),
    "cold_catchup": ("records/s", "higher"),
    "kafka_producer_perf": ("records/s", "higher"),
    "kafka_consumer_perf": ("records/s", "higher"),
    "cpu_s_per_gb_produced": ("CPU s/GB", "lower"),
    "cpu_s_per_gb_consumed": ("CPU s/GB", "lower"),
    "peak_rss_mib": ("MiB", "lower"),
    "ready_s": ("s", "lower"),
}


def _topic(label: str) -> str:
    return f"race-{label}-{uuid.uuid4().hex[:8]}"


def run_round(systems: list[System], args: argparse.Namespace, log: Callable[[str], None]) -> None:
    """Every workload once per system; the systems take turns within each workload."""
    gigabytes = args.records * len(VALUE) / 1e9
    cold_topics = {}
    for system in systems:  # written first, read last: the oldest data of the round
        cold_topics[system.name] = _topic("cold")
        produce(system.config, cold_topics[system.name], args.records, **{"linger.ms": 5})
    topics = {system.name: _topic("load") for system in systems}

    def each(label: str, work: Callable[[System], None]) -> None:
        for system in systems:
            began = time.monotonic()
            work(system)
            log(f"  {label} {system.name}: {time.monotonic() - began:.1f}s")

    def produce_step(system: System) -> None:
        before = system.cpu()
        system.record("produce", produce(system.config, topics[system.name], args.records,
                                         **{"linger.ms": args.linger_ms}))
        system.record("cpu_s_per_gb_produced", (system.cpu() - before) / gigabytes)

    def consume_step(system: System) -> None:
        before = system.cpu()
        system.record("consume", read_all(system.config, topics[system.name], args.records))
        system.record("cpu_s_per_gb_consumed", (system.cpu() - before) / gigabytes)

    def latency_step(system: System) -> None:
        figures = latency_at_rate(system.config, _topic("latency"), args.rate,
                                  args.latency_seconds)
        for quantile, value in figures.items():
            system.record(f"e2e_{quantile}", value)

    def linger0_step(system: System) -> None:
        system.record("linger0_requests", produce(
            system.config, _topic("linger0"), args.linger0_records,
            **{"linger.ms": 0, "batch.num.messages": 1}))

    def producer_perf_step(system: System) -> None:
        topic = _topic("perf")
        system.record("kafka_producer_perf",
                      kafka_producer_perf(system.config, topic, args.perf_records,
                                          args.linger_ms))
        system.record("kafka_consumer_perf",
                      kafka_consumer_perf(system.config, topic, args.perf_records))

    each("produce", produce_step)
    each("consume", consume_step)
    each("e2e latency", latency_step)
    each("linger 0", linger0_step)
    each("fan-out", lambda s: s.record("fanout", fanout(s.config, _topic("fanout"),
                                                          args.fanout_records)))
    each("perf tools", producer_perf_step)
    each("cold catch-up", lambda s: s.record(
        "cold_catchup", read_all(s.config, cold_topics[s.name], args.records)))


def _paired_ratio(headrace: list[float], kafka: list[float]) -> float | None:
    """``None`` when no round has a non-zero Kafka figure (CPU counts in 10 ms ticks)."""
    pairs = [h / k for h, k in zip(headrace, kafka, strict=True) if k]
    return statistics.median(pairs) if pairs else None


def report(systems: dict[str, System], args: argparse.Namespace,
           load: tuple[float, float, float]) -> dict[str, Any]:
    headrace, kafka = systems["headrace"], systems["kafka"]
    for system in (headrace, kafka):
        system.record("peak_rss_mib", peak_rss_mib(system.pid))
        system.record("ready_s", system.ready_s)
    workloads = {}
    for name, (unit, better) in WORKLOADS.items():
        h, k = headrace.figures[name], kafka.figures[name]
        workloads[name] = {
            "unit": unit, "better": better,
            "headrace": round(statistics.median(h), 4), "kafka": round(statistics.median(k), 4),
            "ratio": None if (ratio := _paired_ratio(h, k)) is None else round(ratio, 4),
            "rounds": {"headrace": [round(v, 4) for v in h], "kafka": [round(v, 4) for v in k]},
        }
    return {
        "date": time.strftime("%Y-%m-%d"),
        "load_average": {"start": list(load), "end": list(os.getloadavg())},
        "kafka_version": kafka_peer.kafka_version(),
        "kafka_heap": args.kafka_heap,
        "kafka_storage_format_s": round(kafka.extra["storage_format_s"], 3),
        "settings": {key: getattr(args, key) for key in (
            "rounds", "warmup", "records", "linger_ms", "rate", "latency_seconds",
            "linger0_records",
            "fanout_records", "perf_records")},
        "ratio": "headrace / kafka, median of per-round paired ratios",
        "workloads": workloads,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in result["workloads"] if result["workloads"][n]["ratio"] is not None]
    ratios = [result["workloads"][n]["ratio"] for n in names]
    good = [(r >= 1) == (result["workloads"][n]["better"] == "higher") for n, r in
            zip(names, ratios, strict=True)]
    figure, axes = plt.subplots(figsize=(8, 0.42 * len(names) + 1.2))
    axes.barh([f"{n} ({result['workloads'][n]['better']} better)" for n in names], ratios,
              color=["tab:green" if g else "tab:red" for g in good])
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_xscale("log")
    axes.invert_yaxis()
    for index, ratio in enumerate(ratios):
        axes.text(ratio, index, f" {ratio:.2f}x", va="center", fontsize=8)
    load = result["load_average"]["start"][0]
    axes.set_title(f"Headrace / Apache Kafka {result['kafka_version']} ({result['date']}, "
                   f"{result['settings']['rounds']} rounds, load {load:.1f})", fontsize=10)
    axes.set_xlabel("ratio Headrace/Kafka (log scale; green = Headrace ahead)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def print_text(result: dict[str, Any]) -> None:
    print(f"Headrace vs Apache Kafka {result['kafka_version']} (heap {result['kafka_heap']}), "
          f"{result['settings']['rounds']} rounds, load {result['load_average']}")
    print(f"{'workload':<24}{'headrace':>14}{'kafka':>14}{'ratio':>8}  unit (better)")
    for name, w in result["workloads"].items():
        ratio = float("nan") if w["ratio"] is None else w["ratio"]
        print(f"{name:<24}{w['headrace']:>14,.3f}{w['kafka']:>14,.3f}{ratio:>8.3f}  "
              f"{w['unit']} ({w['better']})")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and one round (a smoke run, < 2 minutes)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=int, default=1_000_000,
                        help="records for produce, consume and cold catch-up")
    parser.add_argument("--linger-ms", type=int, default=5)
    parser.add_argument("--rate", type=int, default=1000, help="e2e latency: records/s")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--linger0-records", type=int, default=50_000)
    parser.add_argument("--fanout-records", type=int, default=100_000)
    parser.add_argument("--perf-records", type=int, default=500_000,
                        help="records for Kafka's ProducerPerformance/ConsumerPerformance")
    parser.add_argument("--kafka-heap", default="1g", help="Apache Kafka's -Xms/-Xmx")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--plot", type=Path, help="write a PNG of the ratios here")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="skip the untimed round at --quick sizes that warms both brokers "
                             "(the JVM's JIT, Headrace's imports and caches) before the rounds")
    args = parser.parse_args()
    if args.quick:
        args.warmup = False
        _quick_sizes(args)
    return args


def _quick_sizes(args: argparse.Namespace) -> argparse.Namespace:
    args.rounds, args.records, args.rate, args.latency_seconds = 1, 20_000, 200, 2.0
    args.linger0_records, args.fanout_records, args.perf_records = 2000, 5000, 20_000
    return args


def main() -> int:
    args = parse_args()
    missing = kafka_peer.kafka_missing_reason()
    if missing is not None:
        hint = "" if "kafka.sh" in missing else f" (see bash {kafka_peer.INSTALLER})"
        print(f"race: {missing}{hint}", file=sys.stderr)
        return 2

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    load = os.getloadavg()
    started: list[System] = []
    with tempfile.TemporaryDirectory(prefix="race-") as tmp:
        try:
            started.append(start_kafka(Path(tmp), args.kafka_heap))
            started.append(start_headrace(Path(tmp)))
            log("ready: " + ", ".join(f"{s.name} {s.ready_s:.2f}s" for s in started))
            if args.warmup:
                log("warm-up round (not counted)")
                run_round(started, _quick_sizes(argparse.Namespace(**vars(args))), log)
                for system in started:
                    system.figures.clear()
            for number in range(args.rounds):
                log(f"round {number + 1}/{args.rounds}")
                run_round(started if number % 2 == 0 else started[::-1], args, log)
            result = report({s.name: s for s in started}, args, load)
        finally:
            for system in started:
                system.stop()
    if args.plot:
        plot(result, args.plot)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_text(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
