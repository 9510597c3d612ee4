"""The Java client (kafka-clients' producer, consumer and admin) as a peer: the scenario program of
tests/peers/java.

``tests/tools/install.d/java-client.sh`` compiles it with Maven into
``${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}/java-client-<hash>/`` (``<hash>``: a digest
of the project's pom.xml and .java files, :func:`sources_hash`), offline once the peers' Maven
repository holds its dependencies.

- :func:`java_client_missing_reason` says why the program cannot run here, ``None`` when it can;
  :func:`ensure_java_client` runs the installer first when the build is missing (a few seconds
  with a warm Maven repository), so the Python test command alone installs it or skips with why;
- :func:`run_scenario` runs one scenario (one of :data:`SCENARIOS`) and returns the JSON line
  it printed; a failed scenario raises :class:`JavaScenarioFailed` with the step and the
  client's error.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.peers.cache import peer_cache, sources_digest
from tests.peers.kafka import TOOLS_LOG4J, java_executable

PEERS = Path(__file__).resolve().parent
PROJECT = PEERS / "java"
INSTALLER = PEERS.parent / "tools" / "install.d" / "java-client.sh"
MAIN_CLASS = "dev.headrace.peers.Main"
SCENARIOS = ("idempotent", "transactional", "transaction-admin", "group-classic",
             "group-consumer", "migration", "admin")
JVM_OPTIONS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               "-Djava.awt.headless=true")


class JavaScenarioFailed(RuntimeError):
    """A scenario exited non-zero; ``step`` and ``error`` are what it reported."""

    def __init__(self, scenario: str, step: str, error: str, stderr: str) -> None:
        super().__init__(f"java {scenario}: {step}: {error}\n{stderr[-3000:]}")
        self.scenario = scenario
        self.step = step
        self.error = error
        self.stderr = stderr


def sources_hash() -> str:
    """The installer's digest of pom.xml and the .java files (not Maven's ``target/``)."""
    return sources_digest(PROJECT, lambda path: (path.suffix == ".java" or path.name == "pom.xml")
                          and "target" not in path.parts)


def java_client_home() -> Path:
    return peer_cache() / f"java-client-{sources_hash()}"


def java_client_missing_reason() -> str | None:
    """Why the scenario program cannot run here, or ``None`` when it can."""
    if java_executable() is None:
        return "Java client peer: no java on PATH (needs Java 17+)"
    home = java_client_home()
    if (home / ".installed").exists():
        return None
    unavailable = peer_cache() / f"java-client-{sources_hash()}.unavailable"
    if unavailable.exists():
        return f"Java client peer: {unavailable.read_text().strip()}"
    return f"Java client peer not built (run bash {INSTALLER})"


@functools.cache
def ensure_java_client() -> str | None:
    """Build the program when it is missing (once per session); why it cannot run, or ``None``."""
    if java_client_missing_reason() is not None and java_executable() is not None:
        subprocess.run(
            ["bash", str(INSTALLER)], stdin=subprocess.DEVNULL, capture_output=True,
            timeout=600, check=False,
        )
    return java_client_missing_reason()


def run_scenario(
    scenario: str,
    bootstrap: str,
    *,
    topic: str,
    group: str = "",
    records: int = 20,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Run one scenario to completion and return its JSON result (killed after ``timeout``)."""
    java = java_executable()
    home = java_client_home()
    if java is None or java_client_missing_reason() is not None:
        raise RuntimeError(java_client_missing_reason() or "Java client peer unavailable")
    classpath = f"{home / 'classes'}:{(home / 'classpath.txt').read_text().strip()}"
    command = [
        java, *JVM_OPTIONS, f"-Dlog4j2.configurationFile={TOOLS_LOG4J}", "-cp", classpath,
        MAIN_CLASS, scenario, bootstrap, topic, group or "-", str(records),
    ]
    done = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
        check=False, env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    lines = done.stdout.strip().splitlines()
    try:
        parsed = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise JavaScenarioFailed(
            scenario, "output", f"exit {done.returncode}, no JSON line: {done.stdout!r}",
            done.stderr,
        )
    if done.returncode != 0 or "error" in parsed:
        raise JavaScenarioFailed(
            scenario, str(parsed.get("step", "?")),
            f"{parsed.get('error', '?')} (cause: {parsed.get('cause')})", done.stderr,
        )
    return parsed
