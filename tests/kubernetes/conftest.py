"""A real Kubernetes control plane for the operator's tests: binaries built (once, cached
outside the repository) by ``scripts/k8s-testenv``, processes run by :class:`ControlPlane`.

A cold build of the binaries takes tens of minutes and the control plane a few seconds to start,
so the fixture's setup is kept out of pytest-timeout's per-test limit: every test that uses
``control_plane`` is marked ``timeout(..., func_only=True)``, which bounds the test's own body
only. The build and the start are bounded by their own deadlines.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.processes import modelplane

ROOT = Path(__file__).resolve().parents[2]
BUILD_SECONDS = 80 * 60  # a cold build on a 2-core machine, with room to spare
TEST_SECONDS = 120


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "control_plane" in getattr(item, "fixturenames", ()):
            # Appended: a test's own timeout marker, if any, comes first and wins.
            item.add_marker(pytest.mark.timeout(TEST_SECONDS, func_only=True), append=True)


@pytest.fixture(scope="session")
def k8s_bin_dir() -> Path:
    """Where ``scripts/k8s-testenv`` keeps the binaries: the last line it prints."""
    try:
        result = subprocess.run(
            [str(ROOT / "scripts" / "k8s-testenv")],
            capture_output=True,
            text=True,
            timeout=BUILD_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"scripts/k8s-testenv did not finish in {BUILD_SECONDS}s: {error}")
    if result.returncode != 0:
        pytest.fail(f"scripts/k8s-testenv exited {result.returncode}:\n{result.stderr[-6000:]}")
    lines = result.stdout.strip().splitlines()
    if not lines or not Path(lines[-1]).is_dir():
        pytest.fail(f"scripts/k8s-testenv printed no bin directory:\n{result.stdout}")
    return Path(lines[-1])


@pytest.fixture(scope="session")
def control_plane(
    k8s_bin_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on 127.0.0.1,
    for the whole session; ``.kubeconfig`` is the admin's, ``.kubectl(...)`` runs as admin."""
    plane = ControlPlane(k8s_bin_dir, tmp_path_factory.mktemp("k8s"))
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


NODE = "kwok-node-0"
COMPONENTS = {"modelplane-operator", "modelplane-gateway"}


def running_components(plane: ControlPlane, namespace: str) -> set[str]:
    """The ``app.kubernetes.io/name`` of every Running pod in ``namespace``: a pod that the
    admission refused never exists, so Running also means admitted."""
    pods = plane.get_json("pods", "-n", namespace)["items"]
    return {
        p["metadata"]["labels"]["app.kubernetes.io/name"]
        for p in pods
        if p["status"].get("phase") == "Running"
    }


def condition(obj: Any, kind: str) -> str | None:
    """The status of condition ``kind`` in an object's ``status.conditions``."""
    for entry in obj.get("status", {}).get("conditions") or []:
        if entry.get("type") == kind:
            return str(entry.get("status"))
    return None


@pytest.fixture(scope="session")
def kwok_node(control_plane: ControlPlane) -> str:
    """A Node that kwok manages, Ready and schedulable."""
    control_plane.apply(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE,
                "labels": {"type": "kwok", "kubernetes.io/hostname": NODE},
                "annotations": {"kwok.x-k8s.io/node": "fake"},
            },
        }
    )

    def ready() -> bool:
        node = control_plane.get_json("node", NODE)
        # The node lifecycle controller lifts its not-ready taint once kwok reports Ready.
        return condition(node, "Ready") == "True" and not node["spec"].get("taints")

    wait_until(ready, f"node {NODE} Ready and untainted")
    return NODE


@pytest.fixture(scope="session")
def crd(control_plane: ControlPlane) -> str:
    """The Model CRD as `modelplane crd` renders it, installed and established."""
    rendered = subprocess.run(modelplane("crd"), capture_output=True, text=True, check=True)
    control_plane.kubectl("apply", "--server-side", "-f", "-", input=rendered.stdout, check=True)

    def established() -> bool:
        return condition(control_plane.get_json("crd", "models.modelplane.io"), "Established") == (
            "True"
        )

    wait_until(established, "the Model CRD established")
    return rendered.stdout


def apply_crd(plane: ControlPlane, definition: dict[str, Any]) -> None:
    """Replace the Model CRD the way ``kubectl apply --server-side --force-conflicts`` does
    (what ``--allow-unsafe-crd``, kustomize and Helm users end up doing)."""
    plane.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", "-",
        input=json.dumps(definition), check=True,
    )  # fmt: skip


@pytest.fixture
def restored_crd(control_plane: ControlPlane, crd: str) -> Iterator[None]:
    """Whatever a test does to the Model CRD, the current one is back afterwards, and kubectl's
    discovery cache knows it (a version added and removed again would otherwise stay the
    preferred one for ``kubectl get mdl``)."""
    yield
    control_plane.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", "-", input=crd, check=True
    )

    def discovered() -> bool:
        # api-versions always asks the server afresh, and refreshes the cache.
        found = control_plane.kubectl("api-versions", check=True).stdout.split()
        return {v for v in found if v.startswith("modelplane.io/")} == {"modelplane.io/v1alpha1"}

    wait_until(discovered, "kubectl to discover the Model CRD as it is")


OPERATOR_NAMESPACE = "modelplane-system"


def run_as_admin(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    """A ``modelplane`` command with the admin's kubeconfig."""
    env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig)}
    return subprocess.run(modelplane(*args), capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="session")
def installed(control_plane: ControlPlane, crd: str) -> str:
    """`modelplane install` done: CRD, namespace, RBAC, the operator's Deployment."""
    result = run_as_admin(control_plane, "install")
    assert result.returncode == 0, result.stderr
    return OPERATOR_NAMESPACE


@pytest.fixture(scope="session")
def operator_kubeconfig(
    control_plane: ControlPlane, installed: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A kubeconfig holding the operator ServiceAccount's token: what the operator may do in
    a cluster, and nothing more."""
    token = control_plane.kubectl(
        "create", "token", "modelplane-operator", "-n", installed, "--duration=4h", check=True
    ).stdout.strip()
    admin = json.loads(control_plane.kubeconfig.read_text())
    config = {
        **admin,
        "users": [{"name": "user", "user": {"token": token}}],
    }
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def operator_with_defaults(
    operator_kubeconfig: Path, kwok_node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """The operator with its default options, for one module's tests (stopped after them)."""
    from tests.kubernetes.operating import RunningOperator  # operating imports this module

    running = RunningOperator(operator_kubeconfig, tmp_path_factory.mktemp("operator") / "op.log")
    yield running
    running.stop()
