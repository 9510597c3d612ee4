"""Dashboards and alerts against reality: a real broker, real traffic, a real Prometheus.

A ``headrace broker`` subprocess (ephemeral ports, tmp_path data) serves real Kafka clients
(confluent-kafka: a topic, produced records, a consumer group that commits and then lags). The
operator's metrics come from its real ``headrace_operator.metrics`` module in a subprocess, which
records a few reconciles (one failing per kind) through ``reconciling()`` exactly as the kopf
handlers do; the handlers themselves need a Kubernetes API server, which this machine cannot run.
A Debian ``prometheus`` scrapes both every second with the labels the chart's PodMonitor and
ServiceMonitor produce (``job``, ``namespace``, ``pod``) and loads the alert rules. Every
dashboard query and template variable is evaluated through Prometheus' HTTP API and must parse
and return series; every alert rule must load and evaluate without error, every metric it reads
must exist, and only the alerts the situation calls for may be pending. No exceptions are needed.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from charts import dashboards
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.delivery.prometheus import (
    Prometheus,
    alert_rules,
    prometheus_binary,
    start_prometheus,
    stop,
    wait_until,
    write_config,
)
from tests.delivery.support import CHART_DIR

pytestmark = pytest.mark.timeout(120)

NAMESPACE = "headrace-test"
POD = "events-a-0"
TOPIC = "dashboards"
GROUP = "dashboards-readers"
# Grafana's built-in interval variable, as a fixed window that holds many 1 s scrapes.
GRAFANA_BUILTINS = {"$__rate_interval": "30s", "$__interval": "5s"}
OPERATOR_NAMESPACE = "headrace-system"
OPERATOR_POD = "headrace-operator-5d9c7b-x2x8q"
# Serves the operator's real metrics registry after a success and a failure per kind.
OPERATOR_METRICS = """
import sys
from headrace_operator import metrics
port = metrics.serve(0, host="127.0.0.1")
for kind in ("Cluster", "Topic"):
    with metrics.reconciling(kind):
        pass
    try:
        with metrics.reconciling(kind):
            raise RuntimeError("reconcile failed")
    except RuntimeError:
        pass
print(port, flush=True)
sys.stdin.read()
"""
METRIC_NAME = re.compile(r"\b(headrace_[a-z_]+|process_[a-z_]+|up)\b")


def _start_broker(data_dir: Path, ready_file: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "headrace", "broker", "--data-dir", str(data_dir),
             "--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
             "--ready-file", str(ready_file), "--log-level", "WARNING"],
            stdout=log_file, stderr=subprocess.STDOUT)


def _answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _read_ready(path: Path) -> dict[str, Any] | None:
    """The broker's ready file, once completely written."""
    try:
        ready: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return ready if "http_port" in ready else None


def _drive_traffic(bootstrap: str) -> Consumer:
    """A topic, records in and out, and a live consumer group that commits and then lags."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(TOPIC, 2, 1)]).values():
        future.result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for index in range(200):
        producer.produce(TOPIC, key=str(index).encode(), value=b"v" * 100)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([TOPIC])
    consumed = 0
    deadline = time.monotonic() + 60
    while consumed < 200 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            consumed += 1
    assert consumed == 200
    consumer.commit(asynchronous=False)
    # Records the group has not read yet: lag.
    for index in range(50):
        producer.produce(TOPIC, key=str(index).encode(), value=b"late")
    assert producer.flush(30) == 0
    return consumer


def _scrape_configs(http_port: int, operator_port: int) -> list[dict[str, Any]]:
    return [{
        "job_name": "headrace-broker",
        "static_configs": [{"targets": [f"127.0.0.1:{http_port}"],
                            "labels": {"namespace": NAMESPACE, "pod": POD}}],
    }, {
        "job_name": "headrace-operator",
        "static_configs": [{"targets": [f"127.0.0.1:{operator_port}"],
                            "labels": {"namespace": OPERATOR_NAMESPACE,
                                       "pod": OPERATOR_POD}}],
    }]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = prometheus_binary()
    workdir = tmp_path_factory.mktemp("observability")
    ready_file = workdir / "broker-ready.json"
    broker_log = workdir / "broker.log"
    broker = _start_broker(workdir / "data", ready_file, broker_log)
    operator = subprocess.Popen([sys.executable, "-c", OPERATOR_METRICS], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    server: subprocess.Popen[bytes] | None = None
    consumer: Consumer | None = None
    try:
        try:
            ready = wait_until("the broker to listen", functools.partial(_read_ready, ready_file))
            # The probes the operator gives broker pods answer.
            for probe in ("healthz", "readyz"):
                wait_until(f"/{probe} to answer 200", functools.partial(
                    _answers_ok, f"http://127.0.0.1:{ready['http_port']}/{probe}"), timeout=30)
            consumer = _drive_traffic(f"127.0.0.1:{ready['kafka_port']}")
            assert operator.stdout is not None
            operator_port = int(operator.stdout.readline())  # printed once its metrics are served
            config = write_config(workdir, _scrape_configs(ready["http_port"], operator_port))
            server, client = start_prometheus(binary, config, workdir / "tsdb")

            def scraped_enough() -> bool:
                return len(client.query("count_over_time(up[1m]) >= 6")) == 2

            wait_until("6 scrapes of the broker", scraped_enough, timeout=60)
            consumer.poll(0.1)  # keep the group member alive
        except BaseException:
            print(f"broker exit code {broker.poll()}; its log ends with:")
            print(broker_log.read_text(errors="replace")[-4000:])
            raise
        yield client
    finally:
        if consumer is not None:
            consumer.close()
        if server is not None:
            stop(server)
        stop(broker)
        stop(operator)


def _grafana_substitute(expr: str) -> str:
    """Expand what Grafana would: built-in intervals, and each variable at its "All" value."""
    for name, value in GRAFANA_BUILTINS.items():
        expr = expr.replace(name, value)
    return re.sub(r"\$(namespace|pod|topic|group)\b", ".*", expr)


def _all_dashboard_queries() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted((CHART_DIR / "dashboards").glob("*.json")):
        model = json.loads(path.read_text())
        found += [(path.stem, title, expr) for title, expr in dashboards.dashboard_queries(model)]
    return found


@pytest.mark.parametrize("dashboard, panel, expr", _all_dashboard_queries(),
                         ids=lambda value: re.sub(r"\W+", "-", str(value))[:60])
def test_dashboard_query_returns_series(prometheus: Prometheus, dashboard: str, panel: str,
                                        expr: str) -> None:
    series = prometheus.query(_grafana_substitute(expr))  # parses, or fails here
    assert series, f"{dashboard} / {panel}: no series for {expr}"
    # Quantiles and ratios of rates are NaN (0/0) while nothing happens; other series are not.
    quiet_nan_possible = "histogram_quantile" in expr or ("rate(" in expr and " / " in expr)
    assert quiet_nan_possible or all(sample["value"][1] != "NaN" for sample in series), series


def test_dashboard_variables_list_values(prometheus: Prometheus) -> None:
    for path in sorted((CHART_DIR / "dashboards").glob("*.json")):
        model = json.loads(path.read_text())
        for name, selector, label in dashboards.variable_queries(model):
            series = prometheus.query(_grafana_substitute(selector))
            values = {sample["metric"].get(label) for sample in series}
            assert series and None not in values, f"{path.name} ${name}: {selector} by {label}"
    # The variables offer the values the traffic created.
    assert prometheus.query(f'headrace_log_end_offset{{topic="{TOPIC}"}}')
    assert prometheus.query(f'headrace_consumer_group_members{{group="{GROUP}"}}')


def test_lag_reflects_the_unread_records(prometheus: Prometheus) -> None:
    [total] = prometheus.query(f'sum(headrace_consumer_group_lag{{group="{GROUP}"}})')
    assert float(total["value"][1]) == 50


def test_alert_rules_load_and_evaluate_cleanly(prometheus: Prometheus) -> None:
    expected = alert_rules()

    def evaluated() -> list[dict[str, Any]] | None:
        groups = prometheus.api("rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        done = all(not rule["lastEvaluation"].startswith("0001") for rule in rules)
        return rules if done and rules else None

    rules = wait_until("every rule evaluated", evaluated, timeout=30)
    assert {rule["name"] for rule in rules} == set(expected)
    for rule in rules:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
    states = {rule["name"]: rule["state"] for rule in rules}
    # The failed reconciles start the operator alert's clock; its `for` keeps it from firing.
    assert states.pop("HeadraceOperatorReconcileErrors") == "pending"
    # The disk alerts read this machine's real disk, which other work fills and frees.
    states = {name: state for name, state in states.items() if not name.startswith("HeadraceDisk")}
    # A healthy broker with an active reader is not even pending on any broker alert.
    assert set(states.values()) == {"inactive"}, states


def test_every_metric_an_alert_reads_exists(prometheus: Prometheus) -> None:
    for rule in alert_rules().values():
        for name in set(METRIC_NAME.findall(rule["expr"])):
            selector = 'up{job="headrace-broker"}' if name == "up" else name
            series = prometheus.query(selector)
            assert series, f"{rule['alert']} reads {name}, which the broker does not export"
