"""The control plane's throwaway PKI: both backends (the cryptography package, the openssl CLI)
issue certificates that chain to the CA, for the names and uses the components need."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.peers.kube import make_pki

OPENSSL = shutil.which("openssl")

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl CLI to inspect certs")


def openssl(*args: str) -> str:
    assert OPENSSL is not None
    done = subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("backend", ["cryptography", "openssl"])
def test_the_pki_chains_to_its_ca_with_the_names_and_uses_needed(
    tmp_path: Path, backend: str
) -> None:
    if backend == "cryptography":
        pytest.importorskip("cryptography")
    pki = make_pki(tmp_path, backend=backend)
    for pair in (pki.apiserver, *pki.clients.values()):
        assert openssl("verify", "-CAfile", str(pki.ca.cert), str(pair.cert)).strip().endswith(
            ": OK"
        )
        assert pair.key.stat().st_mode & 0o077 == 0
    serving = openssl("x509", "-in", str(pki.apiserver.cert), "-noout", "-ext",
                      "subjectAltName,extendedKeyUsage")
    assert "IP Address:127.0.0.1" in serving and "IP Address:10.96.0.1" in serving
    assert "DNS:kubernetes.default.svc.cluster.local" in serving
    assert "TLS Web Server Authentication" in serving
    admin = openssl("x509", "-in", str(pki.clients["admin"].cert), "-noout", "-subject", "-ext",
                    "extendedKeyUsage")
    assert "O = system:masters" in admin and "TLS Web Client Authentication" in admin
    # The service-account public key is the signing key's.
    derived = openssl("pkey", "-in", str(pki.service_account_key), "-pubout")
    assert derived == pki.service_account_public_key.read_text()
