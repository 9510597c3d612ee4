"""KafkaJS (Node.js) transactions: what the issue found failing at once (InitProducerId with a
transactional id) now commits and aborts, and its read_committed consumer sees only commits.
The peer is installed by tests/tools/install.d/kafkajs.sh; without it the test skips."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.brokers import BrokerProcess
from tests.support.clients import create_topic
from tests.transactions.txn_clients import read_values

PEER = Path(__file__).resolve().parents[1] / "peers" / "kafkajs"


def _modules() -> Path | None:
    lock = hashlib.sha256((PEER / "package-lock.json").read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("HEADRACE_PEER_CACHE", Path.home() / ".cache/headrace-peers"))
    home = cache / f"kafkajs-{lock}"
    return home / "node_modules" if (home / ".installed").exists() else None


MODULES = _modules()
pytestmark = pytest.mark.skipif(
    MODULES is None or shutil.which("node") is None,
    reason="KafkaJS peer not installed (bash tests/tools/install.d/kafkajs.sh)",
)


def test_kafkajs_transactions(txn_broker: BrokerProcess) -> None:
    create_topic(txn_broker.bootstrap, "js", 1)
    done = subprocess.run(
        ["node", str(PEER / "transactions.js"), txn_broker.bootstrap, "js"],
        env={**os.environ, "NODE_PATH": str(MODULES)}, capture_output=True, text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    committed = [f"js-commit-{i}" for i in range(3)] + ["js-last"]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == committed
    everything = read_values(txn_broker.bootstrap, "js", 1, "read_uncommitted", 7)
    assert sorted(everything) == sorted(
        [v.encode() for v in committed] + [b"js-abort-%d" % i for i in range(3)])
