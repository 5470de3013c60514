"""Cluster hardening on a real API server: model pods as the operator writes them pass the
`restricted` Pod Security Standard (server-side dry run in a namespace enforcing it, and a
privileged variant refused there), and deploy/network-policies are valid and select exactly the
pods they mean. No CNI runs here to enforce the policies; what they select is checked."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelplane.api import parse_model
from modelplane.backends.kubernetes.children import ClusterSettings, deployment
from modelplane.backends.kubernetes.install import InstallOptions, manifests
from tests.kubernetes.conftest import OPERATOR_NAMESPACE
from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.kubernetes.operating import MODEL, RunningOperator, apply, ready
from tests.kubernetes.test_install import AUTH, gateway_pod_template

pytestmark = pytest.mark.slow

POLICIES = Path(__file__).resolve().parents[2] / "deploy" / "network-policies"
RESTRICTED = "psa-restricted"


def _pod(template: dict[str, Any], name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": RESTRICTED,
                         "labels": template["metadata"]["labels"]},
            "spec": template["spec"]}  # fmt: skip


def test_model_pods_pass_the_restricted_pod_security_standard(
    control_plane: ControlPlane,
) -> None:
    enforcing = {"pod-security.kubernetes.io/enforce": "restricted"}
    control_plane.apply({"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": RESTRICTED, "labels": enforcing}})  # fmt: skip
    model = parse_model(yaml.safe_load(MODEL.format(name="hardened", extra="")))
    template = deployment(model, "hardened-r1", model.spec, 1, ClusterSettings())["spec"][
        "template"]  # fmt: skip

    def dry_run(pod: dict[str, Any]) -> Any:
        return control_plane.kubectl("create", "--dry-run=server", "-f", "-",
                                     input=json.dumps(pod))  # fmt: skip

    admitted = dry_run(_pod(template, "hardened"))
    assert admitted.returncode == 0, admitted.stderr

    # The check is real: the same pod, as root with privilege escalation, is refused.
    loose = copy.deepcopy(template)
    loose["spec"].pop("securityContext")
    loose["spec"]["containers"][0]["securityContext"] = {"allowPrivilegeEscalation": True}
    refused = dry_run(_pod(loose, "loose"))
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr
    assert "allowPrivilegeEscalation != false" in refused.stderr


def test_the_gateway_pod_with_its_key_secret_passes_restricted(
    control_plane: ControlPlane, installed: str
) -> None:
    """In the install's namespace, which enforces `restricted`, with its ServiceAccount."""
    template = gateway_pod_template(manifests(InstallOptions(gateway_auth=AUTH)))
    assert template["spec"]["volumes"][0]["secret"]["secretName"] == "modelplane-gateway-keys"
    pod = {**_pod(template, "gateway-with-keys"), "metadata": {"namespace": installed,
           "name": "gateway-with-keys", "labels": template["metadata"]["labels"]}}  # fmt: skip
    admitted = control_plane.kubectl("create", "--dry-run=server", "-f", "-",
                                     input=json.dumps(pod))  # fmt: skip
    assert admitted.returncode == 0, admitted.stderr


def _selected(plane: ControlPlane, namespace: str, selector: dict[str, Any]) -> set[str]:
    labels = ",".join(f"{k}={v}" for k, v in selector.get("matchLabels", {}).items())
    args = ("pods", "-n", namespace, *(("-l", labels) if labels else ()))
    return {p["metadata"]["name"] for p in plane.get_json(*args)["items"]}


def _named(component: str) -> dict[str, Any]:
    return {"matchLabels": {"app.kubernetes.io/name": component}}


def test_network_policies_select_the_pods_they_mean(
    control_plane: ControlPlane, operator_with_defaults: RunningOperator, installed: str
) -> None:
    apply(control_plane, "policed")
    wait_until(lambda: ready(control_plane, "policed"), "policed Ready", 60)
    for name, namespace in (("models-namespace.yaml", "default"),
                            ("modelplane-system.yaml", OPERATOR_NAMESPACE)):  # fmt: skip
        done = control_plane.kubectl("apply", "--server-side", "--validate=strict", "-n",
                                     namespace, "-f", str(POLICIES / name))  # fmt: skip
        assert done.returncode == 0, done.stderr

    pods = control_plane.get_json("pods", "-n", "default")["items"]
    component = "app.kubernetes.io/component"
    models = {p["metadata"]["name"] for p in pods
              if p["metadata"]["labels"].get(component) == "model-server"}  # fmt: skip
    assert models, "no model pods to check against"
    policy = control_plane.get_json("networkpolicy", "modelplane-gateway-to-models")["spec"]
    assert _selected(control_plane, "default", policy["podSelector"]) == models
    assert _selected(control_plane, "default", {}) >= models  # the default deny covers all

    # Its one admitted peer in modelplane-system is the gateway, on the pods' named port.
    peer = policy["ingress"][0]["from"][0]
    system = control_plane.get_json("namespace", OPERATOR_NAMESPACE)["metadata"]["labels"]
    assert all(system.get(k) == v for k, v in peer["namespaceSelector"]["matchLabels"].items())
    gateways = _selected(control_plane, OPERATOR_NAMESPACE, peer["podSelector"])
    gateway_pods = _selected(control_plane, OPERATOR_NAMESPACE, _named("modelplane-gateway"))
    assert gateways == gateway_pods
    assert gateways
    # The operator's pods too: they read the model pods' /metrics and replay evaluation gates.
    reader = policy["ingress"][0]["from"][1]
    assert all(system.get(k) == v for k, v in reader["namespaceSelector"]["matchLabels"].items())
    operator_pods = _selected(control_plane, OPERATOR_NAMESPACE, _named("modelplane-operator"))
    assert _selected(control_plane, OPERATOR_NAMESPACE, reader["podSelector"]) == operator_pods
    for pod in pods:
        if pod["metadata"]["name"] in models:
            ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
            assert policy["ingress"][0]["ports"][0]["port"] in ports

    # The operator's port admits the gateway's pods only (and a Prometheus, if there is one).
    operator = control_plane.get_json("networkpolicy", "modelplane-operator-ingress", "-n",
                                      OPERATOR_NAMESPACE)["spec"]  # fmt: skip
    operators = _selected(control_plane, OPERATOR_NAMESPACE, _named("modelplane-operator"))
    assert _selected(control_plane, OPERATOR_NAMESPACE, operator["podSelector"]) == operators
    first = operator["ingress"][0]["from"][0]
    assert _selected(control_plane, OPERATOR_NAMESPACE, first["podSelector"]) == gateway_pods
