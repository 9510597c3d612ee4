"""Run ``headrace`` client commands as real subprocesses against a real broker subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.clients.conftest import ROOT, BrokerProcess

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def cli_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path_factory.mktemp("cli") / "data").start()
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture
def cli(cli_broker: BrokerProcess) -> CliRunner:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "broker"), env.get("PYTHONPATH", "")])

    def run(*args: str, stdin: str | None = None, bootstrap: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "headrace", *args]
        if args and args[0] != "--help":
            command += ["--bootstrap-server", bootstrap or cli_broker.bootstrap]
        return subprocess.run(command, input=stdin, capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=Path(ROOT))

    return run
