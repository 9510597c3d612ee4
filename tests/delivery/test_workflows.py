"""The CI workflows are valid GitHub Actions and wire the delivery pieces together correctly.

Validated offline against the GitHub workflow schema vendored in check-jsonschema; the rest
checks that the paths, images and commands they use exist and agree with the chart and tests.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import yaml

from headrace_operator.crds import DEFAULT_IMAGE
from tests.delivery.support import CHART_DIR, ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def _workflow(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return loaded


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def _uses(workflow: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in _steps(workflow) if step.get("uses", "").startswith(action + "@")]


def test_workflows_match_the_github_actions_schema() -> None:
    checker = shutil.which("check-jsonschema")
    assert checker, "check-jsonschema comes from the test extra"
    files = [str(WORKFLOWS / name) for name in ("images.yaml", "e2e.yaml", "ci.yaml")]
    result = subprocess.run([checker, "--builtin-schema", "vendor.github-workflows", *files],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_images_workflow_builds_both_dockerfiles_and_pushes_only_from_pushes() -> None:
    workflow = _workflow("images.yaml")
    assert workflow["permissions"]["packages"] == "write"
    [build] = _uses(workflow, "docker/build-push-action")
    assert build["with"]["push"] == "${{ github.event_name == 'push' }}"
    assert build["with"]["context"] == "."
    matrix = workflow["jobs"]["build"]["strategy"]["matrix"]["include"]
    for entry in matrix:
        dockerfile = build["with"]["file"].replace("${{ matrix.component }}", entry["component"])
        assert (ROOT / dockerfile).is_file(), dockerfile
    images = {entry["component"]: entry["image"] for entry in matrix}
    # The names the chart and the operator default to.
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["broker"]["image"]["repository"].endswith("/" + images["broker"])
    assert values["operator"]["image"]["repository"].endswith("/" + images["operator"])
    assert DEFAULT_IMAGE.split(":")[0] == values["broker"]["image"]["repository"]
    [metadata] = _uses(workflow, "docker/metadata-action")
    assert metadata["with"]["images"].startswith("ghcr.io/")


def test_e2e_workflow_runs_the_e2e_suite_on_a_three_zone_kind_cluster() -> None:
    workflow = _workflow("e2e.yaml")
    [kind] = _uses(workflow, "helm/kind-action")
    config = yaml.safe_load((ROOT / kind["with"]["config"]).read_text())
    zones = [node["labels"]["topology.kubernetes.io/zone"]
             for node in config["nodes"] if node["role"] == "worker"]
    assert zones == ["a", "b", "c"]
    env = workflow["jobs"]["kind"]["env"]
    assert env["HEADRACE_E2E"] == "1"
    builds = _uses(workflow, "docker/build-push-action")
    assert {step["with"]["file"] for step in builds} == {"broker/Dockerfile", "operator/Dockerfile"}
    assert all(step["with"]["load"] is True for step in builds)
    scripts = "\n".join(step.get("run", "") for step in _steps(workflow))
    assert "kind load docker-image" in scripts
    assert "python -m pytest tests/e2e -m e2e" in scripts
    assert scripts.index("helm upgrade --install headrace charts/headrace") < scripts.index(
        "python -m pytest tests/e2e")
    # The images the tests install are the ones the workflow builds and loads.
    tags = "\n".join(step["with"]["tags"] for step in builds)
    assert "${{ env.HEADRACE_E2E_REGISTRY }}/headrace:${{ env.HEADRACE_E2E_TAG }}-next" in tags
    assert "${{ env.HEADRACE_E2E_REGISTRY }}/headrace-operator:${{ env.HEADRACE_E2E_TAG }}" in tags
