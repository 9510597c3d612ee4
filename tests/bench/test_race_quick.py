"""bench/race.py --quick runs end to end against Apache Kafka and Headrace and reports every
workload for both systems: the harness itself is what is tested here, not the figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.kafka import kafka_missing_reason

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = {
    "produce", "consume", "e2e_p50", "e2e_p99", "e2e_p99.9", "linger0_requests", "fanout",
    "cold_catchup", "kafka_producer_perf", "kafka_consumer_perf", "cpu_s_per_gb_produced",
    "cpu_s_per_gb_consumed", "peak_rss_mib", "ready_s",
}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_race_reports_every_workload_for_both_systems(tmp_path: Path) -> None:
    missing = kafka_missing_reason()
    if missing is not None:
        pytest.skip(missing)
    plot = tmp_path / "race.png"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "race.py"), "--quick", "--json",
         "--plot", str(plot)],
        cwd=ROOT, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert set(result["workloads"]) == WORKLOADS
    for name, workload in result["workloads"].items():
        assert workload["better"] in {"higher", "lower"}, name
        assert len(workload["rounds"]["headrace"]) == len(workload["rounds"]["kafka"]) >= 1
        # CPU is counted in 10 ms ticks: a tiny quick run may see none on one side.
        if name.startswith("cpu_s_per_gb"):
            assert workload["headrace"] >= 0 and workload["kafka"] >= 0, name
            assert workload["ratio"] is None or workload["ratio"] >= 0, name
            continue
        assert workload["headrace"] > 0 and workload["kafka"] > 0, name
        assert workload["ratio"] > 0, name
    assert plot.read_bytes().startswith(b"\x89PNG")
