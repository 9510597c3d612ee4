"""etcd-backed cluster metadata: broker sessions, controller election, compare-and-swap writes.

This is the only module that talks to etcd (through the asyncio v3 client ``aetcd``). It keeps a
:class:`~headrace.cluster.cache.MetadataCache` current with one prefix watch (re-reading
everything after any watch failure, so an etcd restart only delays updates), holds the broker's
lease (liveness = lease), and offers the fenced writes the controller and partition leaders need.
Every write is a transaction with explicit compares, so concurrent writers never overwrite each
other's decisions silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions

from headrace.cluster.cache import KeyEvent, MetadataCache
from headrace.cluster.create_batches import CreationBatcher
from headrace.cluster.model import (
    BrokerRegistration,
    ClusterSnapshot,
    ControllerRecord,
    KeySpace,
    PartitionState,
    SeenBroker,
    TopicRecord,
)

log = logging.getLogger(__name__)

#: etcd refuses transactions with more operations than ``--max-txn-ops`` (default 128).
MAX_TXN_OPS = 100
#: A topic to create and its partitions' first states.
_Creation = tuple[TopicRecord, list[PartitionState]]

Listener = Callable[[ClusterSnapshot], None]

_T = TypeVar("_T")

#: gRPC reconnects with exponential backoff (up to 120 s by default): after an etcd restart the
#: channel could sit in backoff long after etcd is back. Cap it, and probe idle connections so a
#: silently dead one is noticed.
_CHANNEL_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.keepalive_time_ms": 5000,
    "grpc.keepalive_timeout_ms": 3000,
    "grpc.keepalive_permit_without_calls": 1,
}


class BrokerIdConflictError(RuntimeError):
    """Another live broker (a different data directory) holds this broker id."""


class EtcdUnavailableError(aetcd.exceptions.ConnectionTimeoutError):  # type: ignore[misc]
    """etcd did not answer within the store's request deadline (a ``ClientError``, so callers
    that handle etcd failures handle this too)."""


class SessionLostError(RuntimeError):
    """The broker's lease expired: it must re-register before acting on the cluster."""


class EtcdMetadataStore:
    """One broker's (or tool's) connection to the cluster metadata in etcd."""

    def __init__(
        self,
        endpoints: Sequence[tuple[str, int]],
        *,
        keys: KeySpace | None = None,
        lease_ttl: int = 6,
        request_timeout: float = 5.0,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = list(endpoints)
        self.keys = keys or KeySpace()
        self.lease_ttl = lease_ttl
        self.request_timeout = request_timeout
        self.cache = MetadataCache(self.keys)
        self._client: aetcd.Client | None = None
        self._endpoint_index = 0
        self._watch_task: asyncio.Task[None] | None = None
        self._current_watch: Any = None
        self._watchdog_task: asyncio.Task[None] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._keepalive_stop = asyncio.Event()
        self._listeners: list[Listener] = []
        self._changed = asyncio.Event()
        self._synced = asyncio.Event()
        self.lease_id: int | None = None
        self.registration: BrokerRegistration | None = None
        self.last_lease_refresh = 0.0
        self._on_session_lost: list[Callable[[], Awaitable[None]]] = []
        self._closed = False
        self._creations: CreationBatcher[_Creation] = CreationBatcher(
            self._create_topics_together, self._create_topic_alone,
            lambda creation: 1 + len(creation[1]), MAX_TXN_OPS,
        )

    # -- connection ---------------------------------------------------------------------------

    @property
    def client(self) -> aetcd.Client:
        if self._client is None:
            host, port = self.endpoints[self._endpoint_index]
            self._client = aetcd.Client(
                host=host, port=port, timeout=self.request_timeout, options=_CHANNEL_OPTIONS
            )
        return self._client

    async def _bounded(self, call: Awaitable[_T], deadline: float | None = None) -> _T:
        """Await one etcd call, but never longer than ``deadline`` s (``request_timeout``).

        aetcd passes the timeout to unary gRPC calls only; connecting, creating a watch and the
        waits around them have none, and a broker must never hang on its metadata store. A call
        that overruns is cancelled and abandoned rather than awaited (aetcd swallows some
        cancellations, so waiting for it to finish could itself hang).

        Every way of not getting an answer in time is an :class:`EtcdUnavailableError`: our
        deadline, gRPC's own (aetcd gives unary calls ``request_timeout`` too, so which of the
        two fires first is a race), and a call cancelled under us because another task closed
        the connection to reconnect (gRPC then raises ``CancelledError``, which must not reach
        a caller that was never cancelled: the keep-alive and watch loops would end on it).
        """
        limit = self.request_timeout if deadline is None else deadline
        task = asyncio.ensure_future(call)
        try:
            done, _ = await asyncio.wait({task}, timeout=limit)
        except asyncio.CancelledError:
            _abandon(task)
            raise
        if not done:
            _abandon(task)
            raise EtcdUnavailableError(f"etcd did not answer within {limit} s")
        if task.cancelled():
            raise EtcdUnavailableError("the etcd connection was closed during the call")
        try:
            return task.result()
        except EtcdUnavailableError:
            raise
        except aetcd.exceptions.ConnectionTimeoutError as error:
            raise EtcdUnavailableError(f"etcd did not answer in gRPC's time: {error}") from error

    async def bounded(self, call: Awaitable[_T]) -> _T:
        """Another etcd user's call over this store's connection, bounded as the store's own
        (:mod:`headrace.cluster.security_records`)."""
        return await self._bounded(call)

    async def _rotate_endpoint(self) -> None:
        """After a failure, try the next endpoint (a no-op with one endpoint but a reconnect).

        The watch stream of the old connection is ended too: over a silently cut link it would
        otherwise wait forever, and the watch loop re-reads everything on a fresh connection.
        """
        client, self._client = self._client, None
        self._endpoint_index = (self._endpoint_index + 1) % len(self.endpoints)
        watch, self._current_watch = self._current_watch, None
        if watch is not None:
            with contextlib.suppress(Exception):
                await self._bounded(watch.cancel())
        if client is not None:
            with contextlib.suppress(Exception):
                await self._bounded(client.close())

    async def start(self, *, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Read everything once and keep following changes."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.resync()
                break
            except (aetcd.exceptions.ClientError, OSError) as error:
                if time.monotonic() > deadline:
                    raise ConnectionError(f"cannot reach etcd at {self.endpoints}") from error
                await self._rotate_endpoint()
                await asyncio.sleep(0.2)
        self._watch_task = asyncio.create_task(self._watch_loop(), name="etcd-watch")
        self._watchdog_task = asyncio.create_task(self._watchdog(), name="etcd-watchdog")

    async def close(self) -> None:
        self._closed = True
        if self._keepalive_task is not None:
            await self._stop_keepalive(self._keepalive_task)
        for task in (self._watch_task, self._keepalive_task, self._watchdog_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._watch_task = self._keepalive_task = self._watchdog_task = None
        client, self._client = self._client, None
        if client is not None:
            # Closing shuts the watch stream down through a bounded queue and the gRPC channel:
            # either can wait forever on a connection to an etcd that went away.
            with contextlib.suppress(Exception):
                await self._bounded(client.close())

    # -- following changes --------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """``listener(snapshot)`` runs (synchronously) after every change seen."""
        self._listeners.append(listener)

    def snapshot(self) -> ClusterSnapshot:
        return self.cache.snapshot()

    async def resync(self) -> None:
        result = await self._bounded(self.client.get_prefix(self.keys.prefix))
        events = [KeyEvent(kv.key, kv.value, kv.mod_revision, kv.create_revision) for kv in result]
        self.cache.reset(events, result.header.revision)
        self._synced.set()
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        snapshot = self.cache.snapshot()
        for listener in list(self._listeners):
            try:
                listener(snapshot)
            except Exception:
                log.exception("metadata listener failed")

    async def _watch_loop(self) -> None:
        backoff = 0.1
        while not self._closed:
            try:
                watch = await self._bounded(self.client.watch_prefix(
                    self.keys.prefix, start_revision=self.cache.revision + 1
                ))
                self._current_watch = watch
                backoff = 0.1
                async for event in watch:
                    kv = event.kv
                    value = None if event.kind == "DELETE" else kv.value
                    if self.cache.apply(
                        [KeyEvent(kv.key, value, kv.mod_revision, kv.create_revision)]
                    ):
                        self._notify()
            except asyncio.CancelledError:
                raise
            except (aetcd.exceptions.WatchTimeoutError, EtcdUnavailableError) as error:
                # aetcd's watcher shares one stream and request queue per connection; a watch
                # that could not even be created (or was abandoned) can leave it wedged.
                log.info("etcd watch could not be created (%r); reconnecting", error)
                await self._rotate_endpoint()
            except Exception as error:
                log.info("etcd watch interrupted (%s); re-reading metadata", error)
            # The stream ended or failed: catch up with a full read, then watch again.
            while not self._closed:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                try:
                    await self.resync()
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    log.debug("etcd resync failed: %s", error)
                    await self._rotate_endpoint()

    async def _watchdog(self, interval: float = 3.0) -> None:
        """Catch a watch that died silently (seen after etcd restarts): compare with a read.

        If the keys and revisions in etcd differ from the cache twice in a row, a second apart
        (so events still in flight are not mistaken for loss), adopt the read and restart the
        watch on a fresh connection.
        """
        while not self._closed:
            await asyncio.sleep(interval)
            try:
                if await self._cache_matches_etcd():
                    continue
                await asyncio.sleep(1.0)
                if await self._cache_matches_etcd():
                    continue
                log.warning("metadata watch fell behind etcd: re-reading and re-watching")
                await self._rotate_endpoint()
                await self.resync()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.debug("watchdog check failed: %s", error)

    async def _cache_matches_etcd(self) -> bool:
        result = await self._bounded(self.client.get_prefix(self.keys.prefix, keys_only=True))
        current = {kv.key: kv.mod_revision for kv in result}
        return current == self.cache.mod_revisions

    async def wait_until(
        self, predicate: Callable[[ClusterSnapshot], bool], timeout: float  # noqa: ASYNC109
    ) -> ClusterSnapshot:
        """Wait until the cached metadata satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.cache.snapshot()
            if predicate(snapshot):
                return snapshot
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("cluster metadata did not reach the expected state")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    # -- broker session -----------------------------------------------------------------------

    def on_session_lost(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._on_session_lost.append(callback)

    async def register(self, registration: BrokerRegistration) -> BrokerRegistration:
        """Create this broker's lease-bound registration; returns it with its broker epoch.

        The id must be free. If the key is held by this broker's previous incarnation (same data
        directory id) its lease is revoked at once; if it is held with another data directory we
        wait up to one lease period for it to expire (a wiped-disk restart) before refusing.
        """
        key = self.keys.broker(registration.broker_id)
        deadline = time.monotonic() + self.lease_ttl * 2 + 2
        tx = self.client.transactions
        while True:
            lease = await self._bounded(self.client.lease(self.lease_ttl))
            succeeded, _ = await self._bounded(self.client.transaction(
                compare=[tx.create(key) == 0],
                success=[tx.put(key, registration.to_json(), lease=lease.id)],
                failure=[],
            ))
            if succeeded:
                current = await self._bounded(self.client.get(key))
                if current is None:  # pragma: no cover - lease expired in between
                    continue
                self.lease_id = lease.id
                self.last_lease_refresh = time.monotonic()
                self.registration = BrokerRegistration.from_json(
                    current.value, broker_epoch=current.create_revision
                )
                if self._keepalive_task is None:
                    self._keepalive_stop.clear()
                    self._keepalive_task = asyncio.create_task(
                        self._keepalive_loop(), name="etcd-lease-keepalive"
                    )
                return self.registration
            await self._bounded(self.client.revoke_lease(lease.id))
            existing = await self._bounded(self.client.get(key))
            if existing is None:
                continue
            holder = BrokerRegistration.from_json(
                existing.value, broker_epoch=existing.create_revision
            )
            if holder.log_dir_id == registration.log_dir_id and existing.lease:
                log.info("revoking the lease of broker %d's previous incarnation", holder.broker_id)
                with contextlib.suppress(aetcd.exceptions.ClientError):
                    await self._bounded(self.client.revoke_lease(existing.lease))
                continue
            if time.monotonic() > deadline:
                raise BrokerIdConflictError(
                    f"broker id {registration.broker_id} is registered by a live broker at "
                    f"{holder.host}:{holder.port} with another data directory"
                )
            await asyncio.sleep(0.25)

    async def update_registration(self, registration: BrokerRegistration) -> None:
        """Rewrite this broker's registration (e.g. ``shutting_down``) under the same lease."""
        if self.lease_id is None:
            raise SessionLostError("not registered")
        key = self.keys.broker(registration.broker_id)
        tx = self.client.transactions
        succeeded, _ = await self._bounded(self.client.transaction(
            compare=[tx.create(key) == registration.broker_epoch],
            success=[tx.put(key, registration.to_json(), lease=self.lease_id)],
            failure=[],
        ))
        if not succeeded:
            raise SessionLostError("registration replaced or expired")
        self.registration = registration

    async def deregister(self) -> None:
        """Give up the lease: registration and any controllership vanish at once."""
        task, self._keepalive_task = self._keepalive_task, None
        if task is not None:
            await self._stop_keepalive(task)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.lease_id is not None:
            with contextlib.suppress(Exception):
                await self._bounded(self.client.revoke_lease(self.lease_id))
        self.lease_id = None

    async def _stop_keepalive(self, task: asyncio.Task[None]) -> None:
        """Let the loop finish between keep-alives: cancelling one mid-stream makes gRPC log."""
        self._keepalive_stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.request_timeout + 1)
        except (TimeoutError, asyncio.CancelledError, Exception):
            task.cancel()

    async def _keepalive_loop(self) -> None:
        # Keep-alives start every TTL/3 however long the previous one took, and one that hangs
        # is abandoned after TTL/2: a slow etcd or a busy machine must not add up to a missed
        # lease while a retry could still have made it.
        interval = max(self.lease_ttl / 3, 0.2)
        attempt_timeout = max(self.lease_ttl / 2, 0.5)
        started = time.monotonic()
        while not self._closed:
            delay = max(0.0, interval - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._keepalive_stop.wait(), delay)
            if self._keepalive_stop.is_set():
                return
            started = time.monotonic()
            lease_id = self.lease_id
            if lease_id is None:
                continue
            try:
                reply = await self._bounded(self.client.refresh_lease(lease_id), attempt_timeout)
            except asyncio.CancelledError:
                raise
            except EtcdUnavailableError:
                log.info("lease keep-alive timed out; retrying")
                if time.monotonic() - self.last_lease_refresh > self.lease_ttl:
                    await self._rotate_endpoint()  # a dead connection: start afresh
                continue
            except Exception as error:
                log.info("lease keep-alive failed: %s", error)
                await self._rotate_endpoint()
                continue
            if reply is not None and reply.TTL > 0:
                self.last_lease_refresh = time.monotonic()
                continue
            log.warning("broker lease %x expired: re-registering", lease_id)
            await self._session_expired()

    async def _session_expired(self) -> None:
        self.lease_id = None
        for callback in list(self._on_session_lost):
            try:
                await callback()
            except Exception:
                log.exception("session-lost callback failed")

    async def ensure_cluster_id(self, candidate: str) -> str:
        """The cluster's id: ``candidate`` if we are the first to set it, else the stored one."""
        tx = self.client.transactions
        key = self.keys.cluster_id
        await self._bounded(self.client.transaction(
            compare=[tx.create(key) == 0], success=[tx.put(key, candidate.encode())], failure=[]
        ))
        stored = await self._bounded(self.client.get(key))
        return stored.value.decode() if stored is not None else candidate

    async def reserve_producer_ids(self, count: int) -> range:
        """A block of producer ids no other broker will ever hand out (KIP-730's blocks)."""
        tx = self.client.transactions
        key = self.keys.producer_id_block
        while True:
            current = await self._bounded(self.client.get(key))
            start = int(current.value) if current is not None else 0
            revision = current.mod_revision if current is not None else 0
            succeeded, _ = await self._bounded(self.client.transaction(
                compare=[tx.mod(key) == revision],
                success=[tx.put(key, str(start + count).encode())],
                failure=[],
            ))
            if succeeded:
                return range(start, start + count)

    # -- controller election ------------------------------------------------------------------

    async def campaign(self, broker_id: int) -> ControllerRecord | None:
        """Try once to become controller; returns the record (with a fresh epoch) on success."""
        # The lease is read once, before any await: if the session expires meanwhile
        # (``lease_id`` becomes None) the put must fail on the dead lease, never write a
        # lease-less controller key that outlives us and blocks every later election.
        lease_id = self.lease_id
        if lease_id is None:
            return None
        tx = self.client.transactions
        current = await self._bounded(self.client.get(self.keys.controller_epoch))
        epoch = int(current.value) if current is not None else 0
        epoch_revision = current.mod_revision if current is not None else 0
        record = ControllerRecord(broker_id=broker_id, epoch=epoch + 1)
        succeeded, _ = await self._bounded(self.client.transaction(
            compare=[
                tx.create(self.keys.controller) == 0,
                tx.mod(self.keys.controller_epoch) == epoch_revision,
            ],
            success=[
                tx.put(self.keys.controller, record.to_json(), lease=lease_id),
                tx.put(self.keys.controller_epoch, str(record.epoch).encode()),
            ],
            failure=[],
        ))
        return record if succeeded else None

    async def resign(self, record: ControllerRecord) -> None:
        tx = self.client.transactions
        await self._bounded(self.client.transaction(
            compare=[tx.value(self.keys.controller) == record.to_json()],
            success=[tx.delete(self.keys.controller)],
            failure=[],
        ))

    # -- fenced writes ------------------------------------------------------------------------

    def _fence(self, controller: ControllerRecord | None) -> list[Any]:
        if controller is None:
            return []
        tx = self.client.transactions
        return [tx.value(self.keys.controller) == controller.to_json()]

    async def write_partition(
        self,
        state: PartitionState,
        *,
        expected_revision: int,
        controller: ControllerRecord | None = None,
    ) -> bool:
        """Compare-and-swap one partition state; ``expected_revision`` 0 means "must not exist"."""
        key = self.keys.partition(state.topic, state.partition)
        tx = self.client.transactions
        compare = [tx.mod(key) == expected_revision, *self._fence(controller)]
        succeeded, _ = await self._bounded(self.client.transaction(
            compare=compare, success=[tx.put(key, state.to_json())], failure=[]
        ))
        return bool(succeeded)

    async def write_seen(
        self, broker_id: int, seen: SeenBroker, *, controller: ControllerRecord
    ) -> bool:
        tx = self.client.transactions
        succeeded, _ = await self._bounded(self.client.transaction(
            compare=self._fence(controller),
            success=[tx.put(self.keys.seen(broker_id), seen.to_json())],
            failure=[],
        ))
        return bool(succeeded)

    async def create_topic(self, topic: TopicRecord, states: Iterable[PartitionState]) -> int:
        """Create a topic and its partition states: the etcd revision of the new record, or 0
        (false) if the name is taken. A cache at that revision or later has seen the creation.
        Creations asked in the same turn of the event loop share transactions
        (:mod:`headrace.cluster.create_batches`)."""
        return await self._creations.create((topic, list(states)))

    async def _create_topics_together(self, creations: Sequence[_Creation]) -> tuple[bool, int]:
        """One transaction creating every topic of ``creations`` (each only if its name is
        free): (True, revision) when all landed, (False, 0) when none did."""
        tx = self.client.transactions
        compare, success = [], []
        for topic, states in creations:
            topic_key = self.keys.topic(topic.name)
            compare.append(tx.create(topic_key) == 0)
            success.append(tx.put(topic_key, topic.to_json()))
            success += [tx.put(self.keys.partition(s.topic, s.partition), s.to_json())
                        for s in states]
        succeeded, responses = await self._bounded(self.client.transaction(
            compare=compare, success=success, failure=[]))
        if not succeeded:
            return False, 0
        return True, int(responses[0].response_put.header.revision)

    async def _create_topic_alone(self, creation: _Creation) -> int:
        topic, states = creation
        tx = self.client.transactions
        topic_key = self.keys.topic(topic.name)
        puts = [tx.put(self.keys.partition(s.topic, s.partition), s.to_json()) for s in states]
        first, rest = puts[: MAX_TXN_OPS - 1], puts[MAX_TXN_OPS - 1 :]
        succeeded, responses = await self._bounded(self.client.transaction(
            compare=[tx.create(topic_key) == 0],
            success=[tx.put(topic_key, topic.to_json()), *first],
            failure=[],
        ))
        if not succeeded:
            return 0
        revision = int(responses[0].response_put.header.revision)
        # Very large topics: the rest follows in further transactions (the controller would
        # also fill in any partition state still missing if we died half-way).
        for start in range(0, len(rest), MAX_TXN_OPS):
            await self._bounded(self.client.transaction(
                compare=[tx.version(topic_key) > 0],
                success=rest[start : start + MAX_TXN_OPS],
                failure=[],
            ))
        return revision

    async def update_topic(
        self,
        topic: TopicRecord,
        states: Iterable[PartitionState],
        *,
        expected_revision: int | None = None,
    ) -> bool:
        """Replace a topic record (new partitions, configs) and write new partition states.

        The write succeeds only if the record is still at ``expected_revision`` (default: the
        cached one): pass the revision of the copy ``topic`` was derived from, or use
        :meth:`modify_topic`, so a stale copy never overwrites a newer record.
        """
        tx = self.client.transactions
        topic_key = self.keys.topic(topic.name)
        expected = (
            self.cache.mod_revisions.get(topic_key, 0)
            if expected_revision is None
            else expected_revision
        )
        puts = [tx.put(self.keys.partition(s.topic, s.partition), s.to_json()) for s in states]
        succeeded, _ = await self._bounded(self.client.transaction(
            compare=[tx.mod(topic_key) == expected],
            success=[tx.put(topic_key, topic.to_json()), *puts[: MAX_TXN_OPS - 1]],
            failure=[],
        ))
        if not succeeded:
            return False
        rest = puts[MAX_TXN_OPS - 1 :]
        for start in range(0, len(rest), MAX_TXN_OPS):
            await self._bounded(self.client.transaction(
                compare=[], success=rest[start : start + MAX_TXN_OPS], failure=[]
            ))
        return True

    async def modify_topic(
        self,
        name: str,
        change: Callable[[TopicRecord], tuple[TopicRecord, list[PartitionState]] | None],
        *,
        attempts: int = 20,
    ) -> bool:
        """Read-modify-write a topic record; False if it is gone or ``change`` wants nothing.

        ``change`` gets the record as etcd holds it now (not the cache, which may lag behind
        a write just made) and returns the new record plus any new partition states. The write
        compares against the revision that was read, and on a race reads again: two changes
        made back to back (new partitions, then configs) both land, neither overwriting the
        other with a stale copy.
        """
        topic_key = self.keys.topic(name)
        for _ in range(attempts):
            stored = await self._bounded(self.client.get(topic_key))
            if stored is None:
                return False
            wanted = change(TopicRecord.from_json(stored.value))
            if wanted is None:
                return False
            record, states = wanted
            if await self.update_topic(record, states, expected_revision=stored.mod_revision):
                return True
        raise EtcdUnavailableError(f"topic {name} kept changing; gave up after {attempts} tries")

    async def delete_topic(self, name: str) -> bool:
        tx = self.client.transactions
        topic_key = self.keys.topic(name)
        partitions = self.keys.partitions_of(name)
        succeeded, _ = await self._bounded(self.client.transaction(
            compare=[tx.version(topic_key) > 0],
            success=[
                tx.delete(topic_key),
                tx.delete(partitions, range_end=_prefix_end(partitions)),
            ],
            failure=[],
        ))
        return bool(succeeded)


def _abandon(task: asyncio.Future[Any]) -> None:
    """Cancel an overrunning etcd call without waiting for it; its outcome is dropped."""
    task.cancel()
    task.add_done_callback(_drop_outcome)


def _drop_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as unhandled


def _prefix_end(prefix: bytes) -> bytes:
    return bytes(prefix[:-1]) + bytes([prefix[-1] + 1])
