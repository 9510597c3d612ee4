"""Kafka's listener syntax: parsing, its inverse, and the combinations refused before binding."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headrace.core.config import BrokerConfig, ListenerConfig, SecurityProtocol
from headrace.core.listener_specs import (
    check_listeners,
    format_listener,
    parse_advertised,
    parse_listener,
)

SSL = SecurityProtocol.SSL


def test_named_and_kafka_style_listeners() -> None:
    assert parse_listener("internal=ssl://10.0.0.1:9093") == ListenerConfig(
        "INTERNAL", SSL, "10.0.0.1", 9093)
    assert parse_listener("SASL_SSL://:9094") == ListenerConfig(
        "SASL_SSL", SecurityProtocol.SASL_SSL, "0.0.0.0", 9094)
    assert parse_listener("V6=PLAINTEXT://[::1]:0").host == "::1"


@pytest.mark.parametrize("text", [
    "SSL=TLS://h:1", "SSL=SSL://h", "SSL=SSL://h:70000", "bad name=SSL://h:1", "h:1",
])
def test_bad_listeners_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listener(text)


def test_advertised_listeners() -> None:
    assert parse_advertised("SSL=broker-0.example:9093") == ("SSL", "broker-0.example", 9093)
    assert parse_advertised("SSL://broker-0.example:9093") == ("SSL", "broker-0.example", 9093)
    assert parse_advertised("broker-0.example:9092") == (None, "broker-0.example", 9092)


@given(st.builds(
    ListenerConfig,
    st.from_regex(r"[A-Z0-9_-]{1,12}", fullmatch=True),
    st.sampled_from(SecurityProtocol),
    st.one_of(st.ip_addresses().map(str), st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True)),
    st.integers(0, 65535),
))
def test_format_and_parse_are_inverses(listener: ListenerConfig) -> None:
    assert parse_listener(format_listener(listener)) == listener


def test_conflicts_are_refused() -> None:
    a = ListenerConfig("A", SSL, "127.0.0.1", 9093)
    with pytest.raises(ValueError, match="twice"):
        check_listeners([a, ListenerConfig("A", SSL, "127.0.0.1", 9094)])
    with pytest.raises(ValueError, match="two listeners on"):
        check_listeners([a, ListenerConfig("B", SSL, "127.0.0.1", 9093)])
    with pytest.raises(ValueError, match="advertised listener C"):
        check_listeners([a], advertised={"C": ("h", 1)})
    with pytest.raises(ValueError, match="inter-broker listener C"):
        check_listeners([a], inter_broker="C")
    # Port 0 (ephemeral) twice is fine.
    check_listeners([ListenerConfig("A", SSL, "h", 0), ListenerConfig("B", SSL, "h", 0)])


def test_advertised_addresses_and_the_inter_broker_listener(tmp_path: Path) -> None:
    plain = ListenerConfig("PLAINTEXT", SecurityProtocol.PLAINTEXT, "0.0.0.0", 9092)
    tls = ListenerConfig("SSL", SSL, "0.0.0.0", 9093)
    config = BrokerConfig(data_dir=tmp_path, listeners=(plain, tls),
                          advertised_host="public", advertised_listeners={"SSL": ("tls", 0)},
                          inter_broker_listener="SSL")
    assert config.listener == tls
    assert config.advertised(plain, 1234) == ("public", 1234)  # unnamed: the first listener's
    assert config.advertised(tls, 5678) == ("tls", 5678)  # port 0: the bound one
    assert BrokerConfig(data_dir=tmp_path).listener.name == "PLAINTEXT"
