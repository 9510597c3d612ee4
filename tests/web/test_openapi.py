"""The OpenAPI document matches the routes, and schemathesis fuzzes the live API against it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from headrace.web.openapi import openapi_document
from tests.support.brokers import BrokerProcess, http_broker


def _router_operations(app: web.Application) -> set[tuple[str, str]]:
    operations = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        resource = route.resource
        assert resource is not None
        operations.add((resource.canonical, route.method.lower()))
    return operations


async def test_document_lists_exactly_the_routes(tmp_path: Path) -> None:
    async with http_broker(tmp_path / "data") as running:
        served = _router_operations(running.http_app)
    document = openapi_document()
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == served, {"undocumented": served - documented,
                                  "not served": documented - served}
    # Every path parameter is declared on its operation.
    for path, item in document["paths"].items():
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            placeholders = {part[1:-1] for part in path.split("/")
                            if part.startswith("{") and part.endswith("}")}
            placeholders |= {"topic_name"} if "{topic_name}" in path else set()
            assert placeholders <= declared, (method, path)


def test_document_is_valid_openapi() -> None:
    from jsonschema import Draft202012Validator

    document = openapi_document()
    assert document["openapi"].startswith("3.")
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


@pytest.mark.timeout(100)
def test_schemathesis_finds_no_server_errors(broker: BrokerProcess, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{broker.http_port}"
    # A known topic, so generated requests reach the deeper handlers too.
    import urllib.request

    cluster_id = json.load(urllib.request.urlopen(base + "/v3/clusters", timeout=10)
                           )["data"][0]["cluster_id"]
    request = urllib.request.Request(
        f"{base}/v3/clusters/{cluster_id}/topics", method="POST",
        data=json.dumps({"topic_name": "fuzzed", "partitions_count": 2}).encode(),
        headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()
    report = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                     "response_schema_conformance",
         "--phases", "examples,coverage,fuzzing",
         "--max-examples", "10",
         "--workers", "1",
         "--request-timeout", "10",
         "--max-time", "15",
         "--seed", "1",
         # Endless streams and consumer instances (each a Kafka client) are tested elsewhere.
         "--exclude-path-regex", r"/stream$|^/consumers",
         "--exclude-path", "/metrics",
         "--report-dir", str(report),
         "--suppress-health-check", "all",
         "--warnings", "off"],
        capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
