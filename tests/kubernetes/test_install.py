"""`modelplane install` and deploy/kustomize on a real API server: the same objects, accepted
by the server (Pod Security `restricted` included), least privilege in RBAC."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelplane.backends.kubernetes.install import (
    GatewayAuth,
    InstallOptions,
    kustomize_base,
    manifests,
)
from tests.kubernetes.conftest import COMPONENTS, run_as_admin, running_components
from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.processes import modelplane

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "https://idp.example.com/realms/ml"
JWKS = f"{ISSUER}/protocol/openid-connect/certs"
GROUPS = ("team-a-devs=team-a:deployer", "auditors=*:viewer")
# The same credentials as `modelplane install` options and as InstallOptions.
AUTH_OPTIONS = ("--gateway-api-keys-secret", "modelplane-gateway-keys",
                "--gateway-oidc-issuer", ISSUER, "--gateway-oidc-jwks", JWKS,
                *(a for g in GROUPS for a in ("--gateway-oidc-group", g)))  # fmt: skip
AUTH = GatewayAuth("modelplane-gateway-keys", ISSUER, "modelplane", JWKS, GROUPS)


def gateway_pod_template(documents: list[Any]) -> Any:
    """The pod template of the gateway's Deployment (as install or a Helm release names it)."""
    found = next(d for d in documents if d and d["kind"] == "Deployment"
                 and d["metadata"]["name"].endswith("modelplane-gateway"))  # fmt: skip
    return found["spec"]["template"]


def identities(documents: list[Any]) -> set[str]:
    return {f"{d['kind']}/{d['metadata']['name']}" for d in documents if d}


def test_deploy_kustomize_is_rendered_from_the_install_manifests() -> None:
    for name, text in kustomize_base(InstallOptions()).items():
        committed = (ROOT / "deploy" / "kustomize" / name).read_text()
        assert committed == text, f"deploy/kustomize/{name} is stale: run scripts/render-deploy"


def test_kustomize_and_install_give_the_same_objects(control_plane: ControlPlane) -> None:
    built = control_plane.kubectl("kustomize", str(ROOT / "deploy" / "kustomize"), check=True)
    rendered = run_as_admin(control_plane, "install", "-o", "yaml")
    assert rendered.returncode == 0, rendered.stderr
    from_kustomize = list(yaml.safe_load_all(built.stdout))
    from_install = list(yaml.safe_load_all(rendered.stdout))
    assert identities(from_kustomize) == identities(from_install)
    # CRD, namespace, gateway 5, operator 8 (its lease Role and binding, its disruption budget)
    assert len(identities(from_install)) == 15


def test_the_gateway_mounts_its_key_secret_and_checks_credentials() -> None:
    rendered = subprocess.run(modelplane("install", "-o", "yaml", *AUTH_OPTIONS),
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    pod = gateway_pod_template(list(yaml.safe_load_all(rendered.stdout)))["spec"]
    assert pod == gateway_pod_template(manifests(InstallOptions(gateway_auth=AUTH)))["spec"]
    container = pod["containers"][0]
    args = container["args"]
    assert args[args.index("--api-keys") :] == [
        "--api-keys", "/etc/modelplane/api-keys/keys.json", "--oidc-issuer", ISSUER,
        "--oidc-audience", "modelplane", "--oidc-jwks", JWKS,
        "--oidc-group", GROUPS[0], "--oidc-group", GROUPS[1],
    ]  # fmt: skip
    # The Secret's whole volume (no subPath, which would never see the Secret change), read-only.
    assert container["volumeMounts"] == [
        {"name": "api-keys", "mountPath": "/etc/modelplane/api-keys", "readOnly": True}
    ]
    assert pod["volumes"] == [{"name": "api-keys", "secret": {
        "secretName": "modelplane-gateway-keys",
        "items": [{"key": "keys.json", "path": "keys.json"}]}}]  # fmt: skip
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # Without them, the gateway is as before: no volume, no credential arguments.
    plain = gateway_pod_template(manifests(InstallOptions()))["spec"]
    assert "volumes" not in plain
    assert not {"--api-keys", "--oidc-issuer"} & set(plain["containers"][0]["args"])


def test_install_refuses_gateway_credentials_the_gateway_would_refuse() -> None:
    cases = {
        ("--gateway-oidc-issuer", ISSUER): "an OIDC issuer and its JWKS URL go together",
        ("--gateway-oidc-issuer", ISSUER, "--gateway-oidc-jwks", "jwks.json"): "must be a URL",
        ("--gateway-oidc-issuer", ISSUER, "--gateway-oidc-jwks", JWKS, "--gateway-oidc-group",
         "team-a-devs"): "expected GROUP=NAMESPACE:ROLE",
    }  # fmt: skip
    for options, reason in cases.items():
        refused = subprocess.run(modelplane("install", "-o", "yaml", *options),
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
        assert refused.returncode == 2, options
        assert reason in refused.stderr, refused.stderr


def test_rbac_is_least_privilege() -> None:
    found = yaml.safe_load_all((ROOT / "deploy" / "kustomize" / "rbac.yaml").read_text())
    roles = [d for d in found if d["kind"] == "ClusterRole"]
    assert {r["metadata"]["name"] for r in roles} == {"modelplane-operator", "modelplane-gateway"}
    for rule in [rule for role in roles for rule in role["rules"]]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
        assert "secrets" not in rule["resources"]
    # Leases only in the operator's own namespace, by a Role: no Lease elsewhere is its to take.
    assert "leases" not in {
        resource for role in roles for rule in role["rules"] for resource in rule["resources"]
    }
    found = yaml.safe_load_all((ROOT / "deploy" / "kustomize" / "rbac.yaml").read_text())
    (role,) = [d for d in found if d["kind"] == "Role"]
    assert role["metadata"]["namespace"] == "modelplane-system"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "create", "update"]},
    ]  # fmt: skip


def test_a_dry_run_checks_and_changes_nothing(control_plane: ControlPlane, crd: str) -> None:
    checked = run_as_admin(control_plane, "install", "--dry-run", "--namespace", "mp-dry")
    assert checked.returncode == 0, checked.stderr
    # The server refuses to check objects in a namespace that does not exist: said, not hidden.
    assert checked.stdout.count("checked (dry run)") == 6  # the cluster-scoped ones
    assert checked.stdout.count("not checked: namespace mp-dry does not exist yet") == 9
    assert control_plane.kubectl("get", "namespace", "mp-dry").returncode != 0


def test_a_dry_run_over_an_install_checks_every_object(
    control_plane: ControlPlane, installed: str
) -> None:
    checked = run_as_admin(control_plane, "install", "--dry-run", "--namespace", installed)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.count("checked (dry run)") == 15


def test_a_refused_install_says_which_object_and_why(control_plane: ControlPlane) -> None:
    refused = run_as_admin(control_plane, "install", "--namespace", "Not_A_Name")
    assert refused.returncode != 0
    assert "Namespace/Not_A_Name" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_operator_and_gateway_pods_pass_pod_security_restricted(
    control_plane: ControlPlane, installed: str, kwok_node: str
) -> None:
    labels = control_plane.get_json("namespace", installed)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

    wait_until(
        lambda: running_components(control_plane, installed) == COMPONENTS,
        "the operator's and the gateway's pods admitted and Running (kwok)",
        60,
    )
