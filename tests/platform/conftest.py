"""``modelplane up`` as a real process on loopback, and the CLI run against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import free_port, modelplane

API = "/apis/modelplane.io/v1alpha1"
METRICS = "/apis/metrics.modelplane.io/v1alpha1"


@dataclass
class Platform:
    state_dir: Path
    log: Path
    port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    options: tuple[str, ...] = ()  # more `modelplane up` options
    env: dict[str, str] = field(default_factory=dict)  # more environment for `modelplane up`

    def __post_init__(self) -> None:
        self.start()

    def start(self) -> None:
        self._handle = self.log.open("ab")
        self.process = subprocess.Popen(
            modelplane(
                "up", "--state-dir", str(self.state_dir), "--port", str(self.port),
                "--gateway-port", str(self.gateway_port), *self.options,
            ),
            stdout=self._handle, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
        )  # fmt: skip
        wait_for(lambda: self._healthy(), "control API up", 30)

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"modelplane up exited:\n{self.log.read_text()}")
        try:
            return httpx.get(f"{self.api}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def cli(
        self, *args: str, stdin: str | None = None, key: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``modelplane ARGS`` against this platform; ``key``: the API key it sends."""
        env = {**os.environ, "MODELPLANE_SERVER": self.api, "MODELPLANE_GATEWAY": self.gateway}
        if key is not None:
            env["MODELPLANE_API_KEY"] = key
        return subprocess.run(
            modelplane(*args), capture_output=True, text=True, env=env, timeout=60, input=stdin
        )

    def model(self, name: str, namespace: str = "default") -> dict[str, Any]:
        reply = httpx.get(f"{self.api}{API}/namespaces/{namespace}/models/{name}")
        reply.raise_for_status()
        document: dict[str, Any] = reply.json()
        return document

    def condition(self, name: str, type_: str, namespace: str = "default") -> dict[str, Any]:
        for found in self.model(name, namespace)["status"].get("conditions", []):
            if found["type"] == type_:
                return dict(found)
        return {}

    def wait_condition(
        self,
        name: str,
        type_: str,
        status: str,
        reason: str | None = None,
        timeout: float = 60,
        namespace: str = "default",
    ) -> dict[str, Any]:
        def check() -> bool:
            found = self.condition(name, type_, namespace)
            return found.get("status") == status and (
                reason is None or found.get("reason") == reason
            )

        wait_for(check, f"{namespace}/{name} {type_}={status} {reason or ''}", timeout)
        return self.condition(name, type_, namespace)

    def infer(self, name: str, rows: list[list[float]], timeout: float = 30) -> httpx.Response:
        body = {
            "inputs": [{"name": "X", "datatype": "FP32", "shape": [len(rows), 4], "data": rows}]
        }
        return httpx.post(f"{self.gateway}/v2/models/{name}/infer", json=body, timeout=timeout)

    def replica_pids(self, revision: str, namespace: str | None = None) -> list[int]:
        """The replica processes of this platform serving ``revision`` of ``namespace`` (of any
        namespace when None): each is started with its manifest, one file per namespace and
        revision."""
        manifests = str(self.state_dir / "revisions").replace(".", "[.]")
        pattern = f"-f {manifests}/{namespace or '[a-z0-9-]+'}[.]{revision}[.]yaml "
        found = subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True)
        return [int(pid) for pid in found.stdout.split()]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._handle.close()
        return self.process.returncode


def wait_for(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def manifest(
    path: Path,
    name: str,
    artifact: Path,
    extra: str = "",
    sha256: str | None = None,
    rollout: str = "{strategy: Immediate}",
) -> Path:
    pin = f"\n    sha256: '{sha256}'" if sha256 else ""
    path.write_text(
        f"apiVersion: modelplane.io/v1alpha1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n"
        f"  source:\n    uri: {artifact.as_uri()}{pin}\n  format: onnx\n  task: classification\n"
        f"  rollout: {rollout}\n{extra}"
    )
    return path


def running_in(factory: pytest.TempPathFactory, name: str, **given: Any) -> Iterator[Platform]:
    """A module fixture's ``modelplane up`` in a fresh directory ``name``, stopped after it;
    ``given``: more of Platform's fields (options, env)."""
    root = factory.mktemp(name)
    running = Platform(root / "state", root / "up.log", **given)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from running_in(tmp_path_factory, "platform")


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
