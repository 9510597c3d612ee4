"""The node agent's translation of a container into a local process (no control plane needed):
``$(VAR)`` expansion, downward-API fields, entrypoints by image, addresses and mount paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.peers.pod_process import IMAGE_ENTRYPOINTS, expand, field_value, image_name, localise

POD = {"metadata": {"name": "events-zone-a-0", "namespace": "kafka", "uid": "u-1",
                    "labels": {"apps.kubernetes.io/pod-index": "0"}},
       "spec": {"nodeName": "node-zone-a-0", "hostname": "events-zone-a-0",
                "subdomain": "events-brokers"}}


def test_variables_expand_as_kubernetes_does() -> None:
    env = {"POD_NAME": "events-zone-a-0"}
    assert expand("$(POD_NAME).svc:9092", env) == "events-zone-a-0.svc:9092"
    # Unknown references stay as written; shell arithmetic is left to the shell.
    assert expand("$(MISSING) $((A + B))", env) == "$(MISSING) $((A + B))"


def test_downward_api_fields() -> None:
    assert field_value(POD, "metadata.name", "127.1.0.2") == "events-zone-a-0"
    assert field_value(POD, "metadata.labels['apps.kubernetes.io/pod-index']", "x") == "0"
    assert field_value(POD, "status.podIP", "127.1.0.2") == "127.1.0.2"
    with pytest.raises(ValueError, match="not supported"):
        field_value(POD, "spec.containers[0]", "x")


def test_images_resolve_to_the_project_entrypoints() -> None:
    assert image_name("ghcr.io/headrace/headrace-operator:0.1.0") == "headrace-operator"
    assert image_name("headrace@sha256:abc") == "headrace"
    assert IMAGE_ENTRYPOINTS["headrace-operator"][:2] == ["python", "-m"]


def test_addresses_and_mount_paths_become_the_hosts() -> None:
    mounts = {"/var/lib/headrace": Path("/tmp/pv-1"), "/etc/headrace": Path("/tmp/cm")}
    ip = "127.1.0.2"
    assert localise("0.0.0.0:9092", POD, ip, mounts) == "127.1.0.2:9092"
    own = "events-zone-a-0.events-brokers.kafka.svc.cluster.local:9092"
    assert localise(own, POD, ip, mounts) == "127.1.0.2:9092"
    # Another pod's name is not this pod's address.
    other = "events-zone-b-0.events-brokers.kafka.svc:9092"
    assert localise(other, POD, ip, mounts) == other
    assert localise("/var/lib/headrace", POD, ip, mounts) == "/tmp/pv-1"
    assert localise("--data-dir=/var/lib/headrace/log", POD, ip, mounts) == (
        "--data-dir=/tmp/pv-1/log")
    assert localise("/var/lib/headrace-other", POD, ip, mounts) == "/var/lib/headrace-other"
