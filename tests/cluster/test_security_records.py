"""Security metadata on a cluster: every broker's :class:`EtcdSecurityRecords` sees every
change (its own at once, the others' through the watch), and ACLs created through one broker
are answered by every broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from kio.schema.errors import ErrorCode

from headrace.cluster.devcluster import DevCluster
from headrace.cluster.security_records import EtcdSecurityRecords
from tests.server.test_wire import request_module
from tests.server.wire import WireClient
from tests.support.clusters import FAST_FLAGS, StoreFactory


async def _until(condition: Callable[[], bool], what: str, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within}s: {what}"
        await asyncio.sleep(0.05)  # polling a condition with a deadline


async def test_changes_reach_every_broker_through_the_watch(make_store: StoreFactory) -> None:
    one = EtcdSecurityRecords(await make_store())
    two = EtcdSecurityRecords(await make_store())
    await one.start()
    await two.start()
    seen: list[str] = []
    two.subscribe(seen.append)
    try:
        await one.write("acl", {"k/1": b"v1", "k 2": b"v2"})
        assert one.snapshot("acl") == {"k/1": b"v1", "k 2": b"v2"}  # its own at once
        await _until(lambda: two.snapshot("acl") == {"k/1": b"v1", "k 2": b"v2"}, "the put")
        await two.write("acl", {"k/1": None})
        await _until(lambda: one.snapshot("acl") == {"k 2": b"v2"}, "the delete")
        await one.write("scram", {"alice": b"keys"})
        await _until(lambda: two.snapshot("scram") == {"alice": b"keys"}, "another kind")
        assert {"acl", "scram"} <= set(seen)
        # A broker that starts later reads everything once.
        three = EtcdSecurityRecords(await make_store())
        await three.start()
        try:
            assert three.snapshot("acl") == {"k 2": b"v2"}
            assert three.snapshot("scram") == {"alice": b"keys"}
        finally:
            await three.stop()
    finally:
        await one.stop()
        await two.stop()


async def test_an_acl_created_through_one_broker_is_answered_by_all(tmp_path: Path) -> None:
    # PLAINTEXT brokers replicate as User:ANONYMOUS, so it is the super user here; what is
    # checked is that the bindings reach every broker.
    cluster = DevCluster(tmp_path / "cluster", 3, extra_args=(
        *FAST_FLAGS, "--authorizer", "acl", "--super-user", "User:ANONYMOUS"))
    try:
        await asyncio.to_thread(cluster.start)
        ports = [cluster.broker(i).kafka_port for i in (1, 2, 3)]
        module = request_module(30, 3)
        first = await WireClient.connect(ports[0])
        try:
            created = await first.request(30, 3, creations=(module.AclCreation(
                resource_type=2, resource_name="orders", resource_pattern_type=3,
                principal="User:bob", host="*", operation=3, permission_type=3),))
        finally:
            await first.close()
        assert created.results[0].error_code == ErrorCode.none
        for port in ports:
            async def described(port: int = port) -> list[str]:
                client = await WireClient.connect(port)
                try:
                    answer = await client.request(
                        29, 3, resource_type_filter=2, resource_name_filter=None,
                        pattern_type_filter=1, principal_filter=None, host_filter=None,
                        operation=1, permission_type=1)
                finally:
                    await client.close()
                return [a.principal for r in answer.resources for a in r.acls]

            found: list[str] = []
            deadline = time.monotonic() + 15
            while found != ["User:bob"]:
                assert time.monotonic() < deadline, f"broker on {port}: {found}"
                found = await described()
                if found != ["User:bob"]:
                    await asyncio.sleep(0.1)  # polling a condition with a deadline
    finally:
        await asyncio.to_thread(cluster.kill)

