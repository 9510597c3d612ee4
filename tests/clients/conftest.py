"""The tests of real clients use the suite-wide broker fixtures (tests/support/fixtures.py).

These names stay importable from here for modules of the main tree that still import them
(tests/compat: its conftest and test modules); new code imports from tests.support instead.
"""

from __future__ import annotations

from tests.support.brokers import BrokerProcess
from tests.support.fixtures import broker, fresh_broker, start_broker

__all__ = ["BrokerProcess", "broker", "fresh_broker", "start_broker"]
