"""Raw Kafka-protocol sockets for the hardening tests: what a hostile client would send.

Blocking sockets with short timeouts, so a test can hold hundreds of connections from one thread
and measure a broker subprocess from the outside (``/proc/<pid>/status``).
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

API_VERSIONS = 18
METADATA = 3


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request_frame(api_key: int, version: int, correlation: int, body: bytes = b"") -> bytes:
    """A request with header v1 (null client id): what any client sends for v0 requests."""
    payload = struct.pack(">hhih", api_key, version, correlation, -1) + body
    return struct.pack(">i", len(payload)) + payload


def receive_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed by the broker")
        data += chunk
    return bytes(data)


def round_trip(sock: socket.socket, api_key: int = API_VERSIONS, correlation: int = 7) -> float:
    """Seconds one ApiVersions v0 (or Metadata v0 for all topics) takes; checks the answer."""
    body = struct.pack(">i", 0) if api_key == METADATA else b""
    started = time.perf_counter()
    sock.sendall(request_frame(api_key, 0, correlation, body))
    (size,) = struct.unpack(">i", receive_exactly(sock, 4))
    response = receive_exactly(sock, size)
    elapsed = time.perf_counter() - started
    assert struct.unpack_from(">i", response)[0] == correlation
    if api_key == API_VERSIONS:
        assert struct.unpack_from(">h", response, 4)[0] == 0  # error_code none
    return elapsed


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """Whether the broker closes ``sock`` within ``within`` seconds (reads and drops data)."""
    sock.settimeout(within)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


def rss_kib(pid: int) -> int:
    """Resident memory of process ``pid`` (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")
