"""Grafana dashboards for Headrace, described compactly in Python and emitted as JSON.

Written as data rather than hand-edited JSON so the five dashboards share one layout, one set of
template variables and one datasource convention, and so the tests can list every PromQL query a
dashboard runs (``dashboard_queries``) and evaluate it against a real Prometheus scraping a real
broker. ``charts/generate.py`` writes the JSON into ``charts/headrace/dashboards/``.

Every broker series carries the scrape's ``namespace`` and ``pod`` labels (added by the chart's
PodMonitor), so each query filters on ``namespace=~"$namespace"`` and, where it makes sense,
``pod=~"$pod"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
BROKER_FILTER = 'namespace=~"$namespace", pod=~"$pod"'
NAMESPACE_FILTER = 'namespace=~"$namespace"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat" / "table"
    description: str = ""
    width: int = 12


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    metric: str  # label_values(<metric>, <name>) populates it
    depends_on: str = ""  # extra matcher, e.g. namespace filter


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    variables: tuple[Variable, ...]
    rows: tuple[tuple[str, tuple[Panel, ...]], ...]
    tags: tuple[str, ...] = field(default=("headrace",))


def q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


def _namespace_var(metric: str) -> Variable:
    return Variable("namespace", "Namespace", metric)


def _pod_var(metric: str = "headrace_broker_info") -> Variable:
    return Variable("pod", "Broker pod", metric, NAMESPACE_FILTER)


RATE = "$__rate_interval"

CLUSTER_OVERVIEW = Dashboard(
    uid="headrace-cluster-overview",
    title="Headrace / Cluster overview",
    description="Brokers, partitions health, throughput and disk across a Headrace cluster.",
    variables=(_namespace_var("headrace_broker_info"), _pod_var()),
    rows=(
        ("Health", (
            Panel("Brokers up", (q(f"count(headrace_broker_info{{{BROKER_FILTER}}})"),),
                  kind="stat", width=6),
            Panel("Offline partitions",
                  (q(f"sum(headrace_offline_partitions{{{BROKER_FILTER}}})"),),
                  kind="stat", width=6,
                  description="Partitions with no live leader: produce and fetch fail."),
            Panel("Under-replicated partitions",
                  (q(f"sum(headrace_under_replicated_partitions{{{BROKER_FILTER}}})"),),
                  kind="stat", width=6),
            Panel("Partitions (replicas)",
                  (q(f"sum(headrace_partitions{{{BROKER_FILTER}}})"),), kind="stat", width=6),
            Panel("Broker versions",
                  (q(f"count by (version) (headrace_broker_info{{{BROKER_FILTER}}})",
                     "{{version}}"),),
                  kind="table", width=12),
            Panel("Leaders per broker",
                  (q(f"sum by (pod) (headrace_leader_partitions{{{BROKER_FILTER}}})",
                     "{{pod}}"),),
                  description="Uneven counts mean leadership is not balanced."),
        )),
        ("Throughput", (
            Panel("Bytes in", (q(f"sum by (pod) (rate(headrace_topic_bytes_in_total"
                                 f"{{{BROKER_FILTER}}}[{RATE}]))", "{{pod}}"),),
                  unit="Bps"),
            Panel("Bytes out", (q(f"sum by (pod) (rate(headrace_topic_bytes_out_total"
                                  f"{{{BROKER_FILTER}}}[{RATE}]))", "{{pod}}"),),
                  unit="Bps"),
            Panel("Records in", (q(f"sum by (pod) (rate(headrace_topic_records_in_total"
                                   f"{{{BROKER_FILTER}}}[{RATE}]))", "{{pod}}"),),
                  unit="rps"),
            Panel("Requests by API", (q(f"sum by (api) (rate(headrace_requests_total"
                                        f"{{{BROKER_FILTER}}}[{RATE}]))", "{{api}}"),),
                  unit="reqps"),
        )),
        ("Resources", (
            Panel("Active connections",
                  (q(f"sum by (pod) (headrace_connections_active{{{BROKER_FILTER}}})",
                     "{{pod}}"),)),
            Panel("Disk used",
                  (q(f"1 - sum by (pod) (headrace_log_dir_free_bytes{{{BROKER_FILTER}}})"
                     f" / sum by (pod) (headrace_log_dir_total_bytes{{{BROKER_FILTER}}})",
                     "{{pod}}"),),
                  unit="percentunit"),
        )),
    ),
)

TOPICS = Dashboard(
    uid="headrace-topics",
    title="Headrace / Topics and partitions",
    description="Per-topic throughput, partition offsets, log size and segments.",
    variables=(
        _namespace_var("headrace_broker_info"),
        _pod_var(),
        Variable("topic", "Topic", "headrace_log_end_offset", NAMESPACE_FILTER),
    ),
    rows=(
        ("Throughput", (
            Panel("Bytes in by topic",
                  (q(f'sum by (topic) (rate(headrace_topic_bytes_in_total{{{BROKER_FILTER}, '
                     f'topic=~"$topic"}}[{RATE}]))', "{{topic}}"),), unit="Bps"),
            Panel("Bytes out by topic",
                  (q(f'sum by (topic) (rate(headrace_topic_bytes_out_total{{{BROKER_FILTER}, '
                     f'topic=~"$topic"}}[{RATE}]))', "{{topic}}"),), unit="Bps"),
            Panel("Records in by topic",
                  (q(f'sum by (topic) (rate(headrace_topic_records_in_total{{{BROKER_FILTER}, '
                     f'topic=~"$topic"}}[{RATE}]))', "{{topic}}"),), unit="rps"),
            Panel("Partitions per topic",
                  (q(f'count by (topic) (max by (topic, partition) (headrace_log_end_offset'
                     f'{{{NAMESPACE_FILTER}, topic=~"$topic"}}))', "{{topic}}"),)),
        )),
        ("Partitions", (
            Panel("Log end offset",
                  (q(f'max by (topic, partition) (headrace_log_end_offset{{{BROKER_FILTER}, '
                     f'topic=~"$topic"}})', "{{topic}}/{{partition}}"),)),
            Panel("High watermark",
                  (q(f'max by (topic, partition) (headrace_high_watermark{{{BROKER_FILTER}, '
                     f'topic=~"$topic"}})', "{{topic}}/{{partition}}"),)),
            Panel("Log start offset",
                  (q(f'max by (topic, partition) (headrace_log_start_offset{{{BROKER_FILTER}, '
                     f'topic=~"$topic"}})', "{{topic}}/{{partition}}"),),
                  description="Rises as retention deletes old segments."),
            Panel("Unreplicated tail (end offset - high watermark)",
                  (q(f'max by (topic, partition) (headrace_log_end_offset{{{BROKER_FILTER}, '
                     f'topic=~"$topic"}} - headrace_high_watermark)',
                     "{{topic}}/{{partition}}"),),
                  description="Records written to the leader but not yet committed by the ISR."),
        )),
        ("Log", (
            Panel("Log size by topic",
                  (q(f'sum by (topic) (headrace_log_size_bytes{{{BROKER_FILTER}, '
                     f'topic=~"$topic"}})', "{{topic}}"),), unit="bytes"),
            Panel("Segments by topic",
                  (q(f'sum by (topic) (headrace_log_segments{{{BROKER_FILTER}, '
                     f'topic=~"$topic"}})', "{{topic}}"),)),
        )),
    ),
)

CONSUMER_GROUPS = Dashboard(
    uid="headrace-consumer-groups",
    title="Headrace / Consumer groups and lag",
    description="Lag, membership and rebalances of consumer groups.",
    variables=(
        _namespace_var("headrace_broker_info"),
        Variable("group", "Group", "headrace_consumer_group_members", NAMESPACE_FILTER),
    ),
    rows=(
        ("Lag", (
            Panel("Total lag by group",
                  (q(f'sum by (group) (headrace_consumer_group_lag_sum{{{NAMESPACE_FILTER}, '
                     f'group=~"$group"}})', "{{group}}"),),
                  description="Summed over every partition of the group, as its "
                              "coordinator computes it (not cut by the per-partition "
                              "series bound)."),
            Panel("Lag by topic",
                  (q(f'sum by (group, topic) (headrace_consumer_group_lag{{{NAMESPACE_FILTER}, '
                     f'group=~"$group"}})', "{{group}} {{topic}}"),)),
            Panel("Lag by partition",
                  (q(f'max by (group, topic, partition) (headrace_consumer_group_lag'
                     f'{{{NAMESPACE_FILTER}, group=~"$group"}})',
                     "{{group}} {{topic}}/{{partition}}"),), kind="table"),
            Panel("Lag trend (per second)",
                  (q(f'sum by (group) (deriv(headrace_consumer_group_lag_sum'
                     f'{{{NAMESPACE_FILTER}, group=~"$group"}}[5m]))', "{{group}}"),),
                  description="Positive for long means consumers are falling behind."),
        )),
        ("Membership", (
            Panel("Members",
                  (q(f'max by (group) (headrace_consumer_group_members{{{NAMESPACE_FILTER}, '
                     f'group=~"$group"}})', "{{group}}"),)),
            Panel("Rebalances",
                  (q(f'sum by (group) (increase(headrace_consumer_group_rebalances_total'
                     f'{{{NAMESPACE_FILTER}, group=~"$group"}}[{RATE}]))', "{{group}}"),)),
        )),
    ),
)

BROKER_INTERNALS = Dashboard(
    uid="headrace-broker-internals",
    title="Headrace / Broker internals",
    description="Request latencies and errors, waiting fetches, connections, log, log cleaner "
                "and process.",
    variables=(_namespace_var("headrace_broker_info"), _pod_var()),
    rows=(
        ("Requests", (
            Panel("Request rate by API",
                  (q(f"sum by (api) (rate(headrace_requests_total{{{BROKER_FILTER}}}[{RATE}]))",
                     "{{api}}"),), unit="reqps"),
            Panel("Request errors by API and error",
                  (q(f"sum by (api, error) (rate(headrace_request_errors_total"
                     f"{{{BROKER_FILTER}}}[{RATE}]))", "{{api}} {{error}}"),), unit="reqps"),
            Panel("Request latency p50",
                  (q(f"histogram_quantile(0.5, sum by (api, le) (rate("
                     f"headrace_request_duration_seconds_bucket{{{BROKER_FILTER}}}[{RATE}])))",
                     "{{api}}"),), unit="s"),
            Panel("Request latency p99",
                  (q(f"histogram_quantile(0.99, sum by (api, le) (rate("
                     f"headrace_request_duration_seconds_bucket{{{BROKER_FILTER}}}[{RATE}])))",
                     "{{api}}"),), unit="s"),
            Panel("Fetches waiting (long poll)",
                  (q(f"sum by (pod) (headrace_fetch_waiting{{{BROKER_FILTER}}})", "{{pod}}"),)),
            Panel("Connections",
                  (q(f"sum by (pod) (headrace_connections_active{{{BROKER_FILTER}}})",
                     "active {{pod}}"),
                   q(f"sum by (pod) (rate(headrace_connections_total{{{BROKER_FILTER}}}"
                     f"[{RATE}]))", "opened/s {{pod}}"))),
        )),
        ("Replication", (
            Panel("ISR shrinks and expands",
                  (q(f"sum by (pod) (increase(headrace_isr_shrinks_total{{{BROKER_FILTER}}}"
                     f"[{RATE}]))", "shrinks {{pod}}"),
                   q(f"sum by (pod) (increase(headrace_isr_expands_total{{{BROKER_FILTER}}}"
                     f"[{RATE}]))", "expands {{pod}}"))),
            Panel("Partitions and leaders",
                  (q(f"sum by (pod) (headrace_partitions{{{BROKER_FILTER}}})",
                     "replicas {{pod}}"),
                   q(f"sum by (pod) (headrace_leader_partitions{{{BROKER_FILTER}}})",
                     "leaders {{pod}}"))),
            Panel("Under-replicated and under min ISR",
                  (q(f"sum by (pod) (headrace_under_replicated_partitions{{{BROKER_FILTER}}})",
                     "under-replicated {{pod}}"),
                   q(f"sum by (pod) (headrace_under_min_isr_partitions{{{BROKER_FILTER}}})",
                     "under min ISR {{pod}}")),
                  description="Partitions each broker leads with a replica out of the ISR, and "
                              "those whose ISR is below min.insync.replicas (acks=all refused)."),
        )),
        ("Log", (
            Panel("Log dir free",
                  (q(f"sum by (pod) (headrace_log_dir_free_bytes{{{BROKER_FILTER}}})",
                     "{{pod}}"),), unit="bytes"),
            Panel("Log size and segments",
                  (q(f"sum by (pod) (headrace_log_size_bytes{{{BROKER_FILTER}}})",
                     "bytes {{pod}}"),
                   q(f"sum by (pod) (headrace_log_segments{{{BROKER_FILTER}}})",
                     "segments {{pod}}"))),
            Panel("Retention deletions",
                  (q(f"sum by (pod) (rate(headrace_log_retention_bytes_deleted_total"
                     f"{{{BROKER_FILTER}}}[{RATE}]))", "{{pod}}"),), unit="Bps",
                  description="Bytes of segments deleted by retention.ms / retention.bytes."),
            Panel("Segments deleted and producer ids expired",
                  (q(f"sum by (pod) (increase(headrace_log_retention_segments_deleted_total"
                     f"{{{BROKER_FILTER}}}[{RATE}]))", "segments {{pod}}"),
                   q(f"sum by (pod) (increase(headrace_producer_ids_expired_total"
                     f"{{{BROKER_FILTER}}}[{RATE}]))", "producer ids {{pod}}")),
                  description="Idempotent producer states forgotten after "
                              "producer.id.expiration.ms; such a producer's next batch gets "
                              "UNKNOWN_PRODUCER_ID and it bumps its epoch."),
        )),
        ("Log cleaner", (
            Panel("Cleaner passes by result",
                  (q(f"sum by (result) (increase(headrace_log_cleaner_passes_total"
                     f"{{{BROKER_FILTER}}}[{RATE}]))", "{{result}}"),),
                  description="Compaction passes: ok (swapped in), error (I/O or a corrupt "
                              "segment; alerted), aborted (the log changed meanwhile)."),
            Panel("Partitions failing to clean",
                  (q(f"sum by (pod) (headrace_log_cleaner_failing_partitions"
                     f"{{{BROKER_FILTER}}})", "{{pod}}"),),
                  description="Partitions whose latest pass failed; their dirty data and "
                              "tombstones stay until the cause is fixed."),
            Panel("Cleaner bytes read and written",
                  (q(f"sum by (pod) (rate(headrace_log_cleaner_bytes_read_total"
                     f"{{{BROKER_FILTER}}}[{RATE}]))", "read {{pod}}"),
                   q(f"sum by (pod) (rate(headrace_log_cleaner_bytes_written_total"
                     f"{{{BROKER_FILTER}}}[{RATE}]))", "written {{pod}}")), unit="Bps"),
            Panel("Cleaner recopy ratio",
                  (q(f"sum by (pod) (rate(headrace_log_cleaner_bytes_written_total"
                     f"{{{BROKER_FILTER}}}[{RATE}])) / sum by (pod) (rate("
                     f"headrace_log_cleaner_bytes_read_total{{{BROKER_FILTER}}}[{RATE}]))",
                     "{{pod}}"),), unit="percentunit",
                  description="Share of the bytes read that passes write back (Kafka's "
                              "cleaner-recopy-percent); near 1 means little was compacted away."),
            Panel("Records removed by the cleaner",
                  (q(f"sum by (pod) (rate(headrace_log_cleaner_records_removed_total"
                     f"{{{BROKER_FILTER}}}[{RATE}]))", "records {{pod}}"),
                   q(f"sum by (pod) (rate(headrace_log_cleaner_tombstones_removed_total"
                     f"{{{BROKER_FILTER}}}[{RATE}]))", "tombstones {{pod}}")), unit="rps"),
            Panel("Last cleaner pass duration",
                  (q(f"max by (pod) (headrace_log_cleaner_last_pass_seconds"
                     f"{{{BROKER_FILTER}}})", "{{pod}}"),), unit="s",
                  description="Wall time of the most recent pass (Kafka's max-clean-time-secs "
                              "in spirit)."),
        )),
        ("HTTP and process", (
            Panel("HTTP requests by route and status",
                  (q(f"sum by (route, status) (rate(headrace_http_requests_total"
                     f"{{{BROKER_FILTER}}}[{RATE}]))", "{{route}} {{status}}"),), unit="reqps"),
            Panel("HTTP latency p99",
                  (q(f"histogram_quantile(0.99, sum by (route, le) (rate("
                     f"headrace_http_request_duration_seconds_bucket{{{BROKER_FILTER}}}"
                     f"[{RATE}])))", "{{route}}"),), unit="s"),
            Panel("CPU",
                  (q(f"rate(process_cpu_seconds_total{{{BROKER_FILTER}}}[{RATE}])",
                     "{{pod}}"),), unit="percentunit"),
            Panel("Memory (RSS) and open files",
                  (q(f"process_resident_memory_bytes{{{BROKER_FILTER}}}", "rss {{pod}}"),
                   q(f"process_open_fds{{{BROKER_FILTER}}}", "fds {{pod}}"))),
        )),
    ),
)

OPERATOR = Dashboard(
    uid="headrace-operator",
    title="Headrace / Operator",
    description="Reconcile rate, errors and latency of the Headrace operator.",
    variables=(_namespace_var("headrace_operator_reconcile_total"),),
    rows=(
        ("Reconciles", (
            Panel("Reconciles by kind and result",
                  (q(f"sum by (kind, result) (rate(headrace_operator_reconcile_total"
                     f"{{{NAMESPACE_FILTER}}}[{RATE}]))", "{{kind}} {{result}}"),), unit="ops"),
            Panel("Reconcile errors",
                  (q(f"sum by (kind) (increase(headrace_operator_reconcile_errors_total"
                     f"{{{NAMESPACE_FILTER}}}[{RATE}]))", "{{kind}}"),)),
            Panel("Reconcile duration p50 / p99",
                  (q(f"histogram_quantile(0.5, sum by (kind, le) (rate("
                     f"headrace_operator_reconcile_duration_seconds_bucket{{{NAMESPACE_FILTER}}}"
                     f"[{RATE}])))", "p50 {{kind}}"),
                   q(f"histogram_quantile(0.99, sum by (kind, le) (rate("
                     f"headrace_operator_reconcile_duration_seconds_bucket{{{NAMESPACE_FILTER}}}"
                     f"[{RATE}])))", "p99 {{kind}}")), unit="s"),
            Panel("Error ratio",
                  (q(f"sum by (kind) (rate(headrace_operator_reconcile_errors_total"
                     f"{{{NAMESPACE_FILTER}}}[{RATE}])) / sum by (kind) (rate("
                     f"headrace_operator_reconcile_total{{{NAMESPACE_FILTER}}}[{RATE}]))",
                     "{{kind}}"),), unit="percentunit",
                  description="Share of reconciles that raised an error."),
        )),
    ),
)

DASHBOARDS: tuple[Dashboard, ...] = (
    CLUSTER_OVERVIEW, TOPICS, CONSUMER_GROUPS, BROKER_INTERNALS, OPERATOR,
)


def _variable_json(variable: Variable) -> dict[str, Any]:
    matcher = f"{{{variable.depends_on}}}" if variable.depends_on else ""
    query = f"label_values({variable.metric}{matcher}, {variable.name})"
    return {
        "name": variable.name,
        "label": variable.label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"var-{variable.name}"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    height = 4 if panel.kind == "stat" else 8
    result: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": [
            {
                "refId": chr(ord("A") + index),
                "datasource": DATASOURCE,
                "expr": query.expr,
                "legendFormat": query.legend or "__auto",
                **({"instant": True, "format": "table"} if panel.kind == "table" else {}),
            }
            for index, query in enumerate(panel.queries)
        ],
    }
    if panel.description:
        result["description"] = panel.description
    return result


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    """The Grafana JSON model of one dashboard (schemaVersion 39, Grafana 10+)."""
    panels: list[dict[str, Any]] = []
    next_id = 1
    y = 0
    for row_title, row_panels in dashboard.rows:
        panels.append({"id": next_id, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        next_id += 1
        y += 1
        x = 0
        row_height = 0
        for panel in row_panels:
            if x + panel.width > 24:
                x = 0
                y += row_height
                row_height = 0
            rendered = _panel_json(panel, next_id, x, y)
            next_id += 1
            panels.append(rendered)
            x += panel.width
            row_height = max(row_height, rendered["gridPos"]["h"])
        y += row_height
    datasource_variable = {
        "name": "datasource", "label": "Data source", "type": "datasource",
        "query": "prometheus", "current": {}, "hide": 0,
    }
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "timezone": "",
        "graphTooltip": 1,
        "templating": {"list": [datasource_variable,
                                *(_variable_json(v) for v in dashboard.variables)]},
        "annotations": {"list": []},
        "links": [{"title": "Headrace dashboards", "type": "dashboards", "tags": ["headrace"],
                   "asDropdown": True}],
        "panels": panels,
    }


def dashboard_queries(model: dict[str, Any]) -> list[tuple[str, str]]:
    """Every PromQL expression in a Grafana dashboard JSON model, as ``(panel title, expr)``.

    Reads the JSON (not the Python description) so the tests check what Grafana will run.
    """
    queries: list[tuple[str, str]] = []
    for panel in model["panels"]:
        for target in panel.get("targets", []):
            queries.append((panel["title"], target["expr"]))
    return queries


def variable_queries(model: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(variable, selector, label)`` of every ``label_values(selector, label)`` variable."""
    found: list[tuple[str, str, str]] = []
    for variable in model["templating"]["list"]:
        if variable["type"] != "query":
            continue
        definition: str = variable["definition"]
        inner = definition.removeprefix("label_values(").removesuffix(")")
        selector, _, label = inner.rpartition(",")
        found.append((variable["name"], selector.strip(), label.strip()))
    return found
