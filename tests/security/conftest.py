"""A SASL broker shared by the module: every mechanism, one SCRAM user, a JWKS file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.security.sasl_support import SASL_LISTENER, broker_flags, write_jwks
from tests.support.brokers import BrokerProcess


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    home = tmp_path_factory.mktemp("sasl-broker")
    jwks = write_jwks(home / "jwks.json")
    process = BrokerProcess(home / "data", broker_flags(f"file://{jwks}"),
                            client_listener=SASL_LISTENER).start()
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture
def start_sasl_broker(tmp_path: Path) -> Iterator[Callable[..., BrokerProcess]]:
    """A SASL broker of the test's own: ``start(*extra_flags, jwks_url=None)``."""
    started: list[BrokerProcess] = []

    def start(*extra: str, jwks_url: str | None = None,
              data_dir: Path | None = None) -> BrokerProcess:
        url = jwks_url or f"file://{write_jwks(tmp_path / 'jwks.json')}"
        directory = data_dir or tmp_path / f"broker-{len(started)}"
        process = BrokerProcess(directory, (*broker_flags(url), *extra),
                                client_listener=SASL_LISTENER).start()
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.kill()
