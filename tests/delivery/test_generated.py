"""Generated artefacts are up to date, and the plain YAML we ship is valid and lint-clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from charts import dashboards, generate
from yamllint import config as yamllint_config
from yamllint import linter

from headrace_operator.crds import build_crds, openapi_schema
from tests.delivery.support import CHART_DIR, ROOT, load_documents, validate_object

MANIFESTS = ROOT / "manifests"


@pytest.fixture(scope="module")
def outputs() -> dict[Path, str]:
    return generate.build_outputs()


def test_generated_files_do_not_drift(outputs: dict[Path, str]) -> None:
    stale = [str(path.relative_to(ROOT)) for path in generate.drifted(outputs)]
    assert stale == [], "run `python charts/generate.py` and commit the result"


def test_no_stale_generated_files_linger(outputs: dict[Path, str]) -> None:
    for directory, pattern in ((CHART_DIR / "crds", "*.yaml"),
                               (CHART_DIR / "dashboards", "*.json"),
                               (MANIFESTS, "*.yaml")):
        on_disk = set(directory.glob(pattern))
        assert on_disk == {path for path in outputs if path.parent == directory}


def test_check_mode_reports_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    target = MANIFESTS / "example-topic.yaml"
    real = target.read_text()
    edited = generate.build_outputs()
    edited[target] = real + "# hand edit\n"
    monkeypatch.setattr(generate, "build_outputs", lambda: edited)
    assert generate.main(["--check"]) == 1
    assert "manifests/example-topic.yaml" in capsys.readouterr().out
    assert target.read_text() == real  # --check writes nothing


def test_manifests_are_valid_objects() -> None:
    kinds: list[str] = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for document in load_documents(path):
            validate_object(document)
            kinds.append(document["kind"])
    assert kinds.count("CustomResourceDefinition") == 2
    assert {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment",
            "Cluster", "Topic", "PodMonitor", "PrometheusRule"} <= set(kinds)


def test_example_resources_fit_the_crds_and_span_three_zones() -> None:
    [cluster] = load_documents(MANIFESTS / "example-cluster.yaml")
    jsonschema.validate(cluster, openapi_schema("Cluster"))
    assert len(cluster["spec"]["zones"]["names"]) == 3
    assert "namespace" not in cluster["metadata"]  # applies into the current namespace
    [topic] = load_documents(MANIFESTS / "example-topic.yaml")
    jsonschema.validate(topic, openapi_schema("Topic"))
    assert topic["spec"]["clusterRef"] == cluster["metadata"]["name"]
    assert topic["spec"]["replicationFactor"] <= cluster["spec"]["brokers"]


def test_crd_manifest_is_build_crds() -> None:
    shipped = sorted(load_documents(MANIFESTS / "crds.yaml"),
                     key=lambda crd: crd["metadata"]["name"])
    assert shipped == sorted(build_crds(), key=lambda crd: crd["metadata"]["name"])


def test_plain_manifests_carry_no_helm_bookkeeping() -> None:
    text = "".join(path.read_text() for path in MANIFESTS.glob("*.yaml"))
    assert "helm.sh/chart" not in text and "managed-by: Helm" not in text
    assert "{{" not in (MANIFESTS / "operator.yaml").read_text()


def test_dashboard_files_are_grafana_models() -> None:
    uids = set()
    for path in sorted((CHART_DIR / "dashboards").glob("*.json")):
        model = json.loads(path.read_text())
        uids.add(model["uid"])
        assert model["schemaVersion"] >= 36 and model["title"].startswith("Headrace / ")
        panel_ids = [panel["id"] for panel in model["panels"]]
        assert len(panel_ids) == len(set(panel_ids))
        assert dashboards.dashboard_queries(model), path.name
        for panel in model["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24
    assert len(uids) == 5


def test_configuration_reference_covers_every_field() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    for kind in ("Cluster", "Topic"):
        spec = openapi_schema(kind)["properties"]["spec"]
        for field in spec["properties"]:
            assert f"`spec.{field}`" in text
    for key in ("operator.image.repository", "monitoring.dashboards.labels", "topics",
                "cluster.spec", "rbac.create"):
        assert f"`{key}`" in text


YAML_FILES = [
    *sorted(MANIFESTS.glob("*.yaml")),
    CHART_DIR / "Chart.yaml",
    CHART_DIR / "values.yaml",
    *sorted((CHART_DIR / "files").glob("*.yaml")),
    *sorted((CHART_DIR / "crds").glob("*.yaml")),
    *sorted((ROOT / ".github" / "workflows").glob("*.yaml")),
    *sorted((ROOT / "tests" / "e2e").glob("*.yaml")),
    ROOT / "tests" / "delivery" / "alerts.test.yaml",
]


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_yaml_is_lint_clean(path: Path) -> None:
    conf = yamllint_config.YamlLintConfig(file=str(Path(__file__).with_name("yamllint.yaml")))
    problems = [f"{p.line}:{p.column} {p.rule}: {p.desc}"
                for p in linter.run(path.read_text(), conf, str(path.relative_to(ROOT)))
                if p.level == "error"]
    assert problems == []


def test_generator_command_line_check_passes() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "charts" / "generate.py"), "--check"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_configuration_reference_lists_every_command_line_flag() -> None:
    """Built from the parsers, so it cannot drift; this says nothing was left out."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    parsers = generate.command_parsers()
    for command, mirrored, _intro in generate.FLAG_COMMANDS:
        flags = generate.documented_flags(parsers[command])
        assert flags, command
        for action in flags:
            for flag in action.option_strings:
                assert f"`{flag}`" in text, f"headrace {command} {flag}"
            if mirrored:
                assert f"`{generate.env_variable(action)}`" in text
    for flag in ("--data-dir", "--kafka-listen", "--metadata", "--log-format"):
        assert f"`{flag}`" in text
