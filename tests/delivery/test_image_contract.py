"""The broker image fits the pods the operator creates for the example Cluster.

No container runs here, so the contract is checked piece by piece with the real parts: the
operator's own ``desired_objects`` for ``manifests/example-cluster.yaml``, Kubernetes' schemas,
the broker Dockerfile as BuildKit parses it, a real ``sh`` running the pod's command line (with
``$(VAR)`` expanded as the kubelet does), and the real ``headrace`` argument parser.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import dockerfile
import pytest

from headrace.cli import build_parser
from headrace_operator.model import ClusterSpec, zone_groups
from headrace_operator.resources import ClusterRef, desired_objects
from tests.delivery.support import ROOT, load_documents, validate_object

NAMESPACE = "streaming"


@pytest.fixture(scope="module")
def example_objects() -> list[dict[str, Any]]:
    [cluster] = load_documents(ROOT / "manifests" / "example-cluster.yaml")
    spec = ClusterSpec.parse(cluster["spec"])
    ref = ClusterRef(cluster["metadata"]["name"], NAMESPACE, "0c1d2e3f-0000-4000-8000-000000000000")
    return desired_objects(ref, spec, list(spec.zone_names))


def _broker_statefulsets(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == "StatefulSet"
            and obj["metadata"]["labels"]["app.kubernetes.io/component"] == "broker"]


def _final_stage() -> list[Any]:
    commands = list(dockerfile.parse_file(str(ROOT / "broker" / "Dockerfile")))
    last_from = max(i for i, command in enumerate(commands) if command.cmd == "FROM")
    return commands[last_from:]


def _expand(value: str, env: dict[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion in command and args."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), value)


def test_operator_objects_for_the_example_are_valid(example_objects: list[dict[str, Any]]) -> None:
    for obj in example_objects:
        validate_object(obj)
    assert len(_broker_statefulsets(example_objects)) == 3  # one per zone


def test_broker_pod_command_reaches_the_cli(example_objects: list[dict[str, Any]],
                                            tmp_path: Path) -> None:
    # A stand-in `headrace` on PATH records the argv the pod's shell line hands to the image's
    # command; the real parser then has to accept it.
    recorder = tmp_path / "headrace"
    recorder.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    recorder.chmod(recorder.stat().st_mode | stat.S_IXUSR)
    shell = shutil.which("sh")
    assert shell
    for statefulset in _broker_statefulsets(example_objects):
        [container] = statefulset["spec"]["template"]["spec"]["containers"]
        pod_name = f"{statefulset['metadata']['name']}-1"
        env = {"POD_NAME": pod_name, "POD_INDEX": "1"}
        env.update({item["name"]: item["value"] for item in container["env"] if "value" in item})
        argv = [_expand(part, env) for part in [*container["command"], *container["args"]]]
        assert argv[0] == "sh"
        result = subprocess.run([shell, *argv[1:]], capture_output=True, text=True, timeout=30,
                                env={**env, "PATH": f"{tmp_path}{os.pathsep}/usr/bin:/bin"})
        assert result.returncode == 0, result.stderr
        cli_args = json.loads(result.stdout)
        parsed = build_parser().parse_args(cli_args)
        assert parsed.command == "broker"
        assert parsed.broker_id == int(env["BROKER_ID_BASE"]) + 1
        # A bare HOST:PORT: the first (the --kafka-listen) listener's advertised address.
        [(name, host, port)] = parsed.advertised_listener
        assert name is None
        assert host.startswith(f"{pod_name}.{statefulset['spec']['serviceName']}.") and port == 9092
        assert str(parsed.zone) == statefulset["metadata"]["name"].rsplit("-", 1)[-1]


def test_broker_pod_matches_the_image(example_objects: list[dict[str, Any]]) -> None:
    final = _final_stage()
    [volume] = [command.value[0] for command in final if command.cmd == "VOLUME"]
    [user] = [command.value[0] for command in final if command.cmd == "USER"]
    exposed = {int(port) for command in final if command.cmd == "EXPOSE"
               for port in command.value}
    for statefulset in _broker_statefulsets(example_objects):
        pod = statefulset["spec"]["template"]["spec"]
        [container] = pod["containers"]
        mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
        assert mounts["data"] == volume
        assert {port["containerPort"] for port in container["ports"]} == exposed
        # The example runs as the image's user, and fsGroup lets it write the data volume.
        assert str(pod["securityContext"]["runAsUser"]) == user.split(":")[0]
        assert pod["securityContext"]["fsGroup"] == int(user.split(":")[1])
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        probes = {container[probe]["httpGet"]["path"]
                  for probe in ("readinessProbe", "livenessProbe", "startupProbe")}
        assert probes == {"/readyz", "/healthz"}
    assert len(zone_groups(3, ["a", "b", "c"])) == 3
