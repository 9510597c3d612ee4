"""Helpers for the delivery checks: offline chart rendering and schema validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import yaml

from headrace_operator.crds import openapi_schema

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "headrace"
KUBERNETES_VERSION = "1.30"
HEADRACE_KINDS = {"Cluster", "Topic"}
# Prometheus Operator kinds: no offline schema ships for them; checked field by field instead.
MONITORING_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule"}


def render(chart: helm_python.Chart, values: dict[str, Any],
           namespace: str = "streaming") -> list[dict[str, Any]]:
    """Render the chart offline and parse every object (NOTES.txt excluded)."""
    rendered = chart.render(values, name="rel", namespace=namespace)
    documents: list[dict[str, Any]] = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        documents.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return documents


def validate_object(document: dict[str, Any]) -> None:
    """Validate one object: built-in kinds against Kubernetes' schemas, ours against the CRDs."""
    kind = document["kind"]
    if kind in HEADRACE_KINDS:
        assert document["apiVersion"] == "headrace.io/v1alpha1"
        jsonschema.validate(document, openapi_schema(kind))
    elif kind in MONITORING_KINDS:
        assert document["apiVersion"] == "monitoring.coreos.com/v1"
        assert document["metadata"]["name"] and document["spec"]
    else:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
