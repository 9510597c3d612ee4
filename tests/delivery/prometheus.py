"""A real Prometheus for the live delivery checks: start it on a free port, query it, stop it.

Shared by the dashboard check (one broker) and the replication alert check (a cluster); both
poll with deadlines (:func:`wait_until`) instead of sleeping for a fixed time.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.delivery.support import CHART_DIR
from tests.support.waiting import eventually

T = TypeVar("T")
ALERT_RULES = CHART_DIR / "files" / "alerts.yaml"


def wait_until(what: str, probe: Callable[[], T | None], timeout: float = 60) -> T:
    """:func:`tests.support.waiting.eventually` in this module's argument order."""
    value: T = eventually(probe, timeout=timeout, interval=0.2, message=what)
    return value


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus package is installed by tests/tools/install.sh"
    return binary


def alert_rules() -> dict[str, dict[str, Any]]:
    """The chart's alert rules by alert name."""
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


@dataclass
class Prometheus:
    url: str

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        request = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:  # 400 for a bad query: report its message
            body = json.load(error)
        return body

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = self.api("query", query=expr)
        assert body["status"] == "success", f"{expr}: {body.get('error')}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def rule_states(self) -> dict[str, str] | None:
        """Alert name -> inactive/pending/firing, once every rule has been evaluated."""
        groups = self.api("rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if not rules or any(rule["lastEvaluation"].startswith("0001") for rule in rules):
            return None
        return {rule["name"]: rule["state"] for rule in rules}


def write_config(directory: Path, scrape_configs: list[dict[str, Any]]) -> Path:
    """A config scraping every second, evaluating the chart's alert rules every second."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERT_RULES)],
        "scrape_configs": scrape_configs,
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_prometheus(binary: str, config: Path,
                     storage: Path) -> tuple[subprocess.Popen[bytes], Prometheus]:
    """Start Prometheus on a free port; try another if someone took it in the meantime."""
    for _attempt in range(3):
        port = free_port()
        server = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={storage}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = Prometheus(f"http://127.0.0.1:{port}")

        def ready_or_exited(server: subprocess.Popen[bytes] = server,
                            client: Prometheus = client) -> str | None:
            if server.poll() is not None:
                return "exited"
            try:
                with urllib.request.urlopen(f"{client.url}/-/ready", timeout=5) as response:
                    return "ready" if response.status == 200 else None
            except OSError:  # not listening yet, or 503 while it opens its storage
                return None

        try:
            state = wait_until("Prometheus to be ready", ready_or_exited, timeout=60)
        except AssertionError:
            stop(server)
            raise
        if state == "ready":
            return server, client
    raise AssertionError("Prometheus did not start (see its --log.level=warn output)")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
