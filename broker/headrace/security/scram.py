"""SCRAM credentials (RFC 5802, Kafka's KIP-84/KIP-554), stored hashed in :class:`SecurityRecords`.

A credential is what Kafka's ``ScramCredential`` keeps: the salt, the iteration count and the
two keys derived from the salted password (``StoredKey = H(HMAC(salted, "Client Key"))``,
``ServerKey = HMAC(salted, "Server Key")``), never the password. Verifying a SCRAM client's
proof needs only those keys (cheap); deriving a credential from a password is PBKDF2 (CPU for
thousands of iterations), so :func:`credential_from_password` and :func:`password_matches` are
meant to run off the event loop. Records of kind ``"scram"`` map a user name to a JSON object
of its mechanisms; :class:`ScramCredentials` reads them from memory and applies
AlterUserScramCredentials with Kafka's per-user result codes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from headrace.security.records import SecurityRecords

KIND = "scram"

#: Kafka's ScramMechanism: name → (wire code of KIP-554, hash).
MECHANISMS: dict[str, tuple[int, str]] = {
    "SCRAM-SHA-256": (1, "sha256"),
    "SCRAM-SHA-512": (2, "sha512"),
}
MECHANISM_BY_CODE = {code: name for name, (code, _) in MECHANISMS.items()}
#: Kafka's bounds on a credential's iterations (ScramMechanism.minIterations/maxIterations).
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
DEFAULT_ITERATIONS = 4096


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """One user's credential for one mechanism: what the server needs, not the password."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    def to_json(self) -> dict[str, object]:
        return {"salt": _b64(self.salt), "iterations": self.iterations,
                "stored_key": _b64(self.stored_key), "server_key": _b64(self.server_key)}

    @classmethod
    def from_json(cls, value: Mapping[str, object]) -> ScramCredential:
        return cls(base64.b64decode(str(value["salt"])), int(str(value["iterations"])),
                   base64.b64decode(str(value["stored_key"])),
                   base64.b64decode(str(value["server_key"])))


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def credential_from_salted_password(
    mechanism: str, salt: bytes, salted_password: bytes, iterations: int
) -> ScramCredential:
    """The keys of an already salted password (what AlterUserScramCredentials carries): cheap."""
    digest = MECHANISMS[mechanism][1]
    client_key = hmac.digest(salted_password, b"Client Key", digest)
    stored_key = hashlib.new(digest, client_key).digest()
    server_key = hmac.digest(salted_password, b"Server Key", digest)
    return ScramCredential(salt, iterations, stored_key, server_key)


def salt_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """SCRAM's ``Hi(password, salt, i)``: PBKDF2, CPU-bound — call it off the event loop."""
    return hashlib.pbkdf2_hmac(MECHANISMS[mechanism][1], password.encode("utf-8"), salt,
                               iterations)


def credential_from_password(
    mechanism: str, password: str, iterations: int = DEFAULT_ITERATIONS,
    salt: bytes | None = None,
) -> ScramCredential:
    """A new credential for ``password`` (PBKDF2: off the event loop)."""
    salt = salt if salt is not None else secrets.token_bytes(32)
    return credential_from_salted_password(
        mechanism, salt, salt_password(mechanism, password, salt, iterations), iterations
    )


def password_matches(mechanism: str, credential: ScramCredential, password: str) -> bool:
    """Whether ``password`` is the one ``credential`` was made from (PLAIN's check; PBKDF2)."""
    derived = credential_from_salted_password(
        mechanism, credential.salt,
        salt_password(mechanism, password, credential.salt, credential.iterations),
        credential.iterations,
    )
    return hmac.compare_digest(derived.stored_key, credential.stored_key)


@dataclass(frozen=True, slots=True)
class Upsertion:
    """Set ``user``'s credential of ``mechanism`` (a KIP-554 ScramCredentialUpsertion)."""

    user: str
    mechanism_code: int
    iterations: int
    salt: bytes
    salted_password: bytes


@dataclass(frozen=True, slots=True)
class Deletion:
    """Remove ``user``'s credential of ``mechanism``."""

    user: str
    mechanism_code: int


@dataclass(frozen=True, slots=True)
class UserResult:
    """One user's outcome of an alteration: ``error`` is a Kafka error code name or None."""

    user: str
    error: str | None = None
    message: str | None = None


class ScramCredentials:
    """Every user's SCRAM credentials, read from memory, changed through the records store."""

    def __init__(self, records: SecurityRecords) -> None:
        self._records = records
        self._cache: dict[str, dict[str, ScramCredential]] | None = None
        self._alter_lock = asyncio.Lock()
        records.subscribe(self._changed)

    def _changed(self, kind: str) -> None:
        if kind == KIND:
            self._cache = None

    def users(self) -> dict[str, dict[str, ScramCredential]]:
        """user → mechanism → credential (decoded once per change)."""
        if self._cache is None:
            self._cache = {
                user: {mechanism: ScramCredential.from_json(value)
                       for mechanism, value in json.loads(raw).items()}
                for user, raw in self._records.snapshot(KIND).items()
            }
        return self._cache

    def lookup(self, user: str, mechanism: str) -> ScramCredential | None:
        return self.users().get(user, {}).get(mechanism)

    async def ensure(self, user: str, password: str, mechanisms: Iterable[str],
                     iterations: int = DEFAULT_ITERATIONS) -> list[str]:
        """Create ``user``'s credentials of ``mechanisms`` that are absent (``--scram-user`` at
        start: an existing credential, maybe changed since, is kept). The mechanisms created."""
        missing = [m for m in mechanisms if self.lookup(user, m) is None]
        if not missing:
            return []
        made = {m: await asyncio.to_thread(credential_from_password, m, password, iterations)
                for m in missing}
        async with self._alter_lock:
            current = dict(self.users().get(user, {}))
            for mechanism, credential in made.items():
                current.setdefault(mechanism, credential)
            await self._records.write(KIND, {user: _encode(current)})
        return missing

    async def alter(self, upsertions: Sequence[Upsertion],
                    deletions: Sequence[Deletion]) -> list[UserResult]:
        """Kafka's AlterUserScramCredentials: each user's changes apply together or not at all;
        one result per user, in the order users first appear."""
        by_user: dict[str, list[Upsertion | Deletion]] = {}
        changes: list[Upsertion | Deletion] = [*deletions, *upsertions]
        for change in changes:
            by_user.setdefault(change.user, []).append(change)
        results: list[UserResult] = []
        async with self._alter_lock:
            users = self.users()
            writes: dict[str, bytes | None] = {}
            for user, of_user in by_user.items():
                refusal = _refusal(user, of_user, users.get(user, {}))
                if refusal is not None:
                    results.append(refusal)
                    continue
                current = dict(users.get(user, {}))
                for change in of_user:
                    mechanism = MECHANISM_BY_CODE[change.mechanism_code]
                    if isinstance(change, Deletion):
                        current.pop(mechanism, None)
                    else:
                        current[mechanism] = credential_from_salted_password(
                            mechanism, change.salt, change.salted_password, change.iterations)
                writes[user] = _encode(current) if current else None
                results.append(UserResult(user))
            if writes:
                await self._records.write(KIND, writes)
        return results


def _encode(credentials: Mapping[str, ScramCredential]) -> bytes:
    return json.dumps({m: c.to_json() for m, c in sorted(credentials.items())}).encode()


def _refusal(user: str, changes: Sequence[Upsertion | Deletion],
             existing: Mapping[str, ScramCredential]) -> UserResult | None:
    """Kafka's checks of one user's changes, in its order of precedence."""
    if not user:
        return UserResult(user, "unacceptable_credential", "Username must not be empty")
    mechanisms = [change.mechanism_code for change in changes]
    if len(set(mechanisms)) != len(mechanisms):
        return UserResult(user, "duplicate_resource",
                          "A user credential cannot be altered twice in the same request")
    for change in changes:
        mechanism = MECHANISM_BY_CODE.get(change.mechanism_code)
        if mechanism is None:
            return UserResult(user, "unsupported_sasl_mechanism",
                              f"Unknown SCRAM mechanism {change.mechanism_code}")
        if isinstance(change, Deletion):
            if mechanism not in existing:
                return UserResult(user, "resource_not_found",
                                  f"Attempt to delete a user credential that does not exist "
                                  f"({mechanism})")
        elif not MIN_ITERATIONS <= change.iterations <= MAX_ITERATIONS:
            return UserResult(user, "unacceptable_credential",
                              f"Iterations must be between {MIN_ITERATIONS} and "
                              f"{MAX_ITERATIONS}, got {change.iterations}")
        elif not change.salt or not change.salted_password:
            return UserResult(user, "unacceptable_credential",
                              "Salt and salted password must not be empty")
    return None


__all__ = [
    "DEFAULT_ITERATIONS",
    "KIND",
    "MAX_ITERATIONS",
    "MECHANISMS",
    "MECHANISM_BY_CODE",
    "MIN_ITERATIONS",
    "Deletion",
    "ScramCredential",
    "ScramCredentials",
    "Upsertion",
    "UserResult",
    "credential_from_password",
    "credential_from_salted_password",
    "password_matches",
    "salt_password",
]
