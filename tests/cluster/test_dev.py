"""``headrace dev --brokers N`` starts a working replicated cluster and stops all of it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.clients import confluent_consumer, confluent_producer, create_topic
from tests.support.clusters import all_led, partition_states
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


def _value(message: Any) -> bytes | None:
    if message is None or message.error():
        return None
    value: bytes = message.value()
    return value


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes.
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False


def test_dev_cluster_serves_replicated_topics_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "broker"))
    process = subprocess.Popen(
        [sys.executable, "-m", "headrace", "dev", "--brokers", "2",
         "--data-dir", str(tmp_path / "dev"), "--kafka-base-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        if ready["event"] != "cluster ready":  # it failed to start: show why (it exits now)
            raise AssertionError(f"dev cluster did not start: {process.stdout.read()[-4000:]}")
        assert [b["zone"] for b in ready["brokers"]] == ["a", "b"]
        bootstrap = ready["bootstrap"]
        create_topic(bootstrap, "dev-topic", 2, 2)
        eventually(lambda: all_led(bootstrap, "dev-topic", 2), timeout=30, message="leaders",
                   retry_on=(Exception,))
        assert all(len(isr) == 2 for _, _, isr in partition_states(bootstrap, "dev-topic").values())
        producer = confluent_producer(bootstrap, {"acks": "all"})
        producer.produce("dev-topic", b"hello", partition=1)
        assert producer.flush(20) == 0
        # Consumer groups work with two brokers (__consumer_offsets replicated twice).
        consumer = confluent_consumer(bootstrap, {"group.id": "dev-group",
                                                  "auto.offset.reset": "earliest"})
        consumer.subscribe(["dev-topic"])
        try:
            received = eventually(lambda: _value(consumer.poll(0.5)), timeout=60,
                                  message="a group delivery", retry_on=(Exception,))
        finally:
            consumer.close()
        assert received == b"hello"
        pids = [
            json.loads((tmp_path / "dev" / f"broker-{n}.ready.json").read_text())["pid"]
            for n in (1, 2)
        ]
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
        assert not any(_alive(pid) for pid in pids)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
