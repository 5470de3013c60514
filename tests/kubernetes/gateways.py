"""``modelplane gateway`` on the test cluster for one namespace, run as its installed
ServiceAccount: what a module's cluster tests send client requests through."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from modelplane.backends.local.supervisor import die_with_parent
from tests.kubernetes.conftest import OPERATOR_NAMESPACE
from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.processes import free_port, modelplane, stop_process


def account_kubeconfig(plane: ControlPlane, account: str) -> Path:
    """A kubeconfig with a token of ServiceAccount ``account`` of the operator's namespace."""
    token = plane.kubectl(
        "create", "token", account, "-n", OPERATOR_NAMESPACE, "--duration=2h", check=True
    ).stdout.strip()
    config = {**json.loads(plane.kubeconfig.read_text())}
    config["users"] = [{"name": "user", "user": {"token": token}}]
    path = plane.work_dir / f"{account}.kubeconfig"
    path.write_text(json.dumps(config))
    return path


@dataclass(frozen=True)
class RunningGateway:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_gateway(
    plane: ControlPlane, namespace: str, port: int, log: Path, *options: str
) -> RunningGateway:
    """A gateway routing ``namespace``'s Models on ``port``, ready; the caller stops it."""
    env = {**os.environ, "KUBECONFIG": str(account_kubeconfig(plane, "modelplane-gateway"))}
    with log.open("ab") as out:
        process = subprocess.Popen(
            modelplane(
                "gateway", "--host", "127.0.0.1", "--port", str(port), "--namespace", namespace,
                "--log-level", "info", *options,
            ),
            env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
        )  # fmt: skip
    found = RunningGateway(f"http://127.0.0.1:{port}", process, log)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the gateway exited:\n{log.read_text()}")
        try:
            return httpx.get(f"{found.url}/v2/health/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, "the cluster gateway ready")
    except BaseException:
        stop_process(process)
        raise
    return found


@contextmanager
def gateway_of(
    plane: ControlPlane, namespace: str, log: Path, *options: str
) -> Iterator[RunningGateway]:
    """A gateway routing ``namespace``'s Models, ready, until the block ends."""
    found = start_gateway(plane, namespace, free_port(), log, *options)
    try:
        yield found
    finally:
        stop_process(found.process)
