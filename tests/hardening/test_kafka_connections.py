"""Kafka connections against hostile clients: claimed sizes, idle sockets, connection floods.

Each test runs a real ``headrace broker`` subprocess and talks raw protocol over real sockets,
measuring the broker from outside (VmRSS) while an unrelated client keeps making round trips.
The bounds asserted here are the ones docs/operations.md states.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import struct
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.hardening.raw import (
    API_VERSIONS,
    METADATA,
    closed_by_peer,
    connect,
    request_frame,
    round_trip,
    rss_kib,
)
from tests.support.brokers import BrokerProcess
from tests.support.clients import confluent_producer
from tests.support.waiting import eventually

MiB = 1024 * 1024
StartBroker = Callable[..., BrokerProcess]

#: RSS the 30 attackers below may add (each holds at most one read chunk and one 256 KiB start
#: of a frame buffer: ~10 MiB; the rest is slack for allocator noise).
ATTACK_RSS_BOUND_KIB = 48 * 1024
#: What one idle Kafka connection (after one ApiVersions round trip) may cost the broker.
IDLE_CONNECTION_BOUND_KIB = 30


@contextlib.contextmanager
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def _pid(broker: BrokerProcess) -> int:
    assert broker.process is not None
    return broker.process.pid


def test_announced_sizes_cost_only_the_bytes_sent(start_broker: StartBroker) -> None:
    broker = start_broker()
    pid = _pid(broker)
    with sockets() as opened:
        probe = connect(broker.kafka_port)
        opened.append(probe)
        for correlation in range(20):  # warm up: the first requests build caches
            round_trip(probe, (API_VERSIONS, METADATA)[correlation % 2], correlation)
        before = rss_kib(pid)
        # 30 connections each announce a 100 MiB produce request and send 64 KiB of it.
        head = struct.pack(">hhih", 0, 9, 1, -1)
        for _ in range(30):
            attacker = connect(broker.kafka_port)
            opened.append(attacker)
            attacker.sendall(struct.pack(">i", 100 * MiB) + head + bytes(64 * 1024 - len(head)))
        worst = 0.0
        peak = before
        for correlation in range(40):
            worst = max(worst, round_trip(probe, (API_VERSIONS, METADATA)[correlation % 2],
                                          100 + correlation))
            peak = max(peak, rss_kib(pid))
        assert worst < 1.0, f"an unrelated round trip took {worst:.3f} s during the attack"
        grown = peak - before
        assert grown < ATTACK_RSS_BOUND_KIB, f"RSS grew by {grown} KiB"
        # Like Kafka, the broker waits for the rest of the requests; it has not hung up.
        assert not closed_by_peer(opened[1], within=0.05)
        for attacker in opened[1:]:
            attacker.close()
        del opened[1:]
    # The claimed request memory came back: a large produce goes through.
    producer = confluent_producer(broker.bootstrap, {"message.max.bytes": 2 * MiB})
    delivered: list[object] = []
    producer.produce("after-attack", value=b"x" * 700_000,
                     on_delivery=lambda error, message: delivered.append(error or message))
    producer.flush(15)
    assert len(delivered) == 1 and not isinstance(delivered[0], BaseException), delivered
    assert delivered[0].error() is None  # type: ignore[attr-defined]


def test_a_size_prefix_over_socket_request_max_bytes_closes_the_connection(
        start_broker: StartBroker) -> None:
    broker = start_broker("--socket-request-max-bytes", str(MiB))
    with sockets() as opened:
        oversized = connect(broker.kafka_port)
        opened.append(oversized)
        oversized.sendall(struct.pack(">i", MiB + 1) + bytes(16))
        assert closed_by_peer(oversized, within=5)
        at_limit = connect(broker.kafka_port)
        opened.append(at_limit)
        at_limit.sendall(struct.pack(">i", MiB) + struct.pack(">hhih", 0, 9, 1, -1))
        assert not closed_by_peer(at_limit, within=0.2)  # allowed: the broker waits for it
        probe = connect(broker.kafka_port)
        opened.append(probe)
        assert round_trip(probe) < 1.0
    assert "socket.request.max.bytes" in broker.log()


def _ensure_fds(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} file descriptors; ulimit -Hn is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def test_idle_connections_cost_little(start_broker: StartBroker) -> None:
    count = 1000
    _ensure_fds(2 * count + 200)  # the broker inherits the limit
    broker = start_broker()
    pid = _pid(broker)
    with sockets() as opened:
        for correlation in range(100):  # warm up allocator and caches with a first hundred
            sock = connect(broker.kafka_port)
            opened.append(sock)
            round_trip(sock, API_VERSIONS, correlation)
        before = rss_kib(pid)
        for correlation in range(count):
            sock = connect(broker.kafka_port)
            opened.append(sock)
            round_trip(sock, API_VERSIONS, correlation)
        per_connection = (rss_kib(pid) - before) / count
        assert round_trip(opened[0]) < 1.0
    print(f"idle Kafka connection: {per_connection:.1f} KiB each")
    assert per_connection <= IDLE_CONNECTION_BOUND_KIB


def test_idle_connections_are_closed_after_connections_max_idle_ms(
        start_broker: StartBroker) -> None:
    broker = start_broker("--connections-max-idle-ms", "400")
    with sockets() as opened:
        idle = connect(broker.kafka_port)
        busy = connect(broker.kafka_port)
        opened += [idle, busy]
        round_trip(idle)
        # A connection in use is not idle: requests every 100 ms keep it open past the limit.
        for correlation in range(12):
            round_trip(busy, API_VERSIONS, correlation)
            busy.settimeout(0.1)
            with contextlib.suppress(TimeoutError):
                busy.recv(1)
            busy.settimeout(5)
        assert closed_by_peer(idle, within=3)
        assert round_trip(busy) < 1.0
    assert "connections.max.idle.ms" in broker.log()


def test_max_connections_per_ip_and_max_connections(start_broker: StartBroker) -> None:
    per_ip = start_broker("--max-connections-per-ip", "3")
    with sockets() as opened:
        opened += [connect(per_ip.kafka_port) for _ in range(3)]
        for correlation, sock in enumerate(opened):
            round_trip(sock, API_VERSIONS, correlation)
        extra = connect(per_ip.kafka_port)
        assert closed_by_peer(extra, within=3), "a fourth connection from 127.0.0.1 was kept"
        extra.close()
        assert refused(per_ip) == {"max.connections": 0, "max.connections.per.ip": 1}
        opened.pop().close()  # a slot frees: a new connection is served

        def served() -> bool:
            sock = connect(per_ip.kafka_port)
            try:
                return round_trip(sock) < 1.0
            except ConnectionError:
                return False
            finally:
                sock.close()

        eventually(served, timeout=5, message="a connection after one closed")

    overridden = start_broker("--max-connections-per-ip", "1",
                              "--max-connections-per-ip-overrides", "127.0.0.1:4")
    with sockets() as opened:
        opened += [connect(overridden.kafka_port) for _ in range(4)]
        for correlation, sock in enumerate(opened):
            round_trip(sock, API_VERSIONS, correlation)

    total = start_broker("--max-connections", "2")
    with sockets() as opened:
        opened += [connect(total.kafka_port) for _ in range(2)]
        for correlation, sock in enumerate(opened):
            round_trip(sock, API_VERSIONS, correlation)
        extra = connect(total.kafka_port)
        assert closed_by_peer(extra, within=3), "a third connection over max.connections=2"
        extra.close()
        assert round_trip(opened[0]) < 1.0
        assert refused(total) == {"max.connections": 1, "max.connections.per.ip": 0}
    assert "max.connections=2" in total.log()


def refused(broker: BrokerProcess) -> dict[str, float]:
    """headrace_connections_refused_total by limit, scraped from the broker's /metrics."""
    url = f"http://127.0.0.1:{broker.http_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {sample.labels["limit"]: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "headrace_connections_refused"
            for sample in family.samples if sample.name.endswith("_total")}


def test_a_frame_too_small_for_a_header_still_closes(start_broker: StartBroker) -> None:
    broker = start_broker()
    with sockets() as opened:
        sock = connect(broker.kafka_port)
        opened.append(sock)
        sock.sendall(struct.pack(">i", 3) + b"abc")
        assert closed_by_peer(sock, within=5)
        pipelined = connect(broker.kafka_port)
        opened.append(pipelined)
        # Many small requests in one write are all answered, in order.
        pipelined.sendall(b"".join(request_frame(API_VERSIONS, 0, n) for n in range(50)))
        for n in range(50):
            (size,) = struct.unpack(">i", pipelined.recv(4, socket.MSG_WAITALL))
            response = pipelined.recv(size, socket.MSG_WAITALL)
            assert struct.unpack_from(">i", response)[0] == n
