"""TLS for Kafka listeners and inter-broker clients: contexts from PEM files, re-read on change.

:class:`TlsContexts` builds the server context (the broker's certificate and key, client
certificates asked for or required per ``ssl.client.auth``, trusted from the CA file) and the
client context other brokers are reached with (the same certificate as client certificate, the
same CA file as trust, host names checked as Kafka's default
``ssl.endpoint.identification.algorithm=https`` does). Each call looks at the files' identity
(inode, size, mtime): a rotated certificate is loaded for the next connection without a
restart; a half-written or broken file keeps the previous contexts (logged once per change).

:func:`certificate_principal` is the mTLS principal: the client certificate's subject as an
RFC 2253 name (what Java's ``X500Principal.getName()`` returns) through Kafka's
``ssl.principal.mapping.rules`` (:mod:`~headrace.security.principal_mapping`).
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.x509.name import _NAMEOID_TO_NAME, Name, NameAttribute

from headrace.core.config import ClientAuth, TlsConfig
from headrace.core.security import Principal
from headrace.security.principal_mapping import principal_mapper

log = logging.getLogger(__name__)

_VERIFY = {
    ClientAuth.NONE: ssl.CERT_NONE,
    ClientAuth.REQUESTED: ssl.CERT_OPTIONAL,
    ClientAuth.REQUIRED: ssl.CERT_REQUIRED,
}

#: What identifies a file's content for reloading: (inode, size, mtime in ns).
_FileIdentity = tuple[int, int, int] | None


def _identity(path: Path | None) -> _FileIdentity:
    if path is None:
        return None
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns


class TlsContexts:
    """The broker's server and client SSLContexts, rebuilt when a PEM file changes."""

    def __init__(self, config: TlsConfig) -> None:
        self.config = config
        self._files = (config.cert, config.key, config.ca)
        self._identities: tuple[_FileIdentity, ...] = ()
        self._failed: tuple[_FileIdentity, ...] | None = None
        self._server: ssl.SSLContext | None = None
        self._client: ssl.SSLContext | None = None
        self.map_name = principal_mapper(config.principal_mapping_rules)
        self._refresh(first=True)

    def server(self) -> ssl.SSLContext:
        """The context for the next accepted TLS connection."""
        self._refresh()
        assert self._server is not None
        return self._server

    def client(self) -> ssl.SSLContext:
        """The context for the next connection to another broker's TLS listener."""
        self._refresh()
        assert self._client is not None
        return self._client

    def _refresh(self, *, first: bool = False) -> None:
        identities = tuple(_identity(path) for path in self._files)
        if identities == self._identities or identities == self._failed:
            return
        try:
            server, client = self._load()
        except (OSError, ssl.SSLError, ValueError) as error:
            if first:
                raise ValueError(f"cannot load TLS files ({self._describe()}): "
                                 f"{_reason(error)}") from None
            self._failed = identities
            log.warning("TLS files changed but do not load (%s): %s; keeping the previous "
                        "certificate", self._describe(), _reason(error))
            return
        if not first:
            log.info("TLS files changed: new connections get the new certificate")
        self._server, self._client = server, client
        self._identities, self._failed = identities, None

    def _load(self) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        config = self.config
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.minimum_version = ssl.TLSVersion.TLSv1_2
        server.load_cert_chain(config.cert, config.key)
        server.verify_mode = _VERIFY[config.client_auth]
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.minimum_version = ssl.TLSVersion.TLSv1_2
        client.load_cert_chain(config.cert, config.key)
        if config.ca is not None:
            server.load_verify_locations(config.ca)
            client.load_verify_locations(config.ca)
        else:
            server.load_default_certs(ssl.Purpose.CLIENT_AUTH)
            client.load_default_certs(ssl.Purpose.SERVER_AUTH)
        return server, client

    def _describe(self) -> str:
        return ", ".join(str(path) for path in self._files if path is not None)

    def principal(self, certificate_der: bytes | None) -> Principal | None:
        """The mTLS principal of a verified peer certificate (None: the client sent none)."""
        if certificate_der is None:
            return None
        return certificate_principal(certificate_der, self.map_name)


def _reason(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError) and error.reason:
        return f"{error.library or 'SSL'}: {error.reason}".lower()
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error)


def certificate_principal(certificate_der: bytes, map_name: Callable[[str], str]) -> Principal:
    """``User:<mapped subject>`` of a DER certificate; NoMatchingRule if no rule applies."""
    subject = x509.load_der_x509_certificate(certificate_der).subject
    return Principal("User", map_name(rfc2253_name(subject)))


def rfc2253_name(name: Name) -> str:
    """A distinguished name as Java's ``X500Principal.getName()`` (RFC 2253) writes it: the
    last RDN first, no spaces, keywords for the RFC's attribute types and ``OID=#hex`` (the
    value's DER) for the others, such as emailAddress."""
    return ",".join(
        "+".join(_attribute(attribute) for attribute in rdn)
        for rdn in reversed(name.rdns)
    )


def _attribute(attribute: NameAttribute[str | bytes]) -> str:
    keyword = _NAMEOID_TO_NAME.get(attribute.oid)
    if keyword is not None:
        return attribute.rfc4514_string()
    value = attribute.value
    raw = value.encode() if isinstance(value, str) else value
    tag = attribute._type.value  # the ASN.1 string type the certificate used
    return f"{attribute.oid.dotted_string}=#{_der(tag, raw).hex()}"


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content
