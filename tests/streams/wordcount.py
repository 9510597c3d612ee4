"""The stateful word count both stream-processing tests run, and how they judge it.

The input is sentences of words from a small vocabulary (each word many times, in two
partitions). A processor keeps a count per word in its state store and, for every occurrence,
writes ``word -> count`` to the output topic. Exactly once means each word's committed outputs
(read_committed) are exactly ``1, 2, ..., n`` in order, ``n`` its occurrences in the input: a
duplicate shows as a repeated count, a lost update as a gap, state restored wrongly after a
crash as a restart from a lower number.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from tests.support.waiting import eventually

VOCABULARY = tuple(f"w{index:02d}" for index in range(40))


def sentences(count: int, *, seed: int = 16, words: int = 5) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(VOCABULARY) for _ in range(words)) for _ in range(count)]


def produce_sentences(bootstrap: str, topic: str, lines: list[str], partitions: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    for index, line in enumerate(lines):
        producer.produce(topic, key=b"s%06d" % index, value=line.encode(),
                         partition=index % partitions)
    assert producer.flush(30) == 0, "input not delivered"


def expected_counts(lines: list[str]) -> Counter[str]:
    return Counter(word for line in lines for word in line.split())


def read_counts(
    bootstrap: str, topic: str, partitions: int, expected: Counter[str], *,
    parse: type[int] | None = None, settle: float = 3.0, timeout: float = 180.0,
) -> dict[str, list[int]]:
    """Every ``word -> count`` of ``topic`` (read_committed, from offset 0) per word, in
    offset order: waits until each word reached its expected count, then reads ``settle``
    seconds more so that extra (duplicated) records show. Values are decimal text."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"judge-{uuid.uuid4().hex[:8]}",
        "isolation.level": "read_committed", "enable.auto.commit": False,
    })
    seen: dict[str, list[int]] = defaultdict(list)
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])

        def poll() -> None:
            for message in consumer.consume(500, 0.2):
                if message.error() is None:
                    key = message.key().decode()
                    seen[key].append(int(message.value().decode()))

        def complete() -> bool:
            poll()
            return all(seen.get(word, [0])[-1] >= n for word, n in expected.items())

        eventually(complete, timeout=timeout, interval=0, message=lambda: (
            f"counts of {topic} short of the input: "
            + ", ".join(f"{w}: {seen.get(w, [0])[-1]}/{n}" for w, n in expected.items()
                        if seen.get(w, [0])[-1] < n)
        ))
        ends = time.monotonic() + settle
        while time.monotonic() < ends:
            poll()
        return dict(seen)
    finally:
        consumer.close()


def exactly_once_problems(seen: dict[str, list[int]], expected: Counter[str]) -> list[str]:
    """What breaks exactly-once in ``seen`` (empty when every word counts 1..n once)."""
    problems = []
    for word in sorted(set(seen) | set(expected)):
        counts = seen.get(word, [])
        wanted = list(range(1, expected.get(word, 0) + 1))
        if counts != wanted:
            duplicated = [n for n, k in Counter(counts).items() if k > 1]
            missing = sorted(set(wanted) - set(counts))
            problems.append(f"{word}: {len(counts)} outputs for {len(wanted)} occurrences, "
                            f"duplicated {duplicated[:5]}, missing {missing[:5]}, "
                            f"last {counts[-3:]}")
    return problems


def counted(log: Path) -> int:
    """How many records the processor logged as counted (each line ``counted ...``)."""
    return log.read_text(errors="replace").count("\ncounted ")


def kill_repeatedly(
    start: Callable[[], subprocess.Popen[bytes]], state_dir: Path, log: Path, *,
    kills: int, timeout: float, name: str,
) -> None:
    """Start the processor ``kills`` times and kill -9 it mid-stream each time, once it has
    counted more records since the last start (so some commits landed); every other start
    wipes ``state_dir`` first, so the store is rebuilt from its changelog."""
    for kill in range(kills):
        if kill % 2:
            shutil.rmtree(state_dir, ignore_errors=True)
        processor = start()
        try:
            target = counted(log) + 700 + 300 * kill
            eventually(lambda target=target: counted(log) >= target,  # type: ignore[misc]
                       timeout=timeout,
                       message=lambda: f"{name} progress:\n{log.read_text()[-3000:]}")
        finally:
            processor.kill()  # kill -9
            processor.wait()
