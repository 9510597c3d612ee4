"""Metadata at scale: creating thousands of topics, auto-creating thousands in one request,
restarting with them, and stopping in the middle of a big creation.

Starts one ``headrace broker`` process (default settings, except ``--auto-create-topics-per-
request`` raised to the Metadata batch size so one request creates them all) and measures:

* ``create``: ``--topics`` one-partition topics created through confluent-kafka's AdminClient in
  CreateTopics batches of ``--batch``; total seconds and topics/s, plus the same for the first and
  last batch (equal per-batch times mean creation is linear, not quadratic);
* ``auto_create``: one Metadata request naming ``--auto-create`` unknown topics (a raw Kafka
  wire client), its round trip, and the slowest ApiVersions round trip of a second client that
  keeps asking meanwhile (the event loop's responsiveness);
* ``restart``: SIGTERM stop time, and the time from process start to "listening" with every
  topic on disk, after a clean stop and after ``kill -9``;
* ``sigterm``: SIGTERM sent while a CreateTopics of ``--batch`` topics is in flight: seconds
  until the process exits.

``--cluster`` runs the broker as a one-broker etcd cluster member (an etcd child process, as
``headrace dev`` starts one; replication factor 1), so creations also go through etcd.

    python bench/metadata_scale.py [--topics 10000] [--batch 1000] [--auto-create 3000] \
        [--cluster] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "broker"))
sys.path.insert(0, str(ROOT))

from tests.server.wire import WireClient  # noqa: E402
from tests.support.brokers import BrokerProcess  # noqa: E402


def create_topics(bootstrap: str, names: list[str]) -> float:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    started = time.perf_counter()
    futures = admin.create_topics([NewTopic(n, 1, 1) for n in names], request_timeout=120)
    for future in futures.values():
        future.result(120)
    return time.perf_counter() - started


async def auto_create(port: int, count: int) -> dict[str, float]:
    names = [f"auto-{i:05d}" for i in range(count)]
    asker = await WireClient.connect(port)
    prober = await WireClient.connect(port)
    slowest = 0.0
    done = asyncio.Event()

    async def probe() -> None:
        nonlocal slowest
        while not done.is_set():
            started = time.perf_counter()
            await prober.request(18, 3, client_software_name="bench",
                                 client_software_version="1")
            slowest = max(slowest, time.perf_counter() - started)
            await asyncio.sleep(0.01)

    from kio.index import load_request_schema

    module = sys.modules[load_request_schema(3, 12).__module__]
    probing = asyncio.create_task(probe())
    started = time.perf_counter()
    response = await asker.request(
        3, 12, wait_seconds=300,
        topics=tuple(module.MetadataRequestTopic(topic_id=None, name=n) for n in names),
        allow_auto_topic_creation=True, include_topic_authorized_operations=False,
    )
    round_trip = time.perf_counter() - started
    done.set()
    await probing
    await asker.close()
    await prober.close()
    created = sum(1 for t in response.topics if t.error_code == 0)
    return {"names": count, "created": created, "round_trip_s": round_trip,
            "slowest_api_versions_s": slowest}


def timed_start(broker: BrokerProcess) -> float:
    started = time.perf_counter()
    broker.start()
    return time.perf_counter() - started


def timed_stop(broker: BrokerProcess) -> float:
    started = time.perf_counter()
    broker.stop(timeout=120)
    return time.perf_counter() - started


def sigterm_mid_creation(data_dir: Path, batch: int) -> float:
    broker = BrokerProcess(data_dir).start()
    names = [f"late-{i:05d}" for i in range(batch)]
    worker = threading.Thread(target=lambda: _ignore(create_topics, broker.bootstrap, names))
    worker.start()
    time.sleep(0.3)  # the request is in flight (a bench, not a test: a rough moment is enough)
    seconds = timed_stop(broker)
    worker.join(60)
    return seconds


def _ignore(function: Any, *args: Any) -> None:
    with contextlib.suppress(Exception):  # the broker stops mid-request
        function(*args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--topics", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--auto-create", type=int, default=3000)
    parser.add_argument("--cluster", action="store_true",
                        help="a one-broker etcd cluster instead of a single broker")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {"load_average": os.getloadavg()[0], "cluster": args.cluster}
    with tempfile.TemporaryDirectory(prefix="metadata-scale-") as tmp, \
            contextlib.ExitStack() as stack:
        flags: tuple[str, ...] = ("--auto-create-topics-per-request", str(args.auto_create))
        if args.cluster:
            from headrace.cluster.etcd_launcher import EtcdProcess

            etcd = EtcdProcess(Path(tmp) / "etcd")
            etcd.start()
            stack.callback(etcd.stop)
            flags += ("--metadata", etcd.metadata_url, "--default-replication-factor", "1",
                      "--offsets-topic-replication-factor", "1")
        data_dir = Path(tmp) / "broker"
        broker = BrokerProcess(data_dir, flags)
        results["first_start_s"] = timed_start(broker)
        names = [f"t-{i:05d}" for i in range(args.topics)]
        batches = [names[i : i + args.batch] for i in range(0, len(names), args.batch)]
        times = [create_topics(broker.bootstrap, batch) for batch in batches]
        total = sum(times)
        results["create"] = {
            "topics": args.topics, "batch": args.batch, "seconds": total,
            "topics_per_s": args.topics / total, "first_batch_s": times[0],
            "last_batch_s": times[-1],
        }
        results["auto_create"] = asyncio.run(auto_create(broker.kafka_port, args.auto_create))
        results["restart"] = {"topics": args.topics + args.auto_create,
                              "stop_s": timed_stop(broker),
                              "start_after_clean_stop_s": timed_start(broker)}
        broker.kill()
        results["restart"]["start_after_kill_s"] = timed_start(broker)
        broker.stop(timeout=120)
        if not args.cluster:  # (a second broker would join the cluster)
            results["sigterm_mid_creation_s"] = sigterm_mid_creation(
                Path(tmp) / "sig", args.batch)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for key, value in results.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
