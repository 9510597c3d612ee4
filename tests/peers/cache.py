"""Where the peers' installers (tests/tools/install.d) put what they fetch and build, and the
digest of a peer's sources that names its build there, computed as the installers compute it.

A build directory named by the digest goes stale by itself when the sources change: the
next installer run builds a fresh one, and a test looking for the old name finds none.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path


def peer_cache() -> Path:
    """``$HEADRACE_PEER_CACHE``, or ``~/.cache/headrace-peers``: outside the tree."""
    configured = os.environ.get("HEADRACE_PEER_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "headrace-peers"


def sources_digest(root: Path, is_source: Callable[[Path], bool]) -> str:
    """The installers' digest of the files under ``root`` that ``is_source`` keeps (a path
    relative to ``root``): sha256 of ``sha256sum``'s listing of them sorted by path
    (``./pom.xml``, ``./src/...``), its first 16 hex digits."""
    sources = sorted(
        "./" + path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and is_source(path.relative_to(root))
    )
    listing = "".join(
        f"{hashlib.sha256((root / name).read_bytes()).hexdigest()}  {name}\n" for name in sources
    )
    return hashlib.sha256(listing.encode()).hexdigest()[:16]
