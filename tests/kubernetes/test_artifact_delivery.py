"""Model delivery on a real API server: each revision's pods fetch in an init step that alone
holds the source's credentials, the model reads the artifact from a volume it may not write, and
the pod still passes the `restricted` Pod Security Standard; a new revision's moving reference is
resolved by the operator with the Secret a namespace's owner lets it read, and while it cannot
be, no revision is made and the Model says why (kwok runs no containers: the fetch itself runs
as a real process in tests/artifacts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelplane.api import parse_model
from modelplane.backends.kubernetes.children import ClusterSettings, deployment
from tests.kubernetes.conftest import condition
from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.kubernetes.operating import RunningOperator

pytestmark = pytest.mark.slow

PRIVATE = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  source: {{uri: '{uri}', credentials: {{secret: registry-login}}}}
  format: onnx
  task: classification
"""
SECRET_VALUE = "s3cr3t-never-shown"  # noqa: S105 - the value the test looks for


@pytest.fixture(scope="module")
def operator(
    operator_kubeconfig: Path, kwok_node: str, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    running = RunningOperator(operator_kubeconfig, tmp_path_factory.mktemp("op") / "op.log")
    yield running
    running.stop()


def _containers(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = template["spec"]
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}


def test_the_fetch_step_alone_gets_the_credentials_and_the_pod_stays_restricted(
    control_plane: ControlPlane,
) -> None:
    namespace = "delivery-restricted"
    enforcing = {"pod-security.kubernetes.io/enforce": "restricted"}
    control_plane.apply({"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": namespace, "labels": enforcing}})  # fmt: skip
    document = PRIVATE.format(name="private", namespace=namespace,
                              uri="s3://models/iris/model.onnx")  # fmt: skip
    found = parse_model(yaml.safe_load(document))
    template = deployment(found, "private-r1", found.spec, 1, ClusterSettings())["spec"][
        "template"]  # fmt: skip
    containers = _containers(template)
    assert list(containers) == ["fetch", "model"]
    fetch, served = containers["fetch"], containers["model"]
    assert [m["name"] for m in fetch["volumeMounts"]] == ["cache", "tmp", "credentials"]
    assert "credentials" not in [m["name"] for m in served["volumeMounts"]]
    assert not [e for e in served.get("env", []) if "valueFrom" in e and "secretKeyRef" in
                e["valueFrom"]]  # fmt: skip
    cache = next(m for m in served["volumeMounts"] if m["name"] == "cache")
    assert cache["readOnly"] is True
    assert served["args"][-2:] == ["--artifact", fetch["args"][fetch["args"].index("--link") + 1]]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "private", "namespace": namespace,
                        "labels": template["metadata"]["labels"]},
           "spec": template["spec"]}  # fmt: skip
    admitted = control_plane.kubectl("create", "--dry-run=server", "-f", "-",
                                     input=json.dumps(pod))  # fmt: skip
    assert admitted.returncode == 0, admitted.stderr


def test_a_tag_the_operator_may_not_resolve_makes_no_revision_and_says_how_to_allow_it(
    control_plane: ControlPlane, operator: RunningOperator
) -> None:
    namespace = "delivery-tags"
    control_plane.apply({"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": namespace}})  # fmt: skip
    control_plane.apply({"apiVersion": "v1", "kind": "Secret",
                         "metadata": {"name": "registry-login", "namespace": namespace},
                         "stringData": {"REGISTRY_PASSWORD": SECRET_VALUE}})  # fmt: skip
    document = PRIVATE.format(name="tagged", namespace=namespace,
                              uri="oci://127.0.0.1:9/team/iris:stable")  # fmt: skip
    control_plane.kubectl("apply", "-f", "-", input=document, check=True)

    def stalled() -> dict[str, Any] | None:
        found = control_plane.get_json("mdl", "tagged", "-n", namespace)
        conditions = {c["type"]: c for c in (found.get("status") or {}).get("conditions", [])}
        return conditions.get("Stalled")

    wait_until(lambda: (stalled() or {}).get("reason") == "ArtifactUnavailable",
               "tagged stalled", 60)  # fmt: skip
    message = (stalled() or {})["message"]
    assert "no revision was made" in message
    assert "may not read the credentials Secret 'registry-login'" in message
    assert f"kubectl -n {namespace} create role modelplane-credentials" in message
    revisions = control_plane.get_json("controllerrevision", "-n", namespace)["items"]
    assert revisions == []
    found = control_plane.get_json("mdl", "tagged", "-n", namespace)
    assert condition(found, "Ready") == "False"

    # The namespace's owner lets the operator read that one Secret: the registry is asked
    # next (and, at a port where none listens, does not answer); the secret is never shown.
    control_plane.kubectl("-n", namespace, "create", "role", "modelplane-credentials",
                          "--verb=get", "--resource=secrets", "--resource-name=registry-login",
                          check=True)  # fmt: skip
    control_plane.kubectl("-n", namespace, "create", "rolebinding", "modelplane-credentials",
                          "--role=modelplane-credentials",
                          "--serviceaccount=modelplane-system:modelplane-operator",
                          check=True)  # fmt: skip
    wait_until(lambda: "may not read" not in (stalled() or {}).get("message", "may not read"),
               "the registry asked", 90)  # fmt: skip
    events = control_plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    shown = [json.dumps(found), json.dumps(stalled()), events, operator.log.read_text()]
    assert not [text for text in shown if SECRET_VALUE in text]


def test_the_node_cache_runs_in_its_own_namespace_with_no_rights_and_pods_stay_restricted(
    control_plane: ControlPlane, kwok_node: str
) -> None:
    from modelplane.backends.kubernetes.node_cache import NAMESPACE, URL, node_cache_manifests

    found = node_cache_manifests("registry.example.com/modelplane:test", {})
    control_plane.apply(*found)
    account = f"system:serviceaccount:{NAMESPACE}:modelplane-node-cache"
    for verb, resource in (("get", "secrets"), ("list", "pods"), ("get", "models")):
        allowed = control_plane.kubectl("auth", "can-i", verb, resource, "--as", account,
                                        "--all-namespaces")  # fmt: skip
        assert allowed.stdout.strip() == "no", (verb, resource)
    daemon_set = control_plane.get_json("daemonset", "modelplane-node-cache", "-n", NAMESPACE)
    pod = daemon_set["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    service = control_plane.get_json("service", "modelplane-node-cache", "-n", NAMESPACE)
    assert service["spec"]["internalTrafficPolicy"] == "Local"
    # The DaemonSet's pods are admitted there (kwok stands in for the kubelet) ...
    wait_until(lambda: control_plane.get_json("pods", "-n", NAMESPACE)["items"],
               "a node cache pod", 60)  # fmt: skip

    # ... and the model pods that use it stay `restricted`: they only speak HTTP to it.
    document = PRIVATE.format(name="cached", namespace="delivery-restricted",
                              uri="s3://models/iris/model.onnx")  # fmt: skip
    model = parse_model(yaml.safe_load(document))
    settings = ClusterSettings(node_cache_url=URL)
    template = deployment(model, "cached-r1", model.spec, 1, settings)["spec"]["template"]
    fetch = _containers(template)["fetch"]
    assert fetch["args"][fetch["args"].index("--node-cache") + 1] == URL
    pod_manifest = {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "cached", "namespace": "delivery-restricted",
                                 "labels": template["metadata"]["labels"]},
                    "spec": template["spec"]}  # fmt: skip
    admitted = control_plane.kubectl("create", "--dry-run=server", "-f", "-",
                                     input=json.dumps(pod_manifest))  # fmt: skip
    assert admitted.returncode == 0, admitted.stderr
