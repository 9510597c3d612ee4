"""The replication series of /metrics on a real three-broker cluster, through a follower stall.

A SIGSTOPped follower stops fetching and loses its lease: the leader shrinks the ISR it was in
(counted), reports the partition under-replicated and, with min.insync.replicas=3, under min ISR,
and the active controller reports the stalled broker's single-replica partitions offline.
SIGCONT brings it back: the ISR expands (counted) and every gauge returns to 0.
"""

from __future__ import annotations

import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from headrace.cluster.devcluster import BrokerProcess, DevCluster
from tests.support.clients import create_topic
from tests.support.clusters import all_led, partition_states
from tests.support.waiting import eventually

SHRINKS = "headrace_isr_shrinks_total"
EXPANDS = "headrace_isr_expands_total"
UNDER_REPLICATED = "headrace_under_replicated_partitions"
UNDER_MIN_ISR = "headrace_under_min_isr_partitions"
OFFLINE = "headrace_offline_partitions"


def scrape(broker: BrokerProcess) -> dict[str, float]:
    """The broker's unlabelled samples, as Prometheus would read them."""
    url = f"http://{broker.host}:{broker.http_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples if not sample.labels}


def offline_in(brokers: list[BrokerProcess]) -> float:
    return sum(scrape(broker)[OFFLINE] for broker in brokers)


def test_a_stalled_follower_shows_on_the_leaders_metrics(cluster: DevCluster) -> None:
    create_topic(cluster.bootstrap, "metered", 1, 3, {"min.insync.replicas": "3"})
    create_topic(cluster.bootstrap, "lonely", 3, 1)
    wait_for(lambda: all_led(cluster.bootstrap, "metered", 1)
             and all_led(cluster.bootstrap, "lonely", 3), 20, "leaders")
    leader_id, replicas, _ = partition_states(cluster.bootstrap, "metered")[0]
    lonely = [replicas for _, replicas, _ in partition_states(cluster.bootstrap, "lonely").values()]
    # A follower of "metered" that alone holds a partition of "lonely" (placement spreads them).
    follower = cluster.broker(next(b for b in replicas if b != leader_id and (b,) in lonely))
    leader = cluster.broker(leader_id)
    others = [b for b in cluster.brokers if b is not follower]

    healthy = wait_for(
        lambda: (m := scrape(leader))[UNDER_REPLICATED] == m[UNDER_MIN_ISR] == 0 and m,
        30, "every ISR the leader keeps full")
    assert offline_in(cluster.brokers) == 0
    follower.pause()
    try:
        stalled = wait_for(
            lambda: (m := scrape(leader))[SHRINKS] > healthy[SHRINKS]
            and m[UNDER_REPLICATED] >= 1 and m[UNDER_MIN_ISR] >= 1 and m,
            30, "the leader to shrink the ISR")
        assert follower.broker_id not in partition_states(leader.bootstrap, "metered")[0][2]
        assert stalled[EXPANDS] == healthy[EXPANDS]
        wait_for(lambda: offline_in(others) == lonely.count((follower.broker_id,)), 30,
                 "the controller to count the stalled broker's partitions offline")
    finally:
        follower.resume()
    wait_for(lambda: (m := scrape(leader))[EXPANDS] > healthy[EXPANDS]
             and m[UNDER_REPLICATED] == m[UNDER_MIN_ISR] == 0, 30, "the ISR to expand again")
    wait_for(lambda: offline_in(cluster.brokers) == 0, 30, "no offline partitions")


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    """:func:`eventually` with this module's positional style; a scrape of a paused or
    restarting broker may fail, and is tried again."""
    return eventually(condition, timeout=timeout, message=what, retry_on=(OSError,))
