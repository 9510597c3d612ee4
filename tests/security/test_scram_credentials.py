"""SCRAM credentials: kept hashed (never the password), changed with KIP-554's
AlterUserScramCredentials through confluent-kafka's AdminClient and described back, durable
across a restart, and created by ``--scram-user`` only when absent (a restart does not undo a
password change). Also the store's own refusals, in Kafka's codes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from headrace.security.records import MemorySecurityRecords
from headrace.security.scram import (
    Deletion,
    ScramCredentials,
    Upsertion,
    credential_from_password,
    password_matches,
)
from tests.security.sasl_support import PASSWORD, USER, confluent_sasl
from tests.support.brokers import BrokerProcess
from tests.support.clients import confluent_admin, confluent_producer
from tests.support.waiting import eventually


def _authenticates(bootstrap: str, mechanism: str, user: str, password: str) -> bool:
    errors: list[KafkaError] = []
    producer = confluent_producer(bootstrap, confluent_sasl(mechanism, user, password,
                                                            error_cb=errors.append))

    def answered() -> str | None:
        try:
            producer.list_topics(timeout=0.5)
            return "ok"
        except KafkaException:
            producer.poll(0)
            return "refused" if errors else None

    return eventually(answered, timeout=20, interval=0, message="metadata or refusal") == "ok"


def test_alter_describe_restart_and_scram_user_once(
        start_sasl_broker: Callable[..., BrokerProcess], tmp_path: Path) -> None:
    data = tmp_path / "kept"
    broker = start_sasl_broker(data_dir=data)
    admin = confluent_admin(broker.bootstrap, confluent_sasl("SCRAM-SHA-512"))
    sha256, sha512 = ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion(USER, ScramCredentialInfo(sha256, 8192), b"changed"),
        UserScramCredentialUpsertion("carol", ScramCredentialInfo(sha512, 4096), b"carol-pw"),
    ])
    for future in futures.values():
        future.result(20)
    described = admin.describe_user_scram_credentials().result(20)
    infos = {user: {(i.mechanism, i.iterations) for i in d.scram_credential_infos}
             for user, d in described.items()}
    assert infos == {USER: {(sha256, 8192), (sha512, 4096)}, "carol": {(sha512, 4096)}}
    assert _authenticates(broker.bootstrap, "SCRAM-SHA-256", USER, "changed")
    assert not _authenticates(broker.bootstrap, "SCRAM-SHA-256", USER, PASSWORD)
    stored = (data / "security.json").read_text()
    assert "changed" not in stored and PASSWORD not in stored and "carol-pw" not in stored

    broker.restart()  # same --scram-user alice:PASSWORD: alice exists, so nothing is created
    assert _authenticates(broker.bootstrap, "SCRAM-SHA-256", USER, "changed")
    assert _authenticates(broker.bootstrap, "SCRAM-SHA-512", "carol", "carol-pw")
    assert _authenticates(broker.bootstrap, "PLAIN", "carol", "carol-pw")
    assert broker.log().count(f"created SCRAM credentials of user {USER}") == 1

    admin = confluent_admin(broker.bootstrap, confluent_sasl("SCRAM-SHA-512"))
    admin.alter_user_scram_credentials(
        [UserScramCredentialDeletion("carol", sha512)])["carol"].result(20)
    assert not _authenticates(broker.bootstrap, "SCRAM-SHA-512", "carol", "carol-pw")
    missing = admin.describe_user_scram_credentials(["carol"])["carol"]
    with pytest.raises(KafkaException) as raised:
        missing.result(20)
    assert raised.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
    eventually(lambda: "by User:alice" in broker.log(), timeout=5, message="audit")


async def test_alterations_are_refused_with_kafkas_codes() -> None:
    credentials = ScramCredentials(MemorySecurityRecords())
    good = Upsertion("dave", 1, 4096, b"salt", b"salted")
    results = await credentials.alter(
        [good, Upsertion("erin", 1, 100, b"s", b"p"), Upsertion("", 1, 4096, b"s", b"p"),
         Upsertion("frank", 9, 4096, b"s", b"p"), Upsertion("gina", 1, 4096, b"s", b"p"),
         Upsertion("gina", 1, 4096, b"s", b"q")],
        [Deletion("henry", 2)],
    )
    errors = {result.user: result.error for result in results}
    assert errors == {"henry": "resource_not_found", "dave": None,
                      "erin": "unacceptable_credential", "": "unacceptable_credential",
                      "frank": "unsupported_sasl_mechanism", "gina": "duplicate_resource"}
    assert set(credentials.users()) == {"dave"}


def test_plain_checks_a_password_against_the_stored_keys() -> None:
    credential = credential_from_password("SCRAM-SHA-512", "right", 4096)
    assert password_matches("SCRAM-SHA-512", credential, "right")
    assert not password_matches("SCRAM-SHA-512", credential, "wrong")
