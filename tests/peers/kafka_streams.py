"""The Kafka Streams word count (tests/peers/streams) as a peer: find it, run it.

``tests/tools/install.d/kafka-streams.sh`` builds it with its pinned dependencies into
``${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}/kafka-streams-<version>/lib``; nothing here
downloads or builds anything.

- :func:`streams_missing_reason` says why it cannot run here (no java, not built, stale build),
  ``None`` when it can;
- :func:`word_count_command` is the command line of the application (``BOOTSTRAP STATE_DIR``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from tests.peers.cache import peer_cache
from tests.peers.kafka import _java_major, java_executable

PROJECT = Path(__file__).resolve().parent / "streams"
POM = PROJECT / "pom.xml"
LOCK = PROJECT / "kafka-streams.sha256"
LOG4J = PROJECT / "log4j2.properties"
INSTALLER = PROJECT.parent.parent / "tools" / "install.d" / "kafka-streams.sh"
MAIN_CLASS = "dev.headrace.peers.streams.WordCount"

# One small JVM next to the broker on a 2-core machine.
JVM_OPTIONS = ("-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               "-Djava.awt.headless=true")


def streams_version() -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    return match.group(1).strip() if match else "unknown"


def streams_home() -> Path:
    return peer_cache() / f"kafka-streams-{streams_version()}"


def _install_stamp() -> str:
    """What the installer writes to ``.installed``: sha256 of the pom, the lockfile and the
    sources (sorted by path) one after the other."""
    sources = sorted(str(p.relative_to(PROJECT)) for p in (PROJECT / "src").rglob("*")
                     if p.is_file())
    parts = [POM.read_bytes(), LOCK.read_bytes(), *((PROJECT / s).read_bytes() for s in sources)]
    return hashlib.sha256(b"".join(parts)).hexdigest()


def streams_missing_reason() -> str | None:
    """Why the Kafka Streams application cannot run here, or ``None`` when it can."""
    java = java_executable()
    if java is None:
        return "Kafka Streams peer: no java on PATH (needs Java 17+)"
    major = _java_major(java)
    if major is None or major < 17:
        return f"Kafka Streams peer: {java} is Java {major or 'unknown'}, Kafka 4.x needs 17+"
    version = streams_version()
    marker = streams_home() / ".installed"
    if marker.exists() and marker.read_text().strip() == _install_stamp():
        return None
    unavailable = peer_cache() / f"kafka-streams-{version}.unavailable"
    if unavailable.exists():
        return f"Kafka Streams {version} peer: {unavailable.read_text().strip()}"
    if not marker.exists():
        return f"Kafka Streams {version} peer not built (run bash {INSTALLER})"
    return f"Kafka Streams {version} peer is stale: its sources changed (run bash {INSTALLER})"


def word_count_command(bootstrap: str, state_dir: Path) -> list[str]:
    java = java_executable()
    assert java is not None and streams_missing_reason() is None, streams_missing_reason()
    return [java, *JVM_OPTIONS, f"-Dlog4j2.configurationFile={LOG4J}",
            "-cp", str(streams_home() / "lib" / "*"), MAIN_CLASS, bootstrap, str(state_dir)]
