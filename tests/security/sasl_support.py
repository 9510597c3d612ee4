"""What the SASL tests share: a signing key and its JWKS, tokens, and client settings.

The broker under test (``sasl_broker`` in conftest.py) serves one SASL_PLAINTEXT listener
offering every mechanism, with the user :data:`USER` created by ``--scram-user`` and
OAUTHBEARER tokens checked against :data:`ISSUER`/:data:`AUDIENCE` and a JWKS file.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

USER = "alice"
PASSWORD = "alice-secret"
ISSUER = "https://issuer.test"
AUDIENCE = "headrace-test"
KEY_ID = "test-key-1"
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: A key the JWKS does not hold: tokens it signs must be refused.
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks() -> dict[str, Any]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(_KEY.public_key()))
    return {"keys": [{**public, "kid": KEY_ID, "alg": "RS256", "use": "sig"}]}


def write_jwks(path: Path) -> Path:
    path.write_text(json.dumps(jwks()))
    return path


def token(*, subject: str = "bob", issuer: str = ISSUER, audience: str = AUDIENCE,
          lifetime: float = 300.0, foreign_key: bool = False) -> tuple[str, float]:
    """A signed JWT and its expiry (seconds since the epoch), as ``oauth_cb`` returns them."""
    now = time.time()
    expires = now + lifetime
    claims = {"sub": subject, "iss": issuer, "aud": audience, "iat": int(now) - 1,
              "exp": int(expires), "jti": uuid.uuid4().hex}
    key = _OTHER_KEY if foreign_key else _KEY
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KEY_ID}), expires


#: The SASL listener of the brokers these flags start (their PLAINTEXT one is for setup).
SASL_LISTENER = "SASL_PLAINTEXT"


def broker_flags(jwks_url: str) -> tuple[str, ...]:
    return (
        "--listener", f"{SASL_LISTENER}=SASL_PLAINTEXT://127.0.0.1:0",
        "--sasl-mechanisms", ",".join((*MECHANISMS, "OAUTHBEARER")),
        "--scram-user", f"{USER}:{PASSWORD}",
        "--sasl-oauthbearer-jwks-endpoint-url", jwks_url,
        "--sasl-oauthbearer-expected-issuer", ISSUER,
        "--sasl-oauthbearer-expected-audience", AUDIENCE,
        "--connection-failed-authentication-delay-ms", "10",
    )


def confluent_sasl(mechanism: str, user: str = USER, password: str = PASSWORD,
                   **extra: Any) -> dict[str, Any]:
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password, **extra}


def confluent_oauth(token_and_expiry: Any, **extra: Any) -> dict[str, Any]:
    """librdkafka OAUTHBEARER with ``oauth_cb`` handing out the given token."""
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": lambda _config: token_and_expiry, **extra}
