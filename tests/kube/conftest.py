"""The ``control_plane`` fixture: one real control plane per test module (a module's tests share
it; modules do not see each other's objects), skipped with the installer's reason when its
binaries are absent; ``namespace`` gives each test its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.kube import (
    ControlPlane,
    helm_binary,
    helm_missing_reason,
    kube_binaries,
    kube_missing_reason,
)

#: Ready times of the control planes this run started, for the terminal summary.
_STARTED: list[ControlPlane] = []


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    binaries = kube_binaries()
    if binaries is None:
        pytest.skip(kube_missing_reason() or "Kubernetes peer unavailable")
    plane = ControlPlane(binaries, tmp_path_factory.mktemp("kube"))
    plane.start(timeout=150.0)
    _STARTED.append(plane)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="module")
def helm(control_plane: ControlPlane) -> Path:
    binary = helm_binary()
    if binary is None:
        pytest.skip(helm_missing_reason() or "Helm peer unavailable")
    return binary


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    # The namespace controller finishes it in the background (pods bound to a node no kubelet
    # runs would hold it in Terminating: tests force-delete those themselves).
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for plane in _STARTED:
        terminalreporter.write_line(
            f"kube control plane {plane.binaries.version}: apiserver ready in "
            f"{plane.apiserver_ready_seconds:.1f}s, all components in {plane.ready_seconds:.1f}s"
        )
