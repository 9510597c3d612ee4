"""Every API key Headrace advertises in ApiVersions is served to a real client in the tests, and
every advertised version is one Headrace can decode and answer.

- :func:`test_every_advertised_version_has_request_and_response_schemas` (always): each version
  of each range a single or clustered broker advertises has kio's request and response schema;
- :func:`test_every_advertised_api_was_served_to_a_real_client` (measured): with
  ``HEADRACE_API_COVERAGE=<file>`` every broker of the session logs what it advertised and
  served to whom (tests/support/api_coverage.py); this test, moved to the end of the session by
  tests/conftest.py, fails when a key some broker advertised was never served to a real client
  (Headrace's own replica, transaction-marker and CLI clients do not count), when a client was
  served a version outside the advertised range, or when the pipeline hung up on an advertised
  version. Without
  the variable it skips, saying how to run it. The session docs/compatibility.md names::

      HEADRACE_API_COVERAGE=$(mktemp) python -m pytest tests/compat tests/clients \\
          tests/transactions tests/groups tests/security tests/cluster

  (the real-client tests; tests/protocol and tests/server speak Headrace's own codec and are
  left out). APIs added later (SASL, ACLs, SCRAM, quotas) are checked the same way, by the tests
  of their real clients in that session.
"""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

from headrace.cluster.handlers import cluster_api_handlers
from headrace.protocol.codec import API_VERSIONS_KEY, request_schema, response_schema
from tests.support import api_coverage
from tests.support.brokers import in_process_broker


def _advertised_ranges(tmp_path: Path) -> dict[int, tuple[int, int]]:
    broker = in_process_broker(tmp_path / "data")
    ranges = {key: (low, high) for key, low, high in broker.app.registry.supported()}
    # A clustered broker adds (or replaces) these; their node is only bound, not called.
    for handler in cluster_api_handlers(types.SimpleNamespace(replicas=None)):  # type: ignore[arg-type]
        ranges[handler.api_key] = (handler.min_version, handler.max_version)
    return ranges


def test_every_advertised_version_has_request_and_response_schemas(tmp_path: Path) -> None:
    missing = []
    for key, (low, high) in sorted(_advertised_ranges(tmp_path).items()):
        for version in range(low, high + 1):
            if request_schema(key, version) is None:
                missing.append(f"{key} v{version}: no request schema")
            try:
                response_schema(key, version)
            except Exception as error:  # kio's lookup errors: the version is unknown to it
                missing.append(f"{key} v{version}: no response schema ({error})")
    assert not missing, missing


#: The client ids of Headrace's own broker-to-broker and CLI clients (cluster/fetcher.py,
#: cluster/transactions.py, cli/transactions.py): not real clients.
_OWN_CLIENTS = re.compile(r"headrace-(replica|txn)-\d+|headrace-cli")


def _headrace_itself(client_id: str) -> bool:
    return _OWN_CLIENTS.fullmatch(client_id) is not None


@pytest.mark.api_coverage_check
def test_every_advertised_api_was_served_to_a_real_client() -> None:
    path = api_coverage.requested()
    if path is None:
        pytest.skip(f"measured API coverage: run the session with {api_coverage.ENV_VAR}=<file> "
                    "(see this module's docstring)")
    if not path.exists():
        pytest.fail(f"{path}: no broker of this session recorded anything")
    coverage = api_coverage.read(path, excluded_clients=_headrace_itself)
    assert coverage.advertised, "no broker of the session answered ApiVersions"
    unexercised = sorted(key for key in coverage.advertised if not coverage.clients_of(key))
    outside = sorted(
        f"{key} v{version} to {sorted(clients)}"
        for (key, version), clients in coverage.served.items()
        if key != API_VERSIONS_KEY  # a client may ask newer first; it gets error 35 and retries
        and not (coverage.advertised.get(key, (0, -1))[0] <= version
                 <= coverage.advertised.get(key, (0, -1))[1])
    )
    refused = sorted(
        f"{key} v{version} from {sorted(clients)}"
        for (key, version), clients in coverage.refused.items()
        if coverage.advertised.get(key, (0, -1))[0] <= version
        <= coverage.advertised.get(key, (0, -1))[1]
    )
    report = "\n".join(
        f"{key:>3} v{low}-{high}: {', '.join(sorted(coverage.clients_of(key))[:6]) or '-'}"
        for key, (low, high) in sorted(coverage.advertised.items())
    )
    print(report)
    assert not unexercised, f"advertised but served to no real client: {unexercised}\n{report}"
    assert not outside, f"served outside the advertised range: {outside}"
    assert not refused, f"advertised, yet the pipeline hung up: {refused}"
