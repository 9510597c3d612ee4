"""The alert rules load in Prometheus and fire exactly when their unit tests say (promtool)."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from tests.delivery.support import CHART_DIR, ROOT

RULES = CHART_DIR / "files" / "alerts.yaml"
REQUIRED_ALERTS = {
    "HeadraceOfflinePartitions", "HeadraceUnderReplicatedPartitions",
    "HeadraceUnderMinIsrPartitions", "HeadraceIsrShrinking",
    "HeadraceConsumerLagGrowing", "HeadraceConsumerGroupWithoutConsumers",
    "HeadraceDiskFilling", "HeadraceDiskAlmostFull",
    "HeadraceBrokerDown", "HeadraceOperatorReconcileErrors", "HeadraceLogCleanerFailing",
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package (tests/tools/install.sh)"
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)


def _alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_rules_pass_promtool_check() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout


def test_every_required_alert_exists_with_severity_and_runbook_text() -> None:
    alerts = {str(rule["alert"]): rule for rule in _alerts()}
    assert set(alerts) == REQUIRED_ALERTS
    for rule in alerts.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}  # type: ignore[index]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]  # type: ignore[index]


def test_alert_unit_tests_pass() -> None:
    tests = ROOT / "tests" / "delivery" / "alerts.test.yaml"
    tested = {str(case["alertname"])
              for test in yaml.safe_load(tests.read_text())["tests"]
              for case in test["alert_rule_test"] if case.get("exp_alerts")}
    assert tested == REQUIRED_ALERTS, "every alert needs a firing unit test"
    result = _promtool("test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr
