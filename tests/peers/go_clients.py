"""The Go Kafka clients franz-go and IBM/sarama as peers: two scenario programs of tests/peers/go.

``tests/tools/install.d/go-clients.sh`` builds them into
``${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}/go-clients-<hash>/`` (``<hash>``: a digest of
the module's go.mod, go.sum and .go files, :func:`sources_hash`). This module finds them and runs
them; nothing here builds or downloads anything.

- :func:`go_clients_missing_reason` says why the programs cannot run here, ``None`` when they can;
- :func:`go_client_binary` is one client's program (``"franz-go"`` or ``"sarama"``) or ``None``;
- :func:`run_scenario` runs one scenario (``produce``, ``group``, ``admin``) against a bootstrap
  address and returns the JSON line it printed; a scenario that failed raises
  :class:`GoClientFailed` with the step and the client's error.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.peers.cache import peer_cache, sources_digest

PEERS = Path(__file__).resolve().parent
MODULE = PEERS / "go"
INSTALLER = PEERS.parent / "tools" / "install.d" / "go-clients.sh"

CLIENTS = ("franz-go", "sarama")
SCENARIOS = ("produce", "group", "admin")
_PROGRAMS = {"franz-go": "franz", "sarama": "sarama"}


class GoClientFailed(RuntimeError):
    """A scenario program exited non-zero; ``step`` and ``error`` are what it reported."""

    def __init__(self, client: str, scenario: str, step: str, error: str, stderr: str) -> None:
        super().__init__(f"{client} {scenario}: {step}: {error}")
        self.client = client
        self.scenario = scenario
        self.step = step
        self.error = error
        self.stderr = stderr


def sources_hash() -> str:
    """The installer's digest of the module's go.mod, go.sum and .go files."""
    return sources_digest(
        MODULE, lambda path: path.suffix == ".go" or path.name in ("go.mod", "go.sum"))


def go_clients_home() -> Path:
    return peer_cache() / f"go-clients-{sources_hash()}"


def go_clients_missing_reason() -> str | None:
    """Why the programs cannot run here, or ``None`` when they can."""
    digest = sources_hash()
    unavailable = peer_cache() / f"go-clients-{digest}.unavailable"
    home = go_clients_home()
    if not (home / ".installed").exists():
        if unavailable.exists():
            return f"Go clients peer: {unavailable.read_text().strip()}"
        return f"Go clients peer (franz-go, sarama) not built (run bash {INSTALLER})"
    for program in _PROGRAMS.values():
        if not os.access(home / program, os.X_OK):
            return f"Go clients peer: {home / program} is missing (run bash {INSTALLER})"
    return None


def go_client_binary(client: str) -> Path | None:
    """The scenario program of ``client`` (one of :data:`CLIENTS`), ``None`` when missing."""
    if go_clients_missing_reason() is not None:
        return None
    return go_clients_home() / _PROGRAMS[client]


def run_scenario(
    client: str,
    bootstrap: str,
    scenario: str,
    *,
    topic: str,
    group: str = "",
    records: int = 100,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Run one scenario to completion and return its JSON result.

    The program gets ``timeout`` as its own deadline and is killed 30 s after it
    (``subprocess.TimeoutExpired``). Raises :class:`GoClientFailed` when it reports a failure.
    """
    binary = go_client_binary(client)
    if binary is None:
        raise RuntimeError(go_clients_missing_reason() or "Go clients peer unavailable")
    command = [
        str(binary), "-bootstrap", bootstrap, "-scenario", scenario, "-topic", topic,
        "-group", group, "-records", str(records), "-timeout", f"{timeout}s",
    ]
    done = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=timeout + 30, check=False,
    )
    lines = done.stdout.strip().splitlines()
    try:
        parsed = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise GoClientFailed(
            client, scenario, "output", f"exit {done.returncode}, no JSON line: {done.stdout!r}",
            done.stderr,
        )
    if done.returncode != 0 or "error" in parsed:
        raise GoClientFailed(
            client, scenario, str(parsed.get("step", "?")), str(parsed.get("error", "?")),
            done.stderr,
        )
    return parsed
