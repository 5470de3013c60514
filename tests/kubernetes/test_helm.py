"""The Helm chart in deploy/helm, with a real helm (built by scripts/k8s-testenv): it lints,
renders the objects `modelplane install` makes, and installs on the real API server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelplane.api import crd
from modelplane.backends.kubernetes.install import RULES, InstallOptions, manifests
from tests.kubernetes.controlplane import ControlPlane, wait_until

pytestmark = pytest.mark.slow

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "modelplane"


@pytest.fixture(scope="module")
def helm(k8s_bin_dir: Path, control_plane: ControlPlane) -> Any:
    found = sorted(k8s_bin_dir.parents[1].glob("helm-*/helm"))
    assert found, "helm missing: run scripts/k8s-testenv"
    home = control_plane.work_dir / "helm-home"
    env = {
        **os.environ,
        "KUBECONFIG": str(control_plane.kubeconfig),
        **{
            v: str(home / v.lower())
            for v in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")
        },
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(found[-1]), *args], capture_output=True, text=True, env=env, timeout=120
        )

    return run


def by_kind(documents: list[Any]) -> dict[str, Any]:
    return {d["kind"]: d for d in documents if d}


def test_the_chart_lints(helm: Any) -> None:
    linted = helm("lint", str(CHART))
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "0 chart(s) failed" in linted.stdout


def test_the_chart_renders_what_install_makes(helm: Any) -> None:
    rendered = helm(
        # helm built by `go install` carries no default cluster version: say the test cluster's.
        "template", "mp", str(CHART), "--namespace", "modelplane-system", "--include-crds",
        "--kube-version", "1.36.3",
        "--set", "operator.prometheus=http://prometheus:9090",
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    chart = by_kind(list(yaml.safe_load_all(rendered.stdout)))
    install = by_kind(manifests(InstallOptions(prometheus="http://prometheus:9090")))
    assert set(chart) == set(install) - {"Namespace"}  # Helm installs into a namespace it is given
    assert chart["CustomResourceDefinition"]["spec"] == crd()["spec"]
    assert chart["ClusterRole"]["rules"] == RULES
    ours = install["Deployment"]["spec"]["template"]["spec"]
    theirs = chart["Deployment"]["spec"]["template"]["spec"]
    assert theirs["securityContext"] == ours["securityContext"]
    assert theirs["containers"][0]["securityContext"] == ours["containers"][0]["securityContext"]
    args = theirs["containers"][0]["args"]
    assert args[0] == "operator"
    assert args[args.index("--prometheus") + 1] == "http://prometheus:9090"


def test_the_chart_installs_and_its_operator_pod_runs(
    helm: Any, control_plane: ControlPlane, crd: str, kwok_node: str
) -> None:
    control_plane.kubectl("create", "namespace", "helm-test", check=True)
    control_plane.kubectl(
        "label", "namespace", "helm-test", "pod-security.kubernetes.io/enforce=restricted",
        check=True,
    )  # fmt: skip
    installed = helm("install", "mp", str(CHART), "--namespace", "helm-test", "--wait=false")
    assert installed.returncode == 0, installed.stderr

    def running() -> bool:
        pods = control_plane.get_json("pods", "-n", "helm-test")["items"]
        return any(p["status"].get("phase") == "Running" for p in pods)

    wait_until(running, "the chart's operator pod admitted (restricted) and Running", 60)
    assert control_plane.get_json("clusterrole", "mp-modelplane")["rules"] == RULES
