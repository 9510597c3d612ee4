"""The tests of real clients use the suite-wide broker fixtures (tests/support/fixtures.py).

The names stay importable from here for modules that still import them (tests/compat/conftest.py
in the main tree); new code relies on the fixtures being registered suite-wide instead.
"""

from __future__ import annotations

from tests.support.fixtures import broker, fresh_broker, start_broker

__all__ = ["broker", "fresh_broker", "start_broker"]
