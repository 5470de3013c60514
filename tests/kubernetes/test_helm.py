"""The Helm chart in deploy/helm, with a real helm (built by scripts/k8s-testenv): it lints,
renders the objects `modelplane install` makes, and installs on the real API server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelplane.api import crd
from modelplane.backends.kubernetes.install import (
    GATEWAY_RULES,
    LEASE_RULES,
    RULES,
    InstallOptions,
    manifests,
)
from tests.kubernetes.conftest import COMPONENTS, running_components
from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.kubernetes.test_install import AUTH, GROUPS, ISSUER, JWKS, gateway_pod_template

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


def by_kind(documents: list[Any]) -> dict[tuple[str, str], Any]:
    """Objects by kind and component: ``(kind, app.kubernetes.io/name)``."""
    return {
        (d["kind"], d["metadata"].get("labels", {}).get("app.kubernetes.io/name", "")): d
        for d in documents
        if d
    }


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
    # Helm installs into a namespace it is given; the CRD has no component label.
    assert {(k, n) for k, n in chart if k != "CustomResourceDefinition"} == {
        (k, n) for k, n in install if k not in ("Namespace", "CustomResourceDefinition")
    }
    found_crd = next(d for (k, _), d in chart.items() if k == "CustomResourceDefinition")
    assert found_crd["spec"] == crd()["spec"]
    operator, gateway = "modelplane-operator", "modelplane-gateway"
    assert chart["ClusterRole", operator]["rules"] == RULES
    assert chart["ClusterRole", gateway]["rules"] == GATEWAY_RULES
    assert chart["Role", operator]["rules"] == LEASE_RULES
    assert chart["PodDisruptionBudget", operator]["spec"]["minAvailable"] == 1
    for field in ("replicas", "strategy"):
        assert (
            chart["Deployment", operator]["spec"][field]
            == install["Deployment", operator]["spec"][field]
        )
    for component in (operator, gateway):
        ours = install["Deployment", component]["spec"]["template"]["spec"]
        theirs = chart["Deployment", component]["spec"]["template"]["spec"]
        assert theirs["securityContext"] == ours["securityContext"]
        mine, given = theirs["containers"][0], ours["containers"][0]
        assert mine["securityContext"] == given["securityContext"]
        assert mine["args"][0] == given["args"][0]
    args = chart["Deployment", operator]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--leader-elect" in args
    assert args[args.index("--prometheus") + 1] == "http://prometheus:9090"
    assert (
        args[args.index("--gateway-url") + 1]
        == "http://mp-modelplane-gateway.modelplane-system.svc"
    )
    args = chart["Deployment", gateway]["spec"]["template"]["spec"]["containers"][0]["args"]
    # Gateways send their load where the operator listens: its Service's port.
    service = chart["Service", operator]["spec"]["ports"][0]["port"]
    load = f"http://mp-modelplane.modelplane-system.svc:{service}/v1/load"
    assert args[args.index("--report-to") + 1] == load
    # The gateways share the quotas among the endpoints of their own Service, named by release.
    assert args[args.index("--peers") + 1] == "mp-modelplane-gateway"


# The chart's values for test_install's AUTH.
AUTH_VALUES = ("--set", "gateway.auth.apiKeysSecret=modelplane-gateway-keys",
               "--set", f"gateway.auth.oidc.issuer={ISSUER}",
               "--set", f"gateway.auth.oidc.jwksUrl={JWKS}",
               "--set-json", f"gateway.auth.oidc.groups={json.dumps(list(GROUPS))}")  # fmt: skip


def test_the_chart_passes_the_gateway_the_credentials_install_does(helm: Any) -> None:
    rendered = helm("template", "mp", str(CHART), "--namespace", "modelplane-system",
                    "--kube-version", "1.36.3", *AUTH_VALUES)  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    chart = gateway_pod_template(list(yaml.safe_load_all(rendered.stdout)))["spec"]
    install = gateway_pod_template(manifests(InstallOptions(gateway_auth=AUTH)))["spec"]
    theirs, ours = chart["containers"][0], install["containers"][0]
    given, made = theirs["args"], ours["args"]
    assert given[given.index("--api-keys") :] == made[made.index("--api-keys") :]
    assert theirs["volumeMounts"] == ours["volumeMounts"]
    assert chart["volumes"] == install["volumes"]
    # An issuer without its keys would fail in the pods: the chart refuses it.
    refused = helm("template", "mp", str(CHART), "--kube-version", "1.36.3",
                   "--set", f"gateway.auth.oidc.issuer={ISSUER}")  # fmt: skip
    assert refused.returncode != 0
    assert "gateway.auth.oidc.jwksUrl goes with gateway.auth.oidc.issuer" in refused.stderr
    # So would a value the gateway refuses: the chart's schema names it.
    for value, where in [
        ("gateway.auth.oidc.audience=", "/gateway/auth/oidc/audience"),
        ("gateway.auth.oidc.jwksUrl=jwks.json", "/gateway/auth/oidc/jwksUrl"),
        ("gateway.auth.oidc.groups[0]=team-a-devs=team-a", "/gateway/auth/oidc/groups/0"),
        ("gateway.auth.apiKeysSecret=Gateway_Keys", "/gateway/auth/apiKeysSecret"),
    ]:
        refused = helm("template", "mp", str(CHART), "--kube-version", "1.36.3",
                       *AUTH_VALUES, "--set", value)  # fmt: skip
        assert refused.returncode != 0, value
        assert f"at '{where}'" in refused.stderr, refused.stderr


def test_the_chart_installs_and_its_operator_and_gateway_pods_run(
    helm: Any, control_plane: ControlPlane, crd: str, kwok_node: str
) -> None:
    control_plane.kubectl("create", "namespace", "helm-test", check=True)
    control_plane.kubectl(
        "label", "namespace", "helm-test", "pod-security.kubernetes.io/enforce=restricted",
        check=True,
    )  # fmt: skip
    # With the key Secret mounted: still admitted under `restricted`.
    installed = helm("install", "mp", str(CHART), "--namespace", "helm-test", "--wait=false",
                     *AUTH_VALUES)  # fmt: skip
    assert installed.returncode == 0, installed.stderr

    wait_until(
        lambda: running_components(control_plane, "helm-test") == COMPONENTS,
        "the chart's operator and gateway pods admitted (restricted) and Running",
        60,
    )
    assert control_plane.get_json("clusterrole", "mp-modelplane")["rules"] == RULES
