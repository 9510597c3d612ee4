"""Fixtures for the cluster tests: a real etcd on loopback ports, one per test session.

Tests share the etcd but each gets its own key root, so they never see each other's metadata.
Tests that stop or restart etcd start their own with :func:`private_etcd`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cluster_helpers import FAST_FLAGS, StoreFactory, running_etcd

from headrace.cluster.devcluster import DevCluster
from headrace.cluster.etcd_launcher import EtcdProcess
from headrace.cluster.model import KeySpace


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdProcess]:
    with running_etcd(tmp_path_factory.mktemp("etcd") / "data") as process:
        yield process


@pytest.fixture
def private_etcd(tmp_path: Path) -> Iterator[EtcdProcess]:
    with running_etcd(tmp_path / "etcd-data") as process:
        yield process


@pytest.fixture
def keyspace() -> KeySpace:
    return KeySpace(f"/test-{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def make_store(etcd: EtcdProcess, keyspace: KeySpace) -> AsyncIterator[StoreFactory]:
    factory = StoreFactory(etcd, keyspace)
    try:
        yield factory
    finally:
        await factory.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[DevCluster]:
    """etcd plus three brokers in zones a, b, c, with quick failure detection."""
    local = DevCluster(tmp_path / "cluster", 3, extra_args=FAST_FLAGS)
    try:
        local.start()
        yield local
    finally:
        local.kill()
