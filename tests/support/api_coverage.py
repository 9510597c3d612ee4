"""Measured API coverage: which (api key, version) the brokers of a test session served, to whom.

Opt in with ``HEADRACE_API_COVERAGE=<file>``: then every broker of the session, in the pytest
process (:func:`~tests.support.brokers.in_process_broker`) or a child (``headrace broker`` of
:class:`~tests.support.brokers.BrokerProcess`, the brokers of ``headrace dev`` clusters), wraps
:meth:`RequestPipeline.process` and appends to the file, once per distinct line and process:

- ``served <key> <version> <client_id>``: a request the pipeline answered;
- ``refused <key> <version> <client_id>``: one it hung up on (no schema, malformed, unknown);
- ``advertised <key> <min> <max>``: the pipeline's ApiVersions ranges, when first asked.

The children get the recorder through ``tests/support/api_coverage_site/sitecustomize.py``, put
first on ``PYTHONPATH`` by :func:`enable_if_requested` (called by tests/conftest.py), which
installs it in a ``python -m headrace`` process only. Lines are short single ``write`` calls to
an ``O_APPEND`` file, so processes append side by side and a SIGKILLed broker loses nothing.
tests/compat/test_api_coverage.py reads the file back (:func:`read`) at the end of the session.
"""

from __future__ import annotations

import functools
import os
import struct
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_VAR = "HEADRACE_API_COVERAGE"
SITE_DIR = Path(__file__).resolve().parent / "api_coverage_site"
ROOT = Path(__file__).resolve().parents[2]
_HEADER = struct.Struct(">hhih")  # api key, version, correlation id, client_id length


def requested() -> Path | None:
    configured = os.environ.get(ENV_VAR)
    return Path(configured) if configured else None


def enable_if_requested() -> None:
    """In the pytest process: record its in-process brokers and make children record theirs."""
    path = requested()
    if path is None:
        return
    os.environ[ENV_VAR] = str(path.resolve())
    paths = [str(SITE_DIR), str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(
        os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    install(path.resolve())


def _client_id(frame: bytes | memoryview) -> str:
    try:
        length = _HEADER.unpack_from(frame, 0)[3]
        if length < 0:
            return "-"
        text = bytes(frame[_HEADER.size:_HEADER.size + min(length, 200)]).decode("utf-8")
    except (struct.error, UnicodeDecodeError):
        return "?"
    return "".join(ch if ch.isprintable() and not ch.isspace() else "_" for ch in text) or "-"


class _Log:
    """Appends each distinct line once per process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: set[str] = set()

    def add(self, line: str) -> None:
        if line in self.seen:
            return
        self.seen.add(line)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, (line + "\n").encode())
        finally:
            os.close(descriptor)


def install(path: Path) -> None:
    """Wrap :meth:`RequestPipeline.process` (once) to log what it serves to ``path``."""
    from headrace.protocol.codec import API_VERSIONS_KEY
    from headrace.server.pipeline import RequestPipeline

    process = RequestPipeline.process
    if getattr(process, "api_coverage", None) is not None:
        return
    log = _Log(path)

    @functools.wraps(process)
    async def recording(self: RequestPipeline, frame: bytes | memoryview, session: Any) -> Any:
        key, version = struct.unpack_from(">hh", frame, 0)
        client = _client_id(frame)
        if key == API_VERSIONS_KEY:
            for api_key, low, high in self.registry.supported():
                log.add(f"advertised {api_key} {low} {high}")
        try:
            outgoing = await process(self, frame, session)
        except Exception:
            log.add(f"refused {key} {version} {client}")
            raise
        log.add(f"served {key} {version} {client}")
        return outgoing

    recording.api_coverage = log  # type: ignore[attr-defined]
    setattr(RequestPipeline, "process", recording)  # noqa: B010 - the recorder's one patch


@dataclass
class Coverage:
    """What a session's brokers advertised and served."""

    #: api key -> (min, max), widest over every broker that answered ApiVersions
    advertised: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: (api key, version) -> client ids that it was served to
    served: dict[tuple[int, int], set[str]] = field(default_factory=lambda: defaultdict(set))
    refused: dict[tuple[int, int], set[str]] = field(default_factory=lambda: defaultdict(set))

    def clients_of(self, api_key: int) -> set[str]:
        return {client for (key, _), clients in self.served.items() if key == api_key
                for client in clients}


def read(path: Path, *, excluded_clients: Callable[[str], bool] = lambda client: False) -> Coverage:
    """The coverage of a session's file; ``excluded_clients`` drops the project's own clients."""
    coverage = Coverage()
    for line in path.read_text().splitlines():
        kind, key, first, second = [*line.split(" ", 3), "", "", ""][:4]
        if kind == "advertised":
            low, high = int(first), int(second)
            old = coverage.advertised.get(int(key), (low, high))
            coverage.advertised[int(key)] = (min(old[0], low), max(old[1], high))
        elif kind in ("served", "refused") and not excluded_clients(second):
            target = coverage.served if kind == "served" else coverage.refused
            target[(int(key), int(first))].add(second)
    return coverage

