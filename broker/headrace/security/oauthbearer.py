"""OAUTHBEARER token validation: JWTs checked with PyJWT against a JWKS, as Kafka's
``OAuthBearerValidatorCallbackHandler`` does (KIP-768).

The keys come from ``sasl.oauthbearer.jwks.endpoint.url``: a ``file:`` URL (or a plain path),
re-read when the file changes, or an ``http(s):`` URL fetched with aiohttp and refreshed every
``sasl.oauthbearer.jwks.endpoint.refresh.ms``; a token naming a key id the set lacks triggers
one refetch, at most once per :data:`UNKNOWN_KID_REFETCH_SECONDS` (so tokens with made-up key
ids cannot make the broker hammer the identity provider). A token must be signed with an
asymmetric algorithm, unexpired (``exp`` required, ``sasl.oauthbearer.clock.skew.seconds`` of
leeway), from the expected issuer and for an expected audience when those are configured, and
carry the subject claim (``sasl.oauthbearer.sub.claim.name``) that becomes the principal.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import jwt

#: Largest JWKS document accepted from a file or an endpoint.
MAX_JWKS_BYTES = 1024 * 1024
UNKNOWN_KID_REFETCH_SECONDS = 10.0
FETCH_TIMEOUT_SECONDS = 10.0
#: Asymmetric algorithms only: an HMAC "key" from a public JWKS would let anyone sign.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
              "ES256", "ES384", "ES512", "EdDSA")


class TokenRejected(Exception):
    """The bearer token is not acceptable; ``subject`` is its unverified subject, if any."""

    def __init__(self, reason: str, subject: str = "") -> None:
        super().__init__(reason)
        self.subject = subject


@dataclass(frozen=True, slots=True)
class BearerSettings:
    """Kafka's sasl.oauthbearer.* broker settings."""

    jwks_endpoint_url: str
    expected_issuer: str | None = None
    expected_audience: tuple[str, ...] = ()
    sub_claim_name: str = "sub"
    clock_skew_seconds: int = 30
    jwks_endpoint_refresh_ms: int = 3_600_000


@dataclass
class _Keys:
    keys: jwt.PyJWKSet | None = None
    fetched_at: float = float("-inf")
    refetched_for_unknown_at: float = float("-inf")
    source_stamp: tuple[float, int] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class BearerTokenValidator:
    """Validates bearer tokens; the key set is cached and refreshed as the module says."""

    def __init__(self, settings: BearerSettings) -> None:
        self.settings = settings
        url = urlparse(settings.jwks_endpoint_url)
        if url.scheme in ("http", "https"):
            self._path: Path | None = None
        elif url.scheme in ("file", ""):
            self._path = Path(url.path if url.scheme else settings.jwks_endpoint_url)
        else:
            raise ValueError(f"JWKS endpoint URL must be http(s) or file, got "
                             f"{settings.jwks_endpoint_url!r}")
        self._cache = _Keys()

    async def validate(self, token: str) -> tuple[str, int]:
        """(subject, expiry in ms since the epoch) of a valid token; :class:`TokenRejected`."""
        settings = self.settings
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise TokenRejected(f"malformed token: {error}") from None
        subject = unverified.get(settings.sub_claim_name)
        claimed = subject if isinstance(subject, str) else ""
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise TokenRejected(f"token algorithm {algorithm!r} is not accepted", claimed)
        key = await self._key(header.get("kid"), claimed)
        try:
            claims = jwt.decode(
                token, key.key, algorithms=[algorithm],
                audience=list(settings.expected_audience) or None,
                issuer=settings.expected_issuer, leeway=settings.clock_skew_seconds,
                options={"require": ["exp", settings.sub_claim_name],
                         "verify_aud": bool(settings.expected_audience)},
            )
        except jwt.PyJWTError as error:
            raise TokenRejected(f"invalid token: {error}", claimed) from None
        subject = claims.get(settings.sub_claim_name)
        if not isinstance(subject, str) or not subject:
            raise TokenRejected(f"claim {settings.sub_claim_name!r} is not a non-empty string",
                                claimed)
        return subject, int(float(claims["exp"]) * 1000)

    async def _key(self, kid: object, claimed: str) -> jwt.PyJWK:
        keys = await self._current_keys()
        found = _find(keys, kid)
        if found is None:
            now = time.monotonic()
            cache = self._cache
            if now - cache.refetched_for_unknown_at >= UNKNOWN_KID_REFETCH_SECONDS:
                cache.refetched_for_unknown_at = now
                keys = await self._current_keys(force=True)
                found = _find(keys, kid)
        if found is None:
            raise TokenRejected(f"no key {kid!r} in the JWKS", claimed)
        return found

    async def _current_keys(self, *, force: bool = False) -> jwt.PyJWKSet | None:
        cache = self._cache
        async with cache.lock:
            now = time.monotonic()
            if self._path is not None:
                stamp = await asyncio.to_thread(_stamp, self._path)
                if force or stamp != cache.source_stamp:
                    cache.keys = await asyncio.to_thread(_read_file, self._path)
                    cache.source_stamp = stamp
                return cache.keys
            stale = now - cache.fetched_at >= self.settings.jwks_endpoint_refresh_ms / 1000
            if force or stale or cache.keys is None:
                try:
                    cache.keys = _parse(await _fetch(self.settings.jwks_endpoint_url))
                    cache.fetched_at = now
                except (TimeoutError, OSError, ValueError, jwt.PyJWTError) as error:
                    if cache.keys is None:
                        raise TokenRejected(f"cannot get the JWKS: {error}") from None
            return cache.keys


def _find(keys: jwt.PyJWKSet | None, kid: object) -> jwt.PyJWK | None:
    if keys is None:
        return None
    if kid is None:
        return keys.keys[0] if len(keys.keys) == 1 else None
    return next((key for key in keys.keys if key.key_id == kid), None)


def _stamp(path: Path) -> tuple[float, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime, status.st_size


def _read_file(path: Path) -> jwt.PyJWKSet | None:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_JWKS_BYTES + 1)
    except OSError:
        return None
    try:
        return _parse(data)
    except (ValueError, jwt.PyJWTError):
        return None


def _parse(data: bytes) -> jwt.PyJWKSet:
    if len(data) > MAX_JWKS_BYTES:
        raise ValueError(f"JWKS larger than {MAX_JWKS_BYTES} bytes")
    return jwt.PyJWKSet.from_dict(json.loads(data))


async def _fetch(url: str) -> bytes:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as client, client.get(url) as response:
        if response.status != 200:
            raise ValueError(f"{url} answered HTTP {response.status}")
        data = await response.content.read(MAX_JWKS_BYTES + 1)
        return data


def audience_list(text: str | None) -> Sequence[str]:
    """Kafka's comma-separated sasl.oauthbearer.expected.audience."""
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


__all__ = ["BearerSettings", "BearerTokenValidator", "TokenRejected", "audience_list"]
