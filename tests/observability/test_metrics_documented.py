"""docs/metrics.md and a running broker's ``/metrics`` name the same series: every documented
name is exported, and every exported ``headrace_*`` series is documented."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.brokers import BrokerProcess
from tests.support.clients import confluent_consumer, confluent_producer, create_topic
from tests.support.waiting import eventually

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
#: A reference table row: ``| `name` | type | labels | meaning |``.
_ROW = re.compile(r"^\| `(headrace_[a-z0-9_]+)` \| ([a-z ()0-9]+?) \|", re.MULTILINE)


def documented() -> dict[str, str]:
    """Name → type ("counter", "gauge", "histogram") of every row of the reference tables."""
    rows = {name: kind.split()[0] for name, kind in _ROW.findall(DOC.read_text())}
    assert len(rows) > 30, "the reference tables were not found"
    return rows


def exported(exposition: str) -> dict[str, str]:
    """Name as documented (counters with ``_total``) → type, for every ``headrace_*`` family."""
    names = {}
    for family in text_string_to_metric_families(exposition):
        if not family.name.startswith("headrace_"):
            continue
        name = family.name + "_total" if family.type == "counter" else family.name
        names[name] = family.type
    return names


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A broker's ``/metrics`` after the traffic that gives every family series: produce,
    fetch, a consumer group that commits, HTTP requests."""
    broker = BrokerProcess(tmp_path_factory.mktemp("metrics-doc") / "data").start()
    try:
        create_topic(broker.bootstrap, "documented", 2)
        producer = confluent_producer(broker.bootstrap)
        producer.produce("documented", b"v", partition=0)
        assert producer.flush(20) == 0
        consumer = confluent_consumer(broker.bootstrap, {
            "group.id": "documented-group", "auto.offset.reset": "earliest",
            "enable.auto.commit": False})
        consumer.subscribe(["documented"])
        try:
            message = eventually(lambda: consumer.poll(0.5), timeout=60,
                                 message="a delivery to the group", retry_on=(Exception,))
            consumer.commit(message, asynchronous=False)
        finally:
            consumer.close()
        url = f"http://127.0.0.1:{broker.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=20) as response:
            text: str = response.read().decode()
        return text
    finally:
        broker.stop()


def test_every_documented_metric_is_exported(exposition: str) -> None:
    missing = sorted(set(documented()) - set(exported(exposition)))
    assert missing == [], f"docs/metrics.md lists series the broker does not export: {missing}"


def test_every_exported_metric_is_documented(exposition: str) -> None:
    undocumented = sorted(set(exported(exposition)) - set(documented()))
    assert undocumented == [], f"exported but not in docs/metrics.md: {undocumented}"


def test_documented_types_match(exposition: str) -> None:
    actual = exported(exposition)
    wrong = {name: (kind, actual[name]) for name, kind in documented().items()
             if name in actual and actual[name] != kind}
    assert wrong == {}, "docs/metrics.md type vs exported type"


def test_the_traffic_gave_the_labelled_families_series(exposition: str) -> None:
    """The families above are not just declared: the series a newcomer looks for are there."""
    for series in ('headrace_topic_bytes_in_total{topic="documented"}',
                   'headrace_consumer_group_members{group="documented-group"}',
                   'headrace_log_end_offset{partition="0",topic="documented"}',
                   'headrace_requests_total{api="Produce"}'):
        assert series in exposition, series
