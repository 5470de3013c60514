"""The Argo CD and Flux examples in deploy/ against the real CRDs of those projects on a real API
server (strict validation: a misspelt or misplaced field fails), carrying the health checks that
tests/kubernetes/test_health_checks.py runs in real Lua and CEL interpreters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kubernetes.controlplane import ControlPlane, wait_until

pytestmark = pytest.mark.slow

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
EXAMPLES = [
    DEPLOY / "argocd" / "application.yaml",
    DEPLOY / "argocd" / "argocd-cm.yaml",
    DEPLOY / "flux" / "models.yaml",
]


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_examples_carry_the_tested_health_checks() -> None:
    (configmap,) = documents(DEPLOY / "argocd" / "argocd-cm.yaml")
    lua = (DEPLOY / "argocd" / "health.lua").read_text()
    assert configmap["data"]["resource.customizations.health.modelplane.io_Model"] == lua, (
        "deploy/argocd/argocd-cm.yaml is stale: run scripts/render-deploy"
    )
    kustomization = next(d for d in documents(DEPLOY / "flux" / "models.yaml")
                         if d["kind"] == "Kustomization")  # fmt: skip
    exprs = yaml.safe_load((DEPLOY / "flux" / "health-check-exprs.yaml").read_text())
    assert kustomization["spec"]["healthCheckExprs"] == exprs, (
        "deploy/flux/models.yaml is stale: run scripts/render-deploy"
    )


@pytest.fixture(scope="module")
def gitops_crds(control_plane: ControlPlane, k8s_bin_dir: Path) -> None:
    crds = sorted(k8s_bin_dir.parents[1].glob("gitops-crds-*/*.yaml"))
    assert len(crds) == 4, "Argo CD and Flux CRDs missing: run scripts/k8s-testenv"
    for crd in crds:
        control_plane.kubectl("apply", "--server-side", "-f", str(crd), check=True)
    for namespace in ("argocd", "flux-system"):
        control_plane.apply({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": namespace}})  # fmt: skip
    wait_until(
        lambda: all(
            control_plane.kubectl("get", kind, "-A").returncode == 0
            for kind in ("applications.argoproj.io", "kustomizations.kustomize.toolkit.fluxcd.io",
                         "gitrepositories.source.toolkit.fluxcd.io")
        ),
        "Application, Kustomization and GitRepository served",
    )  # fmt: skip


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_an_example_is_valid_for_the_tools_own_crds(
    control_plane: ControlPlane, gitops_crds: None, example: Path
) -> None:
    applied = control_plane.kubectl(
        "apply", "--server-side", "--validate=strict", "-f", str(example)
    )
    assert applied.returncode == 0, applied.stderr
    for document in documents(example):
        meta = document["metadata"]
        kind = document["kind"].lower()
        group = document["apiVersion"].split("/")[0] if "/" in document["apiVersion"] else ""
        stored = control_plane.get_json(
            f"{kind}.{group}" if group else kind, meta["name"], "-n", meta["namespace"]
        )
        body = "spec" if "spec" in document else "data"
        assert kept(stored[body], document[body]), (
            f"{example.name}: the API server dropped fields of {document['kind']}"
        )


def kept(stored: Any, given: Any) -> bool:
    """Everything ``given`` is in ``stored`` (which may add the CRD's defaults)."""
    if isinstance(given, dict):
        return isinstance(stored, dict) and all(
            key in stored and kept(stored[key], value) for key, value in given.items()
        )
    return bool(stored == given)


def test_the_crds_refuse_what_the_tools_would_not_run(
    control_plane: ControlPlane, gitops_crds: None
) -> None:
    """Strict validation is real here: a Kustomization without its source is refused."""
    kustomization = next(d for d in documents(DEPLOY / "flux" / "models.yaml")
                         if d["kind"] == "Kustomization")  # fmt: skip
    del kustomization["spec"]["sourceRef"]
    refused = control_plane.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", input=yaml.safe_dump(kustomization)
    )
    assert refused.returncode != 0
    assert "sourceRef" in refused.stderr
