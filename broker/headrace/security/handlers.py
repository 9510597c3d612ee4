"""Kafka's SASL and SCRAM-credential APIs: SaslHandshake (17), SaslAuthenticate (36),
DescribeUserScramCredentials (50) and AlterUserScramCredentials (51, KIP-554).

The two SASL handlers move the connection's :class:`~headrace.core.requests.SaslState` through
the :class:`~headrace.security.sasl.SaslAuthenticator` and set the session's principal; the
pipeline's authenticate step is what refuses everything else until they succeed, and closes the
connection after a failure. On a listener without SASL, SaslHandshake gets ILLEGAL_SASL_STATE,
as from Kafka's ``KafkaApis``.
"""

from __future__ import annotations

import datetime
import functools
from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode

from headrace.core.requests import ApiHandler, KafkaApi, RequestContext
from headrace.core.responses import build
from headrace.core.security import Action, Operation, ResourceType
from headrace.security.sasl import AuthenticationFailed, SaslAuthenticator
from headrace.security.scram import MECHANISMS, Deletion, ScramCredentials, Upsertion

if TYPE_CHECKING:
    from headrace.core.api_types import (
        AlterUserScramCredentialsRequests,
        AlterUserScramCredentialsResponses,
        DescribeUserScramCredentialsRequests,
        DescribeUserScramCredentialsResponses,
        SaslAuthenticateRequests,
        SaslAuthenticateResponses,
        SaslHandshakeRequests,
        SaslHandshakeResponses,
    )

SASL_HANDSHAKE: KafkaApi[SaslHandshakeRequests, SaslHandshakeResponses] = KafkaApi(17)
SASL_AUTHENTICATE: KafkaApi[SaslAuthenticateRequests, SaslAuthenticateResponses] = KafkaApi(36)
DESCRIBE_USER_SCRAM_CREDENTIALS: KafkaApi[
    DescribeUserScramCredentialsRequests, DescribeUserScramCredentialsResponses
] = KafkaApi(50)
ALTER_USER_SCRAM_CREDENTIALS: KafkaApi[
    AlterUserScramCredentialsRequests, AlterUserScramCredentialsResponses
] = KafkaApi(51)
CLUSTER = "kafka-cluster"


def _failed_message(mechanism: str | None) -> str:
    # Kafka's wording; the reason (unknown user or wrong password) is only in the audit log.
    return ("Authentication failed during authentication due to invalid credentials with "
            f"SASL mechanism {mechanism}")


async def handle_sasl_handshake(
    authenticator: SaslAuthenticator, request: SaslHandshakeRequests, ctx: RequestContext
) -> SaslHandshakeResponses:
    cls = SASL_HANDSHAKE.response(ctx.api_version)
    state = ctx.session.sasl
    if state is None:
        return build(cls, error_code=ErrorCode.illegal_sasl_state, mechanisms=())
    refusal = authenticator.handshake(state, request.mechanism, raw_tokens=ctx.api_version == 0)
    code = ErrorCode.none if refusal is None else ErrorCode[refusal]
    return build(cls, error_code=code, mechanisms=authenticator.mechanisms)


async def handle_sasl_authenticate(
    authenticator: SaslAuthenticator, request: SaslAuthenticateRequests, ctx: RequestContext
) -> SaslAuthenticateResponses:
    cls = SASL_AUTHENTICATE.response(ctx.api_version)
    state = ctx.session.sasl
    if state is None or state.exchange is None or state.raw_tokens:
        return build(cls, error_code=ErrorCode.illegal_sasl_state,
                     error_message="SaslAuthenticate without a SaslHandshake v1 first",
                     auth_bytes=b"")
    try:
        reply = await authenticator.authenticate(ctx.session, request.auth_bytes)
    except AuthenticationFailed:
        return build(cls, error_code=ErrorCode.sasl_authentication_failed,
                     error_message=_failed_message(state.mechanism), auth_bytes=b"")
    return build(cls, error_code=ErrorCode.none, error_message=None, auth_bytes=reply.challenge,
                 session_lifetime=datetime.timedelta(milliseconds=reply.session_lifetime_ms))


async def handle_describe_user_scram_credentials(
    credentials: ScramCredentials, request: DescribeUserScramCredentialsRequests,
    ctx: RequestContext,
) -> DescribeUserScramCredentialsResponses:
    classes = DESCRIBE_USER_SCRAM_CREDENTIALS.classes(ctx.api_version)
    cls = DESCRIBE_USER_SCRAM_CREDENTIALS.response(ctx.api_version)
    if (int(ResourceType.CLUSTER), CLUSTER) in ctx.denied:
        return build(cls, error_code=ErrorCode.cluster_authorization_failed,
                     error_message=None, results=())
    users = credentials.users()
    asked = [user.name for user in request.users] if request.users else sorted(users)
    results = []
    seen: set[str] = set()
    for name in asked:
        if name in seen:
            results.append(classes.DescribeUserScramCredentialsResult(
                user=name, error_code=ErrorCode.duplicate_resource,
                error_message=f"Cannot describe SCRAM credentials for the same user twice in "
                f"a single request: {name}", credential_infos=()))
            continue
        seen.add(name)
        mechanisms = users.get(name)
        if not mechanisms:
            results.append(classes.DescribeUserScramCredentialsResult(
                user=name, error_code=ErrorCode.resource_not_found,
                error_message=f"Attempt to describe a user credential that does not exist: "
                f"{name}", credential_infos=()))
            continue
        infos = tuple(
            classes.CredentialInfo(mechanism=MECHANISMS[mechanism][0],
                                   iterations=credential.iterations)
            for mechanism, credential in sorted(mechanisms.items())
        )
        results.append(classes.DescribeUserScramCredentialsResult(
            user=name, error_code=ErrorCode.none, error_message=None, credential_infos=infos))
    return build(cls, error_code=ErrorCode.none, error_message=None, results=tuple(results))


async def handle_alter_user_scram_credentials(
    credentials: ScramCredentials, request: AlterUserScramCredentialsRequests,
    ctx: RequestContext,
) -> AlterUserScramCredentialsResponses:
    classes = ALTER_USER_SCRAM_CREDENTIALS.classes(ctx.api_version)
    cls = ALTER_USER_SCRAM_CREDENTIALS.response(ctx.api_version)
    if (int(ResourceType.CLUSTER), CLUSTER) in ctx.denied:
        users = dict.fromkeys([d.name for d in request.deletions]
                              + [u.name for u in request.upsertions])
        return build(cls, results=tuple(
            classes.AlterUserScramCredentialsResult(
                user=user, error_code=ErrorCode.cluster_authorization_failed,
                error_message=None)
            for user in users))
    outcome = await credentials.alter(
        [Upsertion(u.name, int(u.mechanism), int(u.iterations), u.salt, u.salted_password)
         for u in request.upsertions],
        [Deletion(d.name, int(d.mechanism)) for d in request.deletions],
    )
    return build(cls, results=tuple(
        classes.AlterUserScramCredentialsResult(
            user=result.user,
            error_code=ErrorCode.none if result.error is None else ErrorCode[result.error],
            error_message=result.message)
        for result in outcome))


def _on_cluster(operation: Operation) -> Any:
    def actions(_request: object) -> list[Action]:
        return [Action(operation, ResourceType.CLUSTER, CLUSTER)]

    return actions


def sasl_api_handlers(
    authenticator: SaslAuthenticator, credentials: ScramCredentials
) -> list[ApiHandler[Any, Any]]:
    """The four APIs; SaslHandshake and SaslAuthenticate need no authorization (they are what
    makes a principal), the credential APIs DESCRIBE/ALTER on the cluster, as in Kafka."""
    return [
        SASL_HANDSHAKE.handler(0, 1, functools.partial(handle_sasl_handshake, authenticator)),
        SASL_AUTHENTICATE.handler(
            0, 2, functools.partial(handle_sasl_authenticate, authenticator)),
        DESCRIBE_USER_SCRAM_CREDENTIALS.handler(
            0, 0, functools.partial(handle_describe_user_scram_credentials, credentials),
            _on_cluster(Operation.DESCRIBE)),
        ALTER_USER_SCRAM_CREDENTIALS.handler(
            0, 0, functools.partial(handle_alter_user_scram_credentials, credentials),
            _on_cluster(Operation.ALTER)),
    ]


__all__ = ["sasl_api_handlers"]
