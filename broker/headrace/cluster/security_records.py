"""A cluster member's security metadata (ACLs, SCRAM credentials, quotas) in etcd.

The etcd implementation of :class:`~headrace.security.records.SecurityRecords`: one key per
record under ``<root>-security/<kind>/<key>`` — beside the cluster metadata's prefix, not in
it, so the metadata cache and its listeners never see security changes. Every broker keeps all
records in memory (a check never waits for etcd) from one full read and a prefix watch; a
lost watch is followed by a full read, as the metadata store does. A write is one etcd
transaction (per :data:`~headrace.cluster.store.MAX_TXN_OPS` records), applied to memory and
announced to subscribers once etcd has it; other brokers' writes arrive through the watch and
are announced the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from headrace.cluster.store import MAX_TXN_OPS, EtcdMetadataStore
from headrace.security.records import ChangeListener

log = logging.getLogger(__name__)


class EtcdSecurityRecords:
    """Security records of every kind, shared by the brokers of one etcd cluster."""

    def __init__(self, store: EtcdMetadataStore) -> None:
        self._store = store
        self.prefix = store.keys.root.rstrip("/") + "-security/"
        self._records: dict[str, dict[str, bytes]] = {}
        self._revisions: dict[tuple[str, str], int] = {}
        self._listeners: list[ChangeListener] = []
        self._revision = 0
        self._task: asyncio.Task[None] | None = None
        #: Set once the first full read is in memory.
        self.synced = asyncio.Event()

    # -- SecurityRecords

    def snapshot(self, kind: str) -> Mapping[str, bytes]:
        return dict(self._records.get(kind, {}))

    async def write(self, kind: str, changes: Mapping[str, bytes | None]) -> None:
        client = self._store.client
        tx = client.transactions
        items = list(changes.items())
        # etcd bounds a transaction's operations: a larger change is several transactions.
        for start in range(0, len(items), MAX_TXN_OPS):
            chunk = items[start:start + MAX_TXN_OPS]
            ops = [tx.delete(self._key(kind, key)) if value is None
                   else tx.put(self._key(kind, key), value) for key, value in chunk]
            _, responses = await self._store.bounded(
                client.transaction(compare=[], success=ops, failure=[]))
            revision = _revision_of(responses)
            for key, value in chunk:
                self._set(kind, key, value, revision)
        self._notify({kind})

    def subscribe(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    # -- following etcd

    async def start(self) -> None:
        await self._resync()
        self._task = asyncio.create_task(self._follow(), name="security-records-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def _key(self, kind: str, key: str) -> bytes:
        return f"{self.prefix}{kind}/{quote(key, safe='')}".encode()

    def _parse(self, raw: bytes) -> tuple[str, str] | None:
        kind, sep, key = raw.decode()[len(self.prefix):].partition("/")
        return (kind, unquote(key)) if sep else None

    def _set(self, kind: str, key: str, value: bytes | None, revision: int) -> None:
        if revision and revision < self._revisions.get((kind, key), 0):
            return  # an older event than what a full read or our own write already showed
        self._revisions[(kind, key)] = revision
        records = self._records.setdefault(kind, {})
        if value is None:
            records.pop(key, None)
        else:
            records[key] = value

    async def _resync(self) -> None:
        client = self._store.client
        result = await self._store.bounded(client.get_prefix(self.prefix.encode()))
        fresh: dict[str, dict[str, bytes]] = {}
        for kv in result:
            parsed = self._parse(kv.key)
            if parsed is not None:
                fresh.setdefault(parsed[0], {})[parsed[1]] = kv.value
        changed = {kind for kind in {*fresh, *self._records}
                   if fresh.get(kind, {}) != self._records.get(kind, {})}
        self._records = fresh
        self._revisions = {}
        self._revision = int(result.header.revision)
        self.synced.set()
        self._notify(changed)

    async def _follow(self) -> None:
        backoff = 0.1
        while True:
            try:
                watch = await self._store.bounded(self._store.client.watch_prefix(
                    self.prefix.encode(), start_revision=self._revision + 1))
                backoff = 0.1
                async for event in watch:
                    kv = event.kv
                    parsed = self._parse(kv.key)
                    if parsed is None:
                        continue
                    value = None if event.kind == "DELETE" else kv.value
                    self._revision = max(self._revision, int(kv.mod_revision))
                    self._set(parsed[0], parsed[1], value, int(kv.mod_revision))
                    self._notify({parsed[0]})
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.info("security records watch interrupted (%s); re-reading", error)
            while True:
                await asyncio.sleep(backoff)  # a backoff between attempts, not a wait for state
                backoff = min(backoff * 2, 2.0)
                try:
                    await self._resync()
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    log.debug("security records re-read failed: %s", error)

    def _notify(self, kinds: set[str]) -> None:
        for kind in sorted(kinds):
            for listener in list(self._listeners):
                try:
                    listener(kind)
                except Exception:
                    log.exception("security records listener failed")


def _revision_of(responses: Any) -> int:
    """The etcd revision a transaction's first operation was applied at."""
    for response in responses or ():
        which = response.WhichOneof("response")
        if which:
            return int(getattr(response, which).header.revision)
    return 0


__all__ = ["EtcdSecurityRecords"]
