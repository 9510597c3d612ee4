"""The HTTP listener against hostile clients: slow heads and bodies, connection floods, and
deep or huge JSON. A real ``headrace broker`` subprocess, raw sockets and ``http.client``."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.hardening.raw import closed_by_peer, connect, round_trip
from tests.support.brokers import BrokerProcess
from tests.support.clients import confluent_admin

StartBroker = Callable[..., BrokerProcess]


def _request(broker: BrokerProcess, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", broker.http_port, timeout=15)
    try:
        connection.request(method, path, body=body, headers={
            "Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        text = response.read()
        return response.status, json.loads(text) if text.strip() else None
    finally:
        connection.close()


def _cluster_id(broker: BrokerProcess) -> str:
    status, body = _request(broker, "GET", "/v3/clusters")
    assert status == 200
    return str(body["data"][0]["cluster_id"])


def _healthz_on(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: broker\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
        chunk = sock.recv(4096)
        assert chunk, "closed while answering"
        answer += chunk
    return answer


def test_a_slow_request_head_is_cut_off_but_keep_alive_is_not(
        start_broker: StartBroker) -> None:
    broker = start_broker("--http-header-timeout-ms", "500")
    slow = socket.create_connection(("127.0.0.1", broker.http_port), timeout=5)
    started = time.monotonic()
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: broker\r\nX-Slow: ")
    cut_off = None
    for _ in range(50):  # slowloris: one header byte every 100 ms, for up to 5 s
        try:
            slow.sendall(b"a")
        except (BrokenPipeError, ConnectionResetError):
            cut_off = time.monotonic() - started
            break
        if closed_by_peer(slow, within=0.1):
            cut_off = time.monotonic() - started
            break
    slow.close()
    assert cut_off is not None and cut_off < 3.0, "a one-byte-a-second head was not cut off"
    # A keep-alive connection idle between requests is not subject to the head deadline.
    kept = socket.create_connection(("127.0.0.1", broker.http_port), timeout=5)
    assert b" 200 " in _healthz_on(kept)
    assert not closed_by_peer(kept, within=1.0)  # twice the header timeout, idle
    assert b" 200 " in _healthz_on(kept)
    kept.close()


def test_idle_keep_alive_connections_and_stalled_bodies_time_out(
        start_broker: StartBroker) -> None:
    broker = start_broker("--http-keepalive-timeout-ms", "500", "--http-body-timeout-ms", "500")
    idle = socket.create_connection(("127.0.0.1", broker.http_port), timeout=5)
    assert b" 200 " in _healthz_on(idle)
    assert closed_by_peer(idle, within=5)
    idle.close()
    stalled = socket.create_connection(("127.0.0.1", broker.http_port), timeout=5)
    stalled.sendall(f"POST /v3/clusters/{_cluster_id(broker)}/topics HTTP/1.1\r\n"
                    "Host: broker\r\nContent-Type: application/json\r\n"
                    "Content-Length: 100\r\n\r\n{\"topic".encode())
    stalled.settimeout(5)
    answer = stalled.recv(65536)
    stalled.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    error = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert error["error_code"] == 40801 and "500 ms" in error["message"]


def test_http_connections_at_their_limit_leave_kafka_clients_alone(
        start_broker: StartBroker) -> None:
    broker = start_broker("--http-max-connections", "10")
    held = [socket.create_connection(("127.0.0.1", broker.http_port), timeout=5)
            for _ in range(10)]
    try:
        for sock in held:
            assert b" 200 " in _healthz_on(sock)
        refused = socket.create_connection(("127.0.0.1", broker.http_port), timeout=5)
        assert closed_by_peer(refused, within=3), "an 11th HTTP connection was kept"
        refused.close()
        kafka = [connect(broker.kafka_port) for _ in range(20)]
        try:
            assert max(round_trip(sock) for sock in kafka) < 1.0
        finally:
            for sock in kafka:
                sock.close()
        metadata = confluent_admin(broker.bootstrap).list_topics(timeout=10)
        assert metadata.brokers
        assert b" 200 " in _healthz_on(held[0])  # the connections held are still served
    finally:
        for sock in held:
            sock.close()
    assert "http-max-connections=10" in broker.log()


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.fixture(scope="module")
def json_broker(tmp_path_factory: pytest.TempPathFactory) -> Any:
    process = BrokerProcess(tmp_path_factory.mktemp("json") / "data",
                            ("--http-max-body-bytes", str(256 * 1024))).start()
    try:
        yield process
    finally:
        process.kill()


def _is_error(body: Any, code: int) -> str:
    assert isinstance(body, dict) and set(body) == {"error_code", "message"}, body
    assert body["error_code"] == code, body
    return str(body["message"])


@pytest.mark.parametrize("depth", [129, 100_000])
def test_deep_json_bodies_get_400_on_every_json_route(json_broker: BrokerProcess,
                                                      depth: int) -> None:
    cluster = _cluster_id(json_broker)
    status, _ = _request(json_broker, "POST", f"/v3/clusters/{cluster}/topics",
                         json.dumps({"topic_name": "deep", "partitions_count": 1}).encode())
    assert status in (201, 409)  # the module's broker may have it from the other depth
    deep_value = b'{"value": {"type": "JSON", "data": ' + _deep(depth) + b"}}"
    routes = [
        (f"/v3/clusters/{cluster}/topics", b'{"topic_name": "x", "configs": ' + _deep(depth)
         + b"}", "application/json"),
        (f"/v3/clusters/{cluster}/topics/deep/records", deep_value, "application/json"),
        ("/topics/deep", b'{"records": [{"value": ' + _deep(depth) + b"}]}",
         "application/vnd.kafka.json.v2+json"),
        ("/consumers/g", _deep(depth), "application/vnd.kafka.v2+json"),
    ]
    for path, body, content_type in routes:
        status, answer = _request(json_broker, "POST", path, body,
                                  {"Content-Type": content_type})
        assert status == 400, (path, status, answer)
        assert "nests deeper than 128" in _is_error(answer, 40001), path


def test_deep_json_in_a_streamed_produce_ends_the_stream_with_400(
        json_broker: BrokerProcess) -> None:
    cluster = _cluster_id(json_broker)
    _request(json_broker, "POST", f"/v3/clusters/{cluster}/topics",
             json.dumps({"topic_name": "deep-stream", "partitions_count": 1}).encode())
    connection = http.client.HTTPConnection("127.0.0.1", json_broker.http_port, timeout=15)
    chunks = [b'{"value": {"type": "JSON", "data": 1}}\n',
              b'{"value": {"type": "JSON", "data": ' + _deep(5000) + b"}}\n"]
    connection.request("POST", f"/v3/clusters/{cluster}/topics/deep-stream/records",
                       body=iter(chunks), encode_chunked=True,
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    lines = [json.loads(line) for line in response.read().splitlines() if line.strip()]
    connection.close()
    assert response.status == 200
    assert lines[0]["error_code"] == 200  # the first record was written
    assert "nests deeper" in _is_error(lines[-1], 40001)


def test_a_deep_value_within_the_limit_is_stored(json_broker: BrokerProcess) -> None:
    cluster = _cluster_id(json_broker)
    _request(json_broker, "POST", f"/v3/clusters/{cluster}/topics",
             json.dumps({"topic_name": "nested", "partitions_count": 1}).encode())
    # 126 levels of data inside the two of the record: 128 in all.
    body = b'{"value": {"type": "JSON", "data": ' + _deep(126) + b'}, "key": {"type": "STRING",'\
        b' "data": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[' \
        b'[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}}'
    status, answer = _request(json_broker, "POST",
                              f"/v3/clusters/{cluster}/topics/nested/records", body)
    assert status == 200 and answer["error_code"] == 200, answer


def test_huge_json_bodies_get_413(json_broker: BrokerProcess) -> None:
    cluster = _cluster_id(json_broker)
    huge = b'{"topic_name": "' + b"x" * (300 * 1024) + b'"}'
    status, answer = _request(json_broker, "POST", f"/v3/clusters/{cluster}/topics", huge)
    assert status == 413
    assert "262144-byte limit" in _is_error(answer, 41301)
    connection = http.client.HTTPConnection("127.0.0.1", json_broker.http_port, timeout=15)
    connection.request("POST", f"/v3/clusters/{cluster}/topics", body=iter([huge[:1000],
                       huge[1000:]]), encode_chunked=True,
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    status, answer = response.status, json.loads(response.read())
    connection.close()
    assert status == 413
    _is_error(answer, 41301)
