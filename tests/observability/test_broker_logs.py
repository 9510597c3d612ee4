"""What a ``headrace broker`` process logs: one format for every line, a start banner, one audit
line per admin action (Kafka and HTTP), and a client that leaves an SSE stream at DEBUG."""

from __future__ import annotations

import json
import socket
import struct
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from headrace import __version__
from tests.support.brokers import BrokerProcess
from tests.support.clients import confluent_admin, confluent_producer
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def json_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(tmp_path_factory.mktemp("json-logs") / "data",
                           ("--log-format", "json", "--log-level", "debug")).start()
    try:
        yield broker
    finally:
        broker.stop()


def _entries(broker: BrokerProcess) -> list[dict[str, Any]]:
    """Every line the process wrote (stdout and stderr share the file), each one JSON."""
    lines = [line for line in broker.log_path.read_text().splitlines() if line.strip()]
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    return entries


def _audit(broker: BrokerProcess, action: str, resource: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for entry in _entries(broker):
            if entry.get("audit") and (entry["action"], entry["resource"]) == (action, resource):
                return entry
        return None

    entry: dict[str, Any] = eventually(found, timeout=10, message=f"audit {action} {resource}")
    return entry


def _http(broker: BrokerProcess, method: str, path: str, body: Any = None) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{broker.http_port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_start_banner_says_what_and_where(json_broker: BrokerProcess) -> None:
    [banner] = [e for e in _entries(json_broker) if e.get("event") == "listening"]
    assert banner["level"] == "info" and banner["logger"] == "headrace.broker"
    assert banner["version"] == __version__ and banner["broker_id"] == 1
    assert banner["listeners"] == (f"PLAINTEXT://127.0.0.1:{json_broker.kafka_port}, "
                                   f"HTTP://127.0.0.1:{json_broker.http_port}")
    assert banner["data_dir"] == str(json_broker.data_dir.resolve())
    assert banner["metadata"] == "none (single broker)"
    assert len(banner["cluster_id"]) >= 16
    for fact in (__version__, banner["listeners"], banner["data_dir"], banner["cluster_id"]):
        assert fact in banner["message"]


def test_every_kafka_admin_action_is_one_audit_line(json_broker: BrokerProcess) -> None:
    bootstrap = json_broker.bootstrap
    admin = confluent_admin(bootstrap, {"client.id": "auditor"})
    admin.create_topics([NewTopic("audited", 2, 1)])["audited"].result(20)
    created = _audit(json_broker, "topic.create", "topic:audited")
    assert created["result"] == "ok" and created["partitions"] == 2
    assert created["principal"] == "User:ANONYMOUS" and created["client"] == "127.0.0.1"
    assert created["listener"] == "PLAINTEXT" and created["client_id"] == "auditor"
    assert created["logger"] == "headrace.audit" and created["level"] == "info"

    with pytest.raises(Exception, match="already exists"):
        admin.create_topics([NewTopic("audited", 2, 1)])["audited"].result(20)
    eventually(lambda: [e for e in _entries(json_broker) if e.get("action") == "topic.create"
                        and e["result"] == "TOPIC_ALREADY_EXISTS"], timeout=10,
               message="the failed create's audit line")

    admin.create_partitions([NewPartitions("audited", 3)])["audited"].result(20)
    assert _audit(json_broker, "partition.add", "topic:audited")["count"] == 3
    resource = ConfigResource(ConfigResource.Type.TOPIC, "audited", incremental_configs=[
        ConfigEntry("retention.ms", "60000",
                    incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([resource])[resource].result(20)
    altered = _audit(json_broker, "config.alter", "topic:audited")
    assert altered["configs"] == "retention.ms" and altered["result"] == "ok"

    producer = confluent_producer(bootstrap)
    producer.produce("audited", b"x", partition=0)
    assert producer.flush(20) == 0
    admin.delete_records([TopicPartition("audited", 0, 1)])[
        TopicPartition("audited", 0, 1)].result(20)
    assert _audit(json_broker, "records.delete", "topic:audited partition:0")["result"] == "ok"
    # Admin clients move a group's offsets with an OffsetCommit outside any generation.
    moved = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions("movers", [TopicPartition("audited", 0, 1)])])
    moved["movers"].result(20)
    altered_offset = _audit(json_broker, "offset.alter", "group:movers topic:audited partition:0")
    assert (altered_offset["result"], altered_offset["offset"]) == ("ok", 1)
    [deleted] = admin.delete_consumer_groups(["nobody"]).values()
    with pytest.raises(Exception):  # noqa: B017 - the error is the broker's, audited below
        deleted.result(20)
    assert _audit(json_broker, "group.delete", "group:nobody")["result"] != "ok"
    admin.delete_topics(["audited"])["audited"].result(20)
    assert _audit(json_broker, "topic.delete", "topic:audited")["result"] == "ok"
    # Reads and data traffic are not admin actions.
    actions = {e["action"] for e in _entries(json_broker) if e.get("audit")}
    assert actions <= {"topic.create", "partition.add", "config.alter", "records.delete",
                       "group.delete", "topic.delete", "config.reset", "offset.commit",
                       "offset.alter"}


def test_every_http_admin_action_is_one_audit_line(json_broker: BrokerProcess) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{json_broker.http_port}/v3/clusters",
                                timeout=20) as response:
        cluster = json.loads(response.read())["data"][0]["cluster_id"]
    topics = f"/v3/clusters/{cluster}/topics"
    assert _http(json_broker, "POST", topics, {"topic_name": "over-http",
                                               "partitions_count": 1}) == 201
    created = _audit(json_broker, "topic.create", "topic:over-http")
    assert created["result"] == "ok" and created["listener"] == "HTTP"
    assert created["principal"] == "User:ANONYMOUS" and created["client"] == "127.0.0.1"
    assert _http(json_broker, "PUT", f"{topics}/over-http/configs/retention.ms",
                 {"value": "60000"}) == 204
    assert _audit(json_broker, "config.alter",
                  "topic:over-http config:retention.ms")["result"] == "ok"
    assert _http(json_broker, "DELETE", f"{topics}/over-http/configs/retention.ms") == 204
    assert _audit(json_broker, "config.reset",
                  "topic:over-http config:retention.ms")["result"] == "ok"
    # Offsets committed through a v2 consumer instance.
    assert _http(json_broker, "POST", "/consumers/http-group",
                 {"name": "c1", "format": "json"}) == 200
    instance = "/consumers/http-group/instances/c1"
    assert _http(json_broker, "POST", f"{instance}/assignments",
                 {"partitions": [{"topic": "over-http", "partition": 0}]}) == 204
    assert _http(json_broker, "POST", f"{instance}/offsets", {"offsets": [
        {"topic": "over-http", "partition": 0, "offset": 0}]}) == 204
    committed = _audit(json_broker, "offset.commit", "group:http-group consumer:c1")
    assert committed["offsets"] == "over-http:0=0" and committed["result"] == "ok"
    # (The instance stays: the broker must still stop promptly with it open.)
    assert _http(json_broker, "DELETE", f"{topics}/over-http") == 204
    assert _audit(json_broker, "topic.delete", "topic:over-http")["result"] == "ok"
    assert _http(json_broker, "DELETE", f"{topics}/never-was") == 404
    missing = _audit(json_broker, "topic.delete", "topic:never-was")
    assert missing["result"].startswith("HTTP 404 error_code")


def test_a_client_leaving_an_sse_stream_is_debug_not_an_error(
        json_broker: BrokerProcess) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{json_broker.http_port}/v3/clusters",
                                timeout=20) as response:
        cluster = json.loads(response.read())["data"][0]["cluster_id"]
    assert _http(json_broker, "POST", f"/v3/clusters/{cluster}/topics",
                 {"topic_name": "streamed", "partitions_count": 1}) == 201
    for _ in range(2):  # once at rest, once reset (RST) by the client
        with socket.create_connection(("127.0.0.1", json_broker.http_port), timeout=20) as sock:
            sock.sendall(f"GET /v3/clusters/{cluster}/topics/streamed/stream?keepalive_ms=20 "
                         "HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    eventually(lambda: len([e for e in _entries(json_broker)
                            if "went away" in e["message"]]) >= 2,
               timeout=10, message="two DEBUG lines for the clients that left")
    left = [e for e in _entries(json_broker) if "went away" in e["message"]]
    assert {e["level"] for e in left} == {"debug"}
    assert not [e for e in _entries(json_broker) if e["level"] in ("error", "critical")]
    assert not [e for e in _entries(json_broker) if "Traceback" in json.dumps(e)]


def test_text_format_is_text_everywhere(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data", ("--log-format", "text")).start()
    try:
        admin = confluent_admin(broker.bootstrap)
        admin.create_topics([NewTopic("text-audit", 1, 1)])["text-audit"].result(20)
        eventually(lambda: "topic.create topic:text-audit by User:ANONYMOUS from 127.0.0.1 "
                   "via PLAINTEXT: ok" in broker.log_path.read_text(), timeout=10,
                   message="the audit line in text")
    finally:
        broker.stop()
    lines = [line for line in broker.log_path.read_text().splitlines() if line.strip()]
    assert not [line for line in lines if line.lstrip().startswith("{")]
    [banner] = [line for line in lines if " started: listeners " in line]
    assert f"INFO    headrace.broker: headrace {__version__} broker 1 started" in banner
