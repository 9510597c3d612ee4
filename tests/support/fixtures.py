"""The suite-wide fixtures, registered for every test by ``pytest_plugins`` in tests/conftest.py.

Brokers (``headrace broker`` subprocesses, :class:`~tests.support.brokers.BrokerProcess`):

- ``broker`` (module scope): one shared broker for tests that only need some broker;
- ``fresh_broker``: a broker of the test's own, safe to stop, kill or restart;
- ``start_broker``: a factory ``start_broker(*extra_flags, data_dir=None)``.

A directory may override ``broker`` with a fixture of its own (tests/server: an in-process one).

Clusters (:mod:`tests.support.clusters`):

- ``etcd`` (session scope): one real etcd shared by the session; tests keep apart by key root;
- ``keyspace``: a key root of the test's own; ``make_store``: stores on ``etcd`` under it;
- ``private_etcd``: an etcd of the test's own, for tests that stop or restart it;
- ``cluster``: etcd plus three brokers in zones a, b, c, with quick failure detection.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# Every pytest session loads this plugin: the Kafka clients, aiohttp and the broker are imported
# by the fixtures that use them, so a run of the pure tests (protocol, placement) skips them.
if TYPE_CHECKING:
    from headrace.cluster.devcluster import DevCluster
    from headrace.cluster.etcd_launcher import EtcdProcess
    from headrace.cluster.model import KeySpace
    from tests.support.brokers import BrokerProcess
    from tests.support.clusters import StoreFactory


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    from tests.support.brokers import BrokerProcess

    process = BrokerProcess(tmp_path_factory.mktemp("shared-broker") / "data").start()
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture
def start_broker(tmp_path: Path) -> Iterator[Callable[..., BrokerProcess]]:
    from tests.support.brokers import BrokerProcess

    started: list[BrokerProcess] = []

    def start(*extra_args: str, data_dir: Path | None = None) -> BrokerProcess:
        directory = data_dir or tmp_path / f"broker-{len(started)}"
        process = BrokerProcess(directory, tuple(extra_args)).start()
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.kill()


@pytest.fixture
def fresh_broker(start_broker: Callable[..., BrokerProcess]) -> BrokerProcess:
    return start_broker()


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdProcess]:
    from tests.support.clusters import running_etcd

    with running_etcd(tmp_path_factory.mktemp("etcd") / "data") as process:
        yield process


@pytest.fixture
def private_etcd(tmp_path: Path) -> Iterator[EtcdProcess]:
    from tests.support.clusters import running_etcd

    with running_etcd(tmp_path / "etcd-data") as process:
        yield process


@pytest.fixture
def keyspace() -> KeySpace:
    from headrace.cluster.model import KeySpace

    return KeySpace(f"/test-{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def make_store(etcd: EtcdProcess, keyspace: KeySpace) -> AsyncIterator[StoreFactory]:
    from tests.support.clusters import StoreFactory

    factory = StoreFactory(etcd, keyspace)
    try:
        yield factory
    finally:
        await factory.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[DevCluster]:
    """etcd plus three brokers in zones a, b, c, with quick failure detection."""
    from headrace.cluster.devcluster import DevCluster
    from tests.support.clusters import FAST_FLAGS

    local = DevCluster(tmp_path / "cluster", 3, extra_args=FAST_FLAGS)
    try:
        local.start()
        yield local
    finally:
        local.kill()
