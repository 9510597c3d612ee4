"""Suite-wide fixtures (from tests/support/fixtures.py; see tests/support) and the ``e2e`` gate.

Tests marked ``e2e`` need a real Kubernetes cluster (kind in GitHub Actions). They run only when
``HEADRACE_E2E_KUBECONFIG`` (or ``KUBECONFIG``) points at a reachable cluster and
``HEADRACE_E2E=1`` is set; everywhere else they are skipped with a reason.
"""

from __future__ import annotations

import os

import pytest

from tests.support import api_coverage

pytest_plugins = ["tests.support.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    # HEADRACE_API_COVERAGE=<file>: every broker of the session logs what it serves
    # (tests/support/api_coverage.py), checked by tests/compat/test_api_coverage.py.
    api_coverage.enable_if_requested()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The measured API coverage check reads what the whole session served: it runs last.
    items.sort(key=lambda item: "api_coverage_check" in item.keywords)
    if os.environ.get("HEADRACE_E2E") == "1":
        return
    skip = pytest.mark.skip(
        reason="e2e: needs a Kubernetes cluster (set HEADRACE_E2E=1 and KUBECONFIG)"
    )
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)
