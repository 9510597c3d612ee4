"""Brokers for tests: in this process on the test's event loop, or a real ``headrace broker``.

:func:`in_process_broker` is the one place tests construct a broker: the Kafka side (and, when
asked, its cluster membership and HTTP app) on ephemeral ports of 127.0.0.1 over a data
directory of the test's. The result starts and stops as an async context manager, or by hand
when a test supplies its own layers first (``running.broker.attach(...)``) or restarts it.

:class:`BrokerProcess` runs ``python -m headrace broker`` as a child process (ephemeral ports
reported through ``--ready-file``), for tests of real clients, signals and crash recovery.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider

from headrace.app import BrokerApp
from headrace.cluster.node import ClusterNode, ClusterSettings
from headrace.core.broker import Broker
from headrace.core.config import BrokerConfig
from headrace.core.policies import Authorizer, QuotaManager
from headrace.core.requests import RequestObserver
from headrace.observability.metrics import BrokerMetrics
from tests.support.waiting import eventually

#: The repository root: where a broker subprocess runs and finds the packages.
ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0

#: What every in-process broker gets unless the test says otherwise: ephemeral Kafka port, no
#: HTTP listener of the broker's own, and one partition of __consumer_offsets and of
#: __transaction_state each (quick to open).
IN_PROCESS_DEFAULTS: dict[str, Any] = {
    "kafka_port": 0, "http_host": None, "offsets_topic_partitions": 1,
    "transaction_state_log_num_partitions": 1,
}


class InProcessBroker:
    """A broker built by :func:`in_process_broker` (through the composition root,
    :class:`~headrace.app.BrokerApp`): ``await start()`` / ``await stop()``, or ``async with``.
    ``broker`` is its services object, ``node`` its cluster membership, ``app`` the whole."""

    def __init__(self, app: BrokerApp) -> None:
        self.app = app
        self.broker = app.broker
        self.node: ClusterNode | None = app.node

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker.kafka_port}"

    @property
    def http_port(self) -> int:
        return self.broker.http_port

    @property
    def http_app(self) -> web.Application:
        assert self.app.http_app is not None, "started with http=True"
        return self.app.http_app

    async def start(self) -> InProcessBroker:
        await self.app.start()
        return self

    async def stop(self) -> None:
        await self.app.stop()

    async def __aenter__(self) -> InProcessBroker:
        return await self.start()

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.stop()


def in_process_broker(
    data_dir: Path,
    *,
    observer: RequestObserver | None = None,
    cluster: ClusterSettings | None = None,
    http: bool = False,
    tracer_provider: TracerProvider | None = None,
    max_body_bytes: int | None = None,
    authorizer: Authorizer | None = None,
    quotas: QuotaManager | None = None,
    **config: Any,
) -> InProcessBroker:
    """Build (not start) a broker over ``data_dir``: ``config`` overrides
    :data:`IN_PROCESS_DEFAULTS` and then ``BrokerConfig``'s own defaults; ``cluster`` makes it
    an etcd cluster member; ``http`` serves its HTTP app (``tracer_provider``,
    ``max_body_bytes``) on an ephemeral port once started."""
    settings = {**IN_PROCESS_DEFAULTS, **config}
    if http:
        settings.update(http_host="127.0.0.1", http_port=0)
    if max_body_bytes is not None:
        settings["http_max_body_bytes"] = max_body_bytes
    app = BrokerApp(BrokerConfig(data_dir=data_dir, **settings), observer=observer,
                    cluster=cluster, tracer_provider=tracer_provider,
                    authorizer=authorizer, quotas=quotas)
    return InProcessBroker(app)


@dataclass
class RunningBroker:
    """An in-process broker with its HTTP app and a client session to it: what the HTTP API
    tests of tests/web get from their ``running`` fixture."""

    broker: Broker
    base_url: str
    session: aiohttp.ClientSession

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker.kafka_port}"

    @property
    def cluster_url(self) -> str:
        return f"{self.base_url}/v3/clusters/{self.broker.cluster_id}"

    @property
    def metrics(self) -> BrokerMetrics:
        observer = self.broker.observer
        assert isinstance(observer, BrokerMetrics)
        return observer

    async def create_topic(self, name: str, partitions: int = 1, **configs: str) -> None:
        body: dict[str, Any] = {"topic_name": name, "partitions_count": partitions,
                                "configs": [{"name": k.replace("_", "."), "value": v}
                                            for k, v in configs.items()]}
        async with self.session.post(f"{self.cluster_url}/topics", json=body) as response:
            assert response.status == 201, await response.text()


def http_broker(data_dir: Path, *, tracer_provider: TracerProvider | None = None,
                max_body_bytes: int | None = None) -> InProcessBroker:
    """The broker the HTTP API tests run: metrics observed, three __consumer_offsets
    partitions, a lone consumer's first assignment at once, consumer lag refreshed often."""
    node_id = 1
    return in_process_broker(
        data_dir, observer=BrokerMetrics(node_id, "test"), http=True,
        tracer_provider=tracer_provider, max_body_bytes=max_body_bytes,
        node_id=node_id, offsets_topic_partitions=3, group_initial_rebalance_delay_ms=0,
        consumer_lag_refresh_seconds=0.1,
    )


def subprocess_env() -> dict[str, str]:
    """The environment a ``python -m headrace`` child needs to import this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "broker"), str(ROOT / "operator"), env.get("PYTHONPATH", "")]
    )
    return env


class BrokerProcess:
    """A ``headrace broker`` subprocess bound to ephemeral ports on 127.0.0.1.

    ``bootstrap`` is ``"127.0.0.1:PORT"``; ``stop()`` is SIGTERM (graceful), ``kill()`` SIGKILL,
    ``restart()`` keeps the data dir and gets new ports.
    """

    def __init__(self, data_dir: Path, extra_args: tuple[str, ...] = (),
                 *, client_listener: str | None = None) -> None:
        self.data_dir = data_dir
        self.extra_args = extra_args
        #: The listener ``kafka_port`` and ``bootstrap`` name (None: the first, PLAINTEXT).
        self.client_listener = client_listener
        self.process: subprocess.Popen[bytes] | None = None
        self.kafka_port = 0
        self.http_port = 0
        #: Every Kafka listener's bound port, by listener name.
        self.listener_ports: dict[str, int] = {}
        self.log_path = data_dir.parent / f"{data_dir.name}.broker.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def start(self) -> BrokerProcess:
        assert self.process is None or self.process.poll() is not None, "already running"
        ready_file = self.data_dir.parent / f"{self.data_dir.name}.ready.json"
        ready_file.unlink(missing_ok=True)
        command = [
            sys.executable, "-m", "headrace", "broker",
            "--data-dir", str(self.data_dir),
            "--kafka-listen", "127.0.0.1:0",
            "--http-listen", "127.0.0.1:0",
            "--ready-file", str(ready_file),
            "--offsets-topic-partitions", "5",
            # Tests expect a lone consumer's first assignment at once; extra_args may override.
            "--group-initial-rebalance-delay-ms", "0",
            *self.extra_args,
        ]
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        process = subprocess.Popen(
            command, cwd=ROOT, env=subprocess_env(), stdout=log_file, stderr=subprocess.STDOUT
        )
        self.process = process
        log_file.close()

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"broker exited with {process.returncode}:\n{self.log()}")
            return ready_file.exists()

        try:
            eventually(ready, timeout=STARTUP_TIMEOUT, interval=0.02,
                       message=lambda: f"the broker's ready file:\n{self.log()}")
        except AssertionError:
            self.kill()
            raise
        ready_state = json.loads(ready_file.read_text())
        self.kafka_port = int(ready_state["kafka_port"])
        self.http_port = int(ready_state["http_port"])
        self.listener_ports = {str(k): int(v) for k, v in ready_state["listeners"].items()}
        if self.client_listener is not None:
            self.kafka_port = self.listener_ports[self.client_listener]
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait: a graceful shutdown (returns the exit code)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"broker ignored SIGTERM for {timeout}s:\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL: a crash, no flush, no clean-shutdown marker."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, graceful: bool = True) -> BrokerProcess:
        if graceful:
            self.stop()
        else:
            self.kill()
        return self.start()
