"""The broker's per-request cost on the Kafka path, two source trees side by side.

``bench/kafka_ab.py`` drives each broker with confluent-kafka at linger.ms=5: a million records
travel in a few thousand requests, so its figures are mostly the client's and the disk's, and
the per-request work a refactor of the request path changes (framing, pipeline, dispatch,
handler, response encoding) hides in the noise. This benchmark makes that work dominate: one
raw-socket client sends ``--requests`` small, pre-encoded requests (Produce v9 of one 100-byte
record with acks=1, Fetch v12 of about 1 KiB from the records just produced, or Metadata v12 of
one topic), keeping ``--window`` of them in flight, and
reads every response. The client is cheap (bytes prepared up front, no decoding beyond the
frame size), so the broker is the bottleneck. Reported per tree: requests/s and the broker's CPU
microseconds per request (``/proc/<pid>/stat``, user + system); and the median over rounds of
the paired ratios b/a. Which tree goes first alternates round by round.

Usage (from the repository root)::

    git worktree add /tmp/base <revision>
    python bench/request_path_ab.py /tmp/base . [--requests 20000] [--rounds 7] [--json]
    git worktree remove --force /tmp/base
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import io
import json
import signal
import socket
import statistics
import struct
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from kio.index import load_request_schema
from kio.serial import entity_writer
from kio.static.primitive import i16, i32

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


ab = _load("kafka_ab_brokers", HERE / "kafka_ab.py")
sys.path.insert(0, str(ROOT))
from tests.server.wire import build_batch  # noqa: E402  (the same batches as the wire tests)


def encode_request(api_key: int, version: int, correlation: int, **fields: Any) -> bytes:
    schema = load_request_schema(api_key, version)
    header_schema = schema.__header_schema__
    header = header_schema(request_api_key=i16(api_key), request_api_version=i16(version),
                           correlation_id=i32(correlation), client_id="request-path-ab")
    buffer = io.BytesIO()
    entity_writer(header_schema)(buffer, header)
    entity_writer(schema)(buffer, schema(**fields))
    payload = buffer.getvalue()
    return struct.pack(">i", len(payload)) + payload


def produce_requests(topic: str, count: int) -> list[bytes]:
    module = sys.modules[load_request_schema(0, 9).__module__]
    records = build_batch([b"x" * 100])
    return [encode_request(0, 9, n, transactional_id=None, acks=1,
                           timeout=datetime.timedelta(seconds=10),
                           topic_data=(module.TopicProduceData(name=topic, partition_data=(
                               module.PartitionProduceData(index=0, records=records),)),))
            for n in range(count)]


def metadata_requests(topic: str, count: int) -> list[bytes]:
    module = sys.modules[load_request_schema(3, 12).__module__]
    return [encode_request(3, 12, n, topics=(module.MetadataRequestTopic(
                               topic_id=uuid.UUID(int=0), name=topic),),
                           allow_auto_topic_creation=True,
                           include_topic_authorized_operations=False)
            for n in range(count)]


def fetch_requests(topic: str, count: int) -> list[bytes]:
    """Fetch v12 from offset n for request n: each answer holds a few of the produced batches."""
    module = sys.modules[load_request_schema(1, 12).__module__]
    return [encode_request(1, 12, n, replica_id=-1, max_wait=datetime.timedelta(0), min_bytes=1,
                           max_bytes=1024, isolation_level=0, session_id=0, session_epoch=-1,
                           topics=(module.FetchTopic(topic=topic, partitions=(
                               module.FetchPartition(partition=0, fetch_offset=n,
                                                     partition_max_bytes=1024),)),),
                           forgotten_topics_data=(), rack_id="")
            for n in range(count)]


def _receive(sock: socket.socket, size: int) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    while view:
        got = sock.recv_into(view)
        if got == 0:
            raise ConnectionError("broker closed the connection")
        view = view[got:]
    return buffer


def drive(port: int, requests: list[bytes], window: int) -> float:
    """Send every request with ``window`` in flight; return the seconds until the last answer."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.perf_counter()
        sent = answered = 0
        while answered < len(requests):
            while sent < len(requests) and sent - answered < window:
                sock.sendall(requests[sent])
                sent += 1
            _receive(sock, struct.unpack(">i", _receive(sock, 4))[0])
            answered += 1
        return time.perf_counter() - start


def kafka_port(broker: Any) -> int:
    return int(broker.bootstrap.rsplit(":", 1)[1])


ENCODERS = {"produce": produce_requests, "fetch": fetch_requests, "metadata": metadata_requests}


def run_round(broker: Any, kind: str, topic: str, count: int, window: int) -> tuple[float, float]:
    """One timed pass of ``kind``; fetch reads what the same round's produce pass wrote."""
    port = kafka_port(broker)
    drive(port, metadata_requests(topic, 3), 1)  # auto-create the topic, untimed
    requests = ENCODERS[kind](topic, count)
    drive(port, requests[: count // 10], window)  # warm up this round's code paths
    before = broker.cpu()
    seconds = drive(port, requests, window)
    cpu = broker.cpu() - before
    return count / seconds, cpu / count * 1e6


def _paired(a: list[float], b: list[float]) -> float:
    return round(statistics.median(y / x for x, y in zip(a, b, strict=True)), 3)


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(143)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="the first source tree (e.g. a git worktree)")
    parser.add_argument("b", type=Path, help="the second source tree")
    parser.add_argument("--requests", type=int, default=20_000, help="requests per round and kind")
    parser.add_argument("--window", type=int, default=64, help="requests in flight (default 64)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per tree (default 7)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    kinds = tuple(ENCODERS)
    rates: dict[str, dict[str, list[float]]] = {t: {k: [] for k in kinds} for t in "ab"}
    cpus: dict[str, dict[str, list[float]]] = {t: {k: [] for k in kinds} for t in "ab"}
    with tempfile.TemporaryDirectory(prefix="request-path-ab-") as work:
        brokers: dict[str, Any] = {}
        try:
            for label, tree in (("a", args.a), ("b", args.b)):
                brokers[label] = ab.start_broker(label, tree.resolve(), Path(work))
            for round_number in range(args.rounds):
                order = "ab" if round_number % 2 == 0 else "ba"
                topics = {label: f"rp-{uuid.uuid4().hex[:8]}" for label in order}
                for kind in kinds:
                    for label in order:
                        rate, cpu = run_round(brokers[label], kind, topics[label], args.requests,
                                              args.window)
                        rates[label][kind].append(rate)
                        cpus[label][kind].append(cpu)
        finally:
            for broker in brokers.values():
                broker.stop()
    result: dict[str, Any] = {
        "requests": args.requests, "window": args.window, "rounds": args.rounds,
        **{label: {"tree": str(tree), **{
            kind: {"requests_per_s": round(statistics.median(rates[label][kind])),
                   "broker_cpu_us_per_request": round(statistics.median(cpus[label][kind]), 1),
                   "rounds_requests_per_s": [round(r) for r in rates[label][kind]]}
            for kind in kinds}} for label, tree in (("a", args.a), ("b", args.b))},
        "median_paired_ratio_b_to_a": {
            **{f"{kind}_requests_per_s": _paired(rates["a"][kind], rates["b"][kind])
               for kind in kinds},
            **{f"{kind}_cpu_per_request": _paired(cpus["a"][kind], cpus["b"][kind])
               for kind in kinds}}}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for label in "ab":
            tree = result[label]
            print(f"{label} ({tree['tree']}): " + "; ".join(
                f"{kind} {tree[kind]['requests_per_s']:,} req/s, "
                f"{tree[kind]['broker_cpu_us_per_request']} µs CPU/req" for kind in kinds))
        print("median paired ratio b/a: " + ", ".join(
            f"{k} {v}" for k, v in result["median_paired_ratio_b_to_a"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
