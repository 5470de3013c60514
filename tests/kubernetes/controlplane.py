"""A real Kubernetes control plane as local processes, for the operator's tests.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (which plays the kubelet
of every Node: Nodes become Ready and scheduled Pods become Running, with no containers) run on
127.0.0.1 only, on ports chosen at start, with a throwaway CA and certificates. Binaries come
from ``scripts/k8s-testenv``, which prints their directory; each process logs to
``<work_dir>/logs/<name>.log``.

    plane = ControlPlane(bin_dir, work_dir)
    plane.start()
    plane.kubectl("get", "nodes", check=True)
    plane.stop()

Faults of the control plane itself, for the tests that the operator and the gateway survive
them: ``halt``/``resume`` stop a component and start it again with the same flags and data
(``with plane.down("etcd"): ...`` both), ``compact`` drops etcd's history up to now, and
``second_apiserver`` serves the same etcd on another port, through which changes can be made
while the first one is down.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelplane.backends.local.supervisor import die_with_parent

STARTUP_SECONDS = 120.0
STOP_GRACE_SECONDS = 10.0  # for each group of components
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"  # where kwok draws the fake Pod IPs from
LOG_TAIL_BYTES = 6000

T = TypeVar("T")


def wait_until(check: Callable[[], T | None], what: str, timeout: float = 60) -> T:
    """Poll ``check`` until it returns something other than None or False, and return that;
    fail after ``timeout`` seconds saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports: all bound at once, so none is handed out twice."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _tail(path: Path, limit: int = LOG_TAIL_BYTES) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - limit))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class _Credential:
    cert: Path
    key: Path


class _Authority:
    """A throwaway certificate authority writing PEM files into one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._now = datetime.datetime.now(datetime.UTC)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, f"modelplane-test-{directory.name}-ca")]
        )
        self._name = name
        self.certificate = (
            self._builder(name, self._key.public_key())
            .issuer_name(name)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca = _Credential(directory / "ca.crt", directory / "ca.key")
        self.ca.cert.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(self.ca.key, self._key)

    def _builder(
        self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now - datetime.timedelta(hours=1))
            .not_valid_after(self._now + datetime.timedelta(days=7))
        )

    def issue(
        self,
        name: str,
        common_name: str,
        *,
        organizations: tuple[str, ...] = (),
        server_names: tuple[str, ...] = (),
        server_ips: tuple[str, ...] = (),
    ) -> _Credential:
        """A client certificate (user ``common_name`` in groups ``organizations``), or a serving
        one when ``server_names`` or ``server_ips`` are given."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
            + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        )
        serving = bool(server_names or server_ips)
        builder = (
            self._builder(subject, key.public_key())
            .issuer_name(self._name)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [
                        ExtendedKeyUsageOID.SERVER_AUTH
                        if serving
                        else ExtendedKeyUsageOID.CLIENT_AUTH
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if serving:
            alternative_names: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
            alternative_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
            builder = builder.add_extension(
                x509.SubjectAlternativeName(alternative_names), critical=False
            )
        certificate = builder.sign(self._key, hashes.SHA256())
        credential = _Credential(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        credential.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(credential.key, key)
        return credential


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.touch(mode=0o600)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _stop(group: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each, a bounded wait for them all, then SIGKILL to those still running."""
    for process in group:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in group:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)  # SIGKILL is not ignorable; bounded all the same


class ControlPlaneError(RuntimeError):
    """A component exited or did not become ready; the message carries its log's tail."""


class ControlPlane:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok, on 127.0.0.1.

    ``bin_dir`` is what ``scripts/k8s-testenv`` prints; ``kwok_stages`` defaults to the stages
    it installs beside it. Everything the processes write goes under ``work_dir``.
    """

    def __init__(
        self,
        bin_dir: Path,
        work_dir: Path,
        *,
        kwok_stages: Path | None = None,
        startup_seconds: float = STARTUP_SECONDS,
    ) -> None:
        self.bin_dir = bin_dir.resolve()
        self.work_dir = work_dir.resolve()
        self.kwok_stages = kwok_stages or self.bin_dir.parent / "share" / "kwok-stages.yaml"
        self.startup_seconds = startup_seconds
        self.logs = self.work_dir / "logs"
        self.kubeconfig = self.work_dir / "admin.kubeconfig"
        self.etcd_port, self.etcd_peer_port, self.port, self.kcm_port, self.scheduler_port = (
            _free_ports(5)
        )
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._flags: dict[str, tuple[str, ...]] = {}  # each component's, to start it again
        self._log_handles: list[IO[bytes]] = []
        self._env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        # Nothing reads or writes the user's ~/.kube or ~/.kwok (kwok loads ~/.kwok/kwok.yaml).
        self._env["HOME"] = str(self.work_dir / "home")

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every component and return once the API server is ready, the controllers
        have made the ``default`` ServiceAccount and the scheduler is healthy. On failure,
        everything started is stopped again."""
        for tool in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
            if not (self.bin_dir / tool).is_file():
                raise ControlPlaneError(f"{tool} not found in {self.bin_dir}")
        if not self.kwok_stages.is_file():
            raise ControlPlaneError(f"kwok stages not found at {self.kwok_stages}")
        for directory in (self.logs, self.work_dir / "home"):
            directory.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        deadline = time.monotonic() + self.startup_seconds
        pki = self.work_dir / "pki"
        authority = _Authority(pki)
        serving = authority.issue(
            "apiserver",
            "kube-apiserver",
            server_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            server_ips=("127.0.0.1", str(ipaddress.ip_network(SERVICE_CIDR)[1])),
        )
        # The admin is in system:masters; so is kwok, which stands in for every Node's kubelet
        # (the Node authorizer would hold one kubelet to its own Node). The controller manager
        # and the scheduler get the users that the default RBAC policy binds.
        admin = authority.issue("admin", "modelplane-test-admin", organizations=("system:masters",))
        # Probes go as the admin: verified against the CA for the API server; unverified for
        # kube-controller-manager's and kube-scheduler's /healthz, served with self-signed certs.
        self._tls = ssl.create_default_context(cafile=str(authority.ca.cert))
        self._tls.load_cert_chain(admin.cert, admin.key)
        self._tls_unverified = ssl.create_default_context()
        self._tls_unverified.check_hostname = False
        self._tls_unverified.verify_mode = ssl.CERT_NONE
        kwok = authority.issue("kwok", "kwok-controller", organizations=("system:masters",))
        # The API server's identity when it proxies to aggregated API servers, from a CA of
        # its own; with it kube-apiserver publishes the requestheader CA that the controller
        # manager's and the scheduler's delegated authentication expect to find.
        front_proxy = _Authority(pki / "front-proxy")
        proxy_client = front_proxy.issue("front-proxy-client", "front-proxy-client")
        kcm = authority.issue("kube-controller-manager", "system:kube-controller-manager")
        scheduler = authority.issue("kube-scheduler", "system:kube-scheduler")
        # Service account tokens: signed by the API server (and by the controller manager for
        # its controllers' tokens) with the private key, checked with the public one.
        service_accounts = pki / "service-accounts.key"
        service_accounts_public = pki / "service-accounts.pub"
        signing_key = ec.generate_private_key(ec.SECP256R1())
        _write_key(service_accounts, signing_key)
        service_accounts_public.write_bytes(
            signing_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

        self._write_kubeconfig(self.kubeconfig, authority.ca, admin)
        kcm_config = self._write_kubeconfig(pki / "kcm.kubeconfig", authority.ca, kcm)
        scheduler_config = self._write_kubeconfig(
            pki / "scheduler.kubeconfig", authority.ca, scheduler
        )
        kwok_config = self._write_kubeconfig(pki / "kwok.kubeconfig", authority.ca, kwok)

        etcd_url = self.etcd_url
        peer_url = f"http://127.0.0.1:{self.etcd_peer_port}"
        self._spawn(
            "etcd",
            "--name=modelplane-test",
            f"--data-dir={self.work_dir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=modelplane-test={peer_url}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync",  # throwaway data: no fsync keeps a busy 2-core machine quick
            "--log-level=warn",
        )
        self._wait("etcd", self._etcd_healthy, deadline)

        self._spawn(
            "kube-apiserver",
            f"--etcd-servers={etcd_url}",
            "--advertise-address=127.0.0.1",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--cert-dir={self.work_dir / 'kube-apiserver'}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={authority.ca.cert}",
            "--authorization-mode=Node,RBAC",
            f"--requestheader-client-ca-file={front_proxy.ca.cert}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={proxy_client.cert}",
            f"--proxy-client-key-file={proxy_client.key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={service_accounts_public}",
            f"--service-account-signing-key-file={service_accounts}",
            # The endpoint reconciler would publish 127.0.0.1 as the `kubernetes` Service's
            # endpoint, which validation rejects (loopback): nothing in the tests dials it.
            "--endpoint-reconciler-type=none",
        )
        self._wait("kube-apiserver", self._apiserver_ready, deadline)

        self._spawn(
            "kube-controller-manager",
            f"--kubeconfig={kcm_config}",
            f"--authentication-kubeconfig={kcm_config}",
            f"--authorization-kubeconfig={kcm_config}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.kcm_port}",
            f"--cert-dir={self.work_dir / 'kube-controller-manager'}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={service_accounts}",
            f"--root-ca-file={authority.ca.cert}",
            f"--cluster-signing-cert-file={authority.ca.cert}",
            f"--cluster-signing-key-file={authority.ca.key}",
        )
        self._spawn(
            "kube-scheduler",
            f"--kubeconfig={scheduler_config}",
            f"--authentication-kubeconfig={scheduler_config}",
            f"--authorization-kubeconfig={scheduler_config}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.scheduler_port}",
            f"--cert-dir={self.work_dir / 'kube-scheduler'}",
            "--leader-elect=false",
        )
        self._spawn(
            "kwok",
            f"--kubeconfig={kwok_config}",
            f"--config={self.kwok_stages}",
            "--manage-all-nodes=true",
            # The default stages renew Node Leases (node-heartbeat-with-lease), as kwokctl does.
            "--node-lease-duration-seconds=40",
            f"--cidr={POD_CIDR}",
        )
        self._wait(
            "kube-controller-manager",
            lambda: (
                self._get(f"https://127.0.0.1:{self.kcm_port}/healthz", verify=False) == 200
                and self.kubectl("get", "serviceaccount", "default", "-n", "default").returncode
                == 0
            ),
            deadline,
        )
        self._wait(
            "kube-scheduler",
            lambda: (
                self._get(f"https://127.0.0.1:{self.scheduler_port}/healthz", verify=False) == 200
            ),
            deadline,
        )
        self._check_alive()

    def stop(self) -> None:
        """Stop every component: its clients first, then the API servers, then etcd (an API
        server whose etcd is gone retries it instead of exiting). Each group gets SIGTERM and a
        bounded wait, then SIGKILL."""
        servers = ("kube-apiserver", "kube-apiserver-2", "etcd")
        _stop([p for name, p in self._processes.items() if name not in servers])
        _stop([p for name, p in self._processes.items() if name.startswith("kube-apiserver")])
        _stop([p for name, p in self._processes.items() if name == "etcd"])
        self._processes.clear()
        for handle in self._log_handles:
            handle.close()
        self._log_handles.clear()

    # -- faults --------------------------------------------------------------------------------

    def halt(self, name: str, *, crash: bool = False) -> None:
        """Stop one component (SIGTERM, then SIGKILL after a bounded wait; ``crash``: SIGKILL
        at once, requests in flight cut off); ``resume`` starts it again."""
        process = self._processes.pop(name)
        if crash:
            process.kill()
            process.wait(timeout=10)
        _stop([process])

    def resume(self, name: str) -> None:
        """Start a halted component again with its flags and data; for etcd and the API server,
        return once it answers ready again."""
        self._spawn(name, *self._flags[name])
        ready = {"etcd": self._etcd_healthy, "kube-apiserver": self._apiserver_ready}.get(name)
        if ready is not None:
            self._wait(name, ready, time.monotonic() + self.startup_seconds)

    @contextlib.contextmanager
    def down(self, name: str, *, crash: bool = False) -> Iterator[None]:
        """``name`` halted for the body of the ``with``, resumed (and ready) after it."""
        self.halt(name, crash=crash)
        try:
            yield
        finally:
            self.resume(name)

    def compact(self) -> int:
        """Compact etcd's history up to its current revision (as the API server does every
        five minutes), and return that revision: a watch asking for anything older is told
        410 Gone."""
        revision = int(self._etcd("/v3/kv/range", {"key": "AA=="})["header"]["revision"])
        self._etcd("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def stored(self, key: str) -> Any:
        """The object etcd holds under ``key`` (``/registry/...``), as the API server wrote
        it, or None: custom resources are stored as JSON in their storage version, before any
        pruning or defaulting a read applies."""
        encoded = base64.b64encode(key.encode()).decode()
        found = self._etcd("/v3/kv/range", {"key": encoded}).get("kvs") or []
        return json.loads(base64.b64decode(found[0]["value"])) if found else None

    def second_apiserver(self) -> str:
        """Start another kube-apiserver on the same etcd, with the same certificates, and
        return its URL (``kubectl("--server", url, ...)`` talks to it). It stops with the
        rest."""
        port = _free_ports(1)[0]
        flags = [
            f"--secure-port={port}" if f.startswith("--secure-port=") else f
            for f in self._flags["kube-apiserver"]
        ]
        flags = [
            f"--cert-dir={self.work_dir / 'kube-apiserver-2'}" if f.startswith("--cert-dir=")
            else f
            for f in flags
        ]  # fmt: skip
        self._spawn("kube-apiserver-2", *flags, binary="kube-apiserver")
        url = f"https://127.0.0.1:{port}"
        self._wait(
            "kube-apiserver-2",
            lambda: self._get(f"{url}/readyz") == 200,
            time.monotonic() + self.startup_seconds,
        )
        return url

    def _etcd(self, path: str, body: Mapping[str, object]) -> Any:
        """A call to etcd's JSON gateway."""
        request = urllib.request.Request(
            f"{self.etcd_url}{path}", data=json.dumps(body).encode(), method="POST"
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as reply:
            return json.loads(reply.read())

    def _etcd_healthy(self) -> bool:
        return self._get(f"{self.etcd_url}/health") == 200

    def _apiserver_ready(self) -> bool:
        return self._get(f"{self.server}/readyz") == 200

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = False,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as the admin; output captured as text. ``check`` raises with stderr."""
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self._env,
            check=False,
        )
        if check and result.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
            )
        return result

    def apply(self, *manifests: Mapping[str, Any]) -> None:
        """``kubectl apply`` the given objects."""
        document = {"apiVersion": "v1", "kind": "List", "items": list(manifests)}
        self.kubectl("apply", "-f", "-", input=json.dumps(document), check=True)

    def get_json(self, *args: str) -> Any:
        """``kubectl get ARGS -o json``, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json", check=True).stdout)

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def _spawn(self, name: str, *args: str, binary: str | None = None) -> None:
        handle = self.log(name).open("ab")
        self._log_handles.append(handle)
        self._flags[name] = args
        self._processes[name] = subprocess.Popen(
            [str(self.bin_dir / (binary or name)), *args],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=self.work_dir,
            env=self._env,
            preexec_fn=die_with_parent,
        )

    def _check_alive(self) -> None:
        for name, process in self._processes.items():
            if process.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with {process.returncode}; {self.log(name)} ends:\n"
                    f"{_tail(self.log(name))}"
                )

    def _wait(self, name: str, ready: Callable[[], bool], deadline: float) -> None:
        while True:
            self._check_alive()
            if ready():
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{name} not ready after {self.startup_seconds:.0f}s; {self.log(name)} ends:\n"
                    f"{_tail(self.log(name))}"
                )
            time.sleep(0.2)

    def _get(self, url: str, *, verify: bool = True) -> int | None:
        """The status of a GET as the admin (no proxy), or None when nothing answers yet."""
        context = self._tls if verify else self._tls_unverified
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        try:
            with opener.open(url, timeout=5) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except (OSError, ssl.SSLError):
            return None

    def _write_kubeconfig(self, path: Path, ca: _Credential, user: _Credential) -> Path:
        def data(file: Path) -> str:
            return base64.b64encode(file.read_bytes()).decode()

        config: Mapping[str, object] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "modelplane-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": data(ca.cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "user",
                    "user": {
                        "client-certificate-data": data(user.cert),
                        "client-key-data": data(user.key),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "modelplane-test",
                    "context": {"cluster": "modelplane-test", "user": "user"},
                }
            ],
            "current-context": "modelplane-test",
        }
        path.touch(mode=0o600)
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML: kubectl reads it
        return path
