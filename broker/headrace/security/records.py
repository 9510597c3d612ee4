"""One narrow store for security metadata: ACL bindings, SCRAM credentials, client-quota configs.

Kafka keeps these as records in its metadata log, so every broker sees every change; Headrace
keeps them behind :class:`SecurityRecords`, a map of string keys to opaque bytes per *kind*
(``"acl"``, ``"scram"``, ``"quota"``…), which each feature encodes as it likes. A lone broker
keeps them in one file of its data directory (:class:`FileSecurityRecords`); a cluster member
keeps them in etcd (:mod:`headrace.cluster`), where a watch delivers other brokers' changes.
Reads come from memory (an authorization check never waits for I/O); a write returns once the
change is durable, and subscribers are called after every change, local or remote.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from headrace.storage.files import write_atomic

#: Called with the kind that changed.
ChangeListener = Callable[[str], None]


class SecurityRecords(Protocol):
    """Security metadata by kind and key; values are opaque bytes."""

    def snapshot(self, kind: str) -> Mapping[str, bytes]:
        """Every record of ``kind``, as last seen (a copy: callers may keep it)."""

    async def write(self, kind: str, changes: Mapping[str, bytes | None]) -> None:
        """Apply ``changes`` (None deletes a key) atomically; durable when this returns."""

    def subscribe(self, listener: ChangeListener) -> None:
        """Call ``listener(kind)`` after each change of any kind, from any broker."""


class MemorySecurityRecords:
    """Security metadata that lives as long as the process (tests, and brokers without a disk)."""

    def __init__(self) -> None:
        self._records: dict[str, dict[str, bytes]] = {}
        self._listeners: list[ChangeListener] = []

    def snapshot(self, kind: str) -> Mapping[str, bytes]:
        return dict(self._records.get(kind, {}))

    async def write(self, kind: str, changes: Mapping[str, bytes | None]) -> None:
        self._apply(kind, changes)
        self._notify(kind)

    def subscribe(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def _apply(self, kind: str, changes: Mapping[str, bytes | None]) -> None:
        records = self._records.setdefault(kind, {})
        for key, value in changes.items():
            if value is None:
                records.pop(key, None)
            else:
                records[key] = value

    def _notify(self, kind: str) -> None:
        for listener in self._listeners:
            listener(kind)


class FileSecurityRecords(MemorySecurityRecords):
    """A lone broker's security metadata: ``security.json`` in its data directory.

    The whole file is rewritten atomically per change (from a worker thread): security changes
    are rare and small next to topic changes, and one file stays easy to inspect and back up.
    """

    FILE_NAME = "security.json"

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        self._path = Path(data_dir) / self.FILE_NAME
        self._lock = threading.Lock()
        if self._path.exists():
            stored = json.loads(self._path.read_text(encoding="utf-8"))
            self._records = {
                kind: {key: base64.b64decode(value) for key, value in records.items()}
                for kind, records in stored.items()
            }

    async def write(self, kind: str, changes: Mapping[str, bytes | None]) -> None:
        self._apply(kind, changes)
        await asyncio.to_thread(self._store)
        self._notify(kind)

    def _store(self) -> None:
        # Encoded under the lock: of two concurrent writes, the file ends with both changes
        # (encoded before it, the later thread could write the earlier snapshot last).
        with self._lock:
            encoded = json.dumps(
                {
                    kind: {key: base64.b64encode(value).decode("ascii")
                           for key, value in sorted(records.items())}
                    for kind, records in sorted(self._records.items())
                },
                indent=1,
            ).encode("utf-8")
            write_atomic(self._path, encoded)


__all__ = ["ChangeListener", "FileSecurityRecords", "MemorySecurityRecords", "SecurityRecords"]
