"""OAUTHBEARER with confluent-kafka's ``oauth_cb``: a JWT signed by the test key is accepted
(its subject becomes the principal), with the JWKS in a file or served over HTTP by aiohttp;
expired, wrong-issuer, wrong-audience and foreign-key tokens are refused."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

from tests.security.sasl_support import confluent_oauth, jwks, token
from tests.support.brokers import BrokerProcess
from tests.support.clients import confluent_admin, confluent_producer
from tests.support.waiting import eventually


def _outcome(bootstrap: str, jwt_and_expiry: tuple[str, float]) -> str:
    """"ok" when a client with this token gets metadata, else the librdkafka error text."""
    errors: list[KafkaError] = []
    # librdkafka refuses to send a token it knows has expired: tell it the token is fresh,
    # so the broker is the one to judge the JWT's own exp.
    handed = (jwt_and_expiry[0], time.time() + 300)
    producer = confluent_producer(bootstrap, confluent_oauth(handed, error_cb=errors.append))

    def answered() -> str | None:
        try:
            producer.list_topics(timeout=0.5)
            return "ok"
        except KafkaException:
            producer.poll(0)  # delivers error_cb
            if errors:
                assert errors[0].code() == KafkaError._AUTHENTICATION, errors[0]
                return str(errors[0].str())
            return None

    return eventually(answered, timeout=20, interval=0, message="metadata or a refusal")


def test_a_valid_token_is_accepted_and_names_the_principal(sasl_broker: BrokerProcess) -> None:
    topic = f"oauth-{uuid.uuid4().hex[:8]}"
    admin = confluent_admin(sasl_broker.bootstrap, confluent_oauth(token(subject="bob")))
    admin.create_topics([NewTopic(topic, 1, 1)], request_timeout=15)[topic].result(20)
    eventually(lambda: f"topic.create topic:{topic} by User:bob" in sasl_broker.log(),
               timeout=10, message="the topic created by User:bob")
    producer = confluent_producer(sasl_broker.bootstrap, confluent_oauth(token()))
    producer.produce(topic, b"with a bearer token")
    assert producer.flush(20) == 0


@pytest.mark.parametrize(("case", "bad"), [
    ("expired", {"lifetime": -120}),
    ("wrong issuer", {"issuer": "https://elsewhere.test"}),
    ("wrong audience", {"audience": "someone-else"}),
    ("foreign key", {"foreign_key": True}),
])
def test_bad_tokens_are_refused(sasl_broker: BrokerProcess, case: str,
                                bad: dict[str, Any]) -> None:
    outcome = _outcome(sasl_broker.bootstrap, token(**bad))
    assert "invalid credentials with SASL mechanism OAUTHBEARER" in outcome, (case, outcome)
    eventually(lambda: "authenticate sasl:OAUTHBEARER by User:bob" in sasl_broker.log(),
               timeout=10, message="the audit line of the refusal")


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, list[int]]]:
    """An aiohttp server of the JWKS on its own loop and thread: (url, requests served)."""
    served: list[int] = []
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def keys(_request: web.Request) -> web.Response:
        served.append(1)
        return web.json_response(jwks())

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/jwks.json", keys)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["port"] = runner.addresses[0][1]
        state["stop"] = asyncio.Event()
        ready.set()
        await state["stop"].wait()
        await runner.cleanup()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield f"http://127.0.0.1:{state['port']}/jwks.json", served
    finally:
        loop.call_soon_threadsafe(state["stop"].set)
        thread.join(10)


def test_jwks_from_an_http_endpoint(start_sasl_broker: Callable[..., BrokerProcess],
                                    jwks_server: tuple[str, list[int]]) -> None:
    url, served = jwks_server
    broker = start_sasl_broker(jwks_url=url)
    assert _outcome(broker.bootstrap, token()) == "ok"
    assert "invalid credentials" in _outcome(broker.bootstrap, token(audience="other"))
    assert served, "the broker fetched the JWKS from the endpoint"
    # Cached: two authentications did not fetch twice (refresh is hourly).
    assert len(served) == 1
