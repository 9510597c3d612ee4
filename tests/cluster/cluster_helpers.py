"""Shared helpers for the cluster tests (a module of its own so tests can import it)."""

from __future__ import annotations

from headrace.cluster.etcd_launcher import EtcdProcess
from headrace.cluster.model import KeySpace
from headrace.cluster.store import EtcdMetadataStore


class StoreFactory:
    """Creates stores against one etcd and key root, and closes them all at the end."""

    def __init__(self, etcd: EtcdProcess, keys: KeySpace) -> None:
        self.etcd = etcd
        self.keys = keys
        self.stores: list[EtcdMetadataStore] = []

    async def __call__(self, *, lease_ttl: int = 3, start: bool = True) -> EtcdMetadataStore:
        store = EtcdMetadataStore(
            [("127.0.0.1", self.etcd.client_port)], keys=self.keys, lease_ttl=lease_ttl
        )
        self.stores.append(store)
        if start:
            await store.start()
        return store

    async def close(self) -> None:
        for store in self.stores:
            await store.close()
