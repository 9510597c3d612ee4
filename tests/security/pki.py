"""Throwaway certificates for the TLS tests (trustme): a CA the broker trusts, one it does not,
a broker certificate for 127.0.0.1, and client certificates, all written as PEM files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """PEM files under one directory."""

    #: The CA the broker trusts (to issue more certificates) and its PEM file.
    authority: trustme.CA
    ca: Path
    broker: KeyPair
    #: Subject CN=alice,OU=Engineering,O=Acme (RFC 2253, last RDN first), signed by ``ca``.
    alice: KeyPair
    #: A CA the broker does not trust, and a client certificate it signed.
    other_ca: Path
    stranger: KeyPair

    def broker_flags(self, client_auth: str = "requested") -> tuple[str, ...]:
        return ("--tls-cert", str(self.broker.cert), "--tls-key", str(self.broker.key),
                "--tls-ca", str(self.ca), "--tls-client-auth", client_auth)


def write_pair(directory: Path, name: str, cert: trustme.LeafCert) -> KeyPair:
    pair = KeyPair(directory / f"{name}.pem", directory / f"{name}-key.pem")
    pair.cert.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(pair.key))
    return pair


def broker_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("127.0.0.1", "localhost")


def first_certificate_der(path: Path) -> bytes:
    """The DER of the first certificate in a PEM file."""
    import ssl

    pem = path.read_text()
    end = pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return ssl.PEM_cert_to_DER_cert(pem[:end] + "\n")


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    other.cert_pem.write_to_path(str(directory / "other-ca.pem"))
    alice = ca.issue_cert("alice@example.com", common_name="alice",
                          organization_name="Acme", organization_unit_name="Engineering")
    stranger = other.issue_cert("mallory@example.com", common_name="mallory")
    return Pki(
        authority=ca,
        ca=directory / "ca.pem",
        broker=write_pair(directory, "broker", broker_cert(ca)),
        alice=write_pair(directory, "alice", alice),
        other_ca=directory / "other-ca.pem",
        stranger=write_pair(directory, "stranger", stranger),
    )
