"""The pure quota model of :mod:`headrace.security.quotas`: Kafka's windowed rate and throttle
formula (with the figures of Kafka's own ClientQuotaManagerTest), KIP-55's precedence, and the
validation and filters of AlterClientQuotas / DescribeClientQuotas."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.security.quotas import (
    CLIENT_ID,
    IP,
    PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    USER,
    QuotaEntity,
    QuotaRequestError,
    SensorKey,
    WindowedRate,
    altered,
    ip_connection_rate,
    quota_filter,
    record_and_throttle,
    resolve,
    throttle_ms,
    user_client,
    validate_entity,
)


def test_kafkas_quota_violation_figures() -> None:
    """ClientQuotaManagerTest.testQuotaViolation: 500 B/s over 11 one-second windows."""
    rate, now = WindowedRate(11, 1000), 0
    for _ in range(10):
        assert record_and_throttle(rate, 400, now, 500.0) == 0
        now += 1000
    now += 500
    # 400*10 + 2300 = 6300 bytes over 10.5 s = 600 B/s; (600-500)/500 * 10.5 s = 2100 ms.
    assert record_and_throttle(rate, 2300, now, 500.0) == 2100
    now += 2100
    for _ in range(10):
        record_and_throttle(rate, 400, now, 500.0)
        now += 1000
    assert record_and_throttle(rate, 0, now, 500.0) == 0, "the burst has rolled over"


def test_a_fresh_rate_counts_all_but_one_window_as_elapsed() -> None:
    rate = WindowedRate(11, 1000)
    rate.record(1000, 5)
    assert rate.span_ms(5) == 10_000
    assert rate.measure(5) == pytest.approx(100.0)


def test_samples_older_than_the_monitored_span_are_forgotten() -> None:
    rate = WindowedRate(3, 1000)
    rate.record(900, 0)
    assert rate.total(2999) == 900
    assert rate.total(3000) == 0
    assert rate.idle(3000)


def test_throttle_formula_is_kafkas() -> None:
    assert throttle_ms(600.0, 500.0, 10_500) == 2100
    assert throttle_ms(1000.5, 1000.0, 1000) == 1  # half up, as Java's Math.round
    assert record_and_throttle(WindowedRate(2, 1000), 10_000, 0, 1.0, max_ms=1000) == 1000


@settings(max_examples=60, deadline=None)
@given(
    bound=st.integers(1_000, 100_000),
    fractions=st.lists(st.floats(0.0, 1.0), min_size=20, max_size=200),
    gaps=st.lists(st.integers(0, 300), min_size=20, max_size=200),
    samples=st.integers(2, 11),
)
def test_a_client_that_waits_out_its_throttles_stays_near_the_quota(
    bound: int, fractions: list[float], gaps: list[int], samples: int
) -> None:
    """What the quota promises: waiting out every throttle, a client whose requests are at
    most one window's worth of quota moves at most the bound times the elapsed time plus
    ``samples`` windows (the free first span and the sample overlapping its start).

    Larger requests get more: after a throttle longer than the whole span every sample has
    expired, and the next one again counts as spread over ``samples - 1`` windows. That is
    Kafka's arithmetic too, and why a Fetch is capped at what the quota window allows."""
    rate, now, total = WindowedRate(samples, 1000), 0, 0
    for fraction, gap in zip(fractions, gaps, strict=False):
        size = max(1, int(fraction * bound))
        total += size
        now += record_and_throttle(rate, size, now, float(bound)) + gap
    assert total <= bound * (now / 1000 + samples)


def _configs(*items: tuple[QuotaEntity, float]) -> dict[QuotaEntity, dict[str, float]]:
    return {entity: {PRODUCER_BYTE_RATE: value} for entity, value in items}


LEVELS = [
    (user_client("alice", "app"), SensorKey("alice", "app")),
    (user_client("alice", None, default_client=True), SensorKey("alice", "app")),
    (user_client("alice", None), SensorKey("alice", "")),
    (user_client(None, "app", default_user=True), SensorKey("alice", "app")),
    (user_client(None, None, default_user=True, default_client=True), SensorKey("alice", "app")),
    (user_client(None, None, default_user=True), SensorKey("alice", "")),
    (user_client(None, "app"), SensorKey("", "app")),
    (user_client(None, None, default_client=True), SensorKey("", "app")),
]


@pytest.mark.parametrize("level", range(len(LEVELS)))
def test_the_most_specific_entity_wins_in_kafkas_order(level: int) -> None:
    """With every level from ``level`` down configured, ``level`` applies (KIP-55)."""
    configs = _configs(*((entity, float(100 + index))
                         for index, (entity, _) in enumerate(LEVELS) if index >= level))
    sensor, bound = resolve(configs, PRODUCER_BYTE_RATE, "alice", "app")
    assert (sensor, bound) == (LEVELS[level][1], 100.0 + level)


def test_quota_keys_resolve_independently_and_unconfigured_means_unlimited() -> None:
    configs = {user_client("alice", None): {REQUEST_PERCENTAGE: 5.0},
               user_client(None, "app"): {PRODUCER_BYTE_RATE: 1024.0}}
    assert resolve(configs, PRODUCER_BYTE_RATE, "alice", "app") == (SensorKey("", "app"), 1024.0)
    assert resolve(configs, REQUEST_PERCENTAGE, "alice", "app") == (SensorKey("alice", ""), 5.0)
    assert resolve(configs, PRODUCER_BYTE_RATE, "bob", "other")[1] is None


def test_a_default_applies_to_each_user_separately_and_a_user_quota_is_shared() -> None:
    default_user = _configs((user_client(None, None, default_user=True), 10.0))
    assert resolve(default_user, PRODUCER_BYTE_RATE, "a", "x")[0] != resolve(
        default_user, PRODUCER_BYTE_RATE, "b", "x")[0]
    one_user = _configs((user_client("a", None), 10.0))
    assert resolve(one_user, PRODUCER_BYTE_RATE, "a", "x")[0] == resolve(
        one_user, PRODUCER_BYTE_RATE, "a", "y")[0]


def test_ip_connection_rates_fall_back_to_the_ip_default() -> None:
    configs = {QuotaEntity.of([(IP, "10.0.0.1")]): {"connection_creation_rate": 3.0},
               QuotaEntity.of([(IP, None)]): {"connection_creation_rate": 7.0}}
    assert ip_connection_rate(configs, "10.0.0.1") == 3.0
    assert ip_connection_rate(configs, "10.0.0.2") == 7.0
    assert ip_connection_rate({}, "10.0.0.2") is None


def test_entities_round_trip_through_their_record_key() -> None:
    entity = user_client("al,ice=\"", None, default_client=True)
    assert QuotaEntity.decode(entity.encode()) == entity
    assert str(entity) == 'client-id=<default>, user=al,ice="'
    named, default = user_client("bob", None), user_client(None, None, default_user=True)
    assert sorted([named, default], key=QuotaEntity.sort_key) == [default, named]


@pytest.mark.parametrize(("parts", "message"), [
    ([], "empty"),
    ([(USER, "a"), (USER, "b")], "duplicate"),
    ([("group", "g")], "Unhandled"),
    ([(USER, "")], "Empty user"),
    ([(IP, "1.2.3.4"), (USER, "a")], "combination"),
    ([(IP, "not-an-ip")], "not a valid IP"),
])
def test_invalid_entities_are_refused(parts: list[tuple[str, str | None]], message: str) -> None:
    with pytest.raises(QuotaRequestError, match=message):
        validate_entity(parts)


@pytest.mark.parametrize(("ops", "message"), [
    ([(PRODUCER_BYTE_RATE, 0.0)], "greater than 0"),
    ([(PRODUCER_BYTE_RATE, 1.5)], "fractional"),
    (([("connection_creation_rate", 5.0)]), "Invalid configuration key"),
    ([(PRODUCER_BYTE_RATE, 5.0), (PRODUCER_BYTE_RATE, None)], "Duplicate"),
])
def test_invalid_values_are_refused(ops: list[tuple[str, float | None]], message: str) -> None:
    with pytest.raises(QuotaRequestError, match=message):
        altered(user_client("a", None), {}, ops)


def test_alterations_set_and_remove_keys() -> None:
    entity = user_client("a", None)
    values = altered(entity, {PRODUCER_BYTE_RATE: 1.0}, [(PRODUCER_BYTE_RATE, None),
                                                         (REQUEST_PERCENTAGE, 12.5)])
    assert values == {REQUEST_PERCENTAGE: 12.5}


def test_describe_filters_match_exact_default_and_specified_and_strict() -> None:
    alice_app = user_client("alice", "app")
    alice = user_client("alice", None)
    default_user = user_client(None, None, default_user=True)
    app = user_client(None, "app")
    entities = [alice_app, alice, default_user, app]

    def matching(components: list[tuple[str, int, str | None]], strict: bool = False) -> list[
            QuotaEntity]:
        chosen = quota_filter(components, strict)
        return [entity for entity in entities if chosen.matches(entity)]

    assert matching([(USER, 0, "alice")]) == [alice_app, alice]
    assert matching([(USER, 0, "alice")], strict=True) == [alice]
    assert matching([(USER, 1, None)]) == [default_user]
    assert matching([(CLIENT_ID, 2, None)]) == [alice_app, app]
    assert matching([]) == entities
    assert matching([], strict=True) == []
    with pytest.raises(QuotaRequestError, match="more than once"):
        quota_filter([(USER, 2, None), (USER, 0, "a")], False)
    with pytest.raises(QuotaRequestError) as unsupported:
        quota_filter([("group", 2, None)], False)
    assert unsupported.value.unsupported
    with pytest.raises(QuotaRequestError, match="null"):
        quota_filter([(USER, 0, None)], False)
