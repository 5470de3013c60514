"""With the Gateway API Inference Extension installed (its released InferencePool CRD, on the
real API server), each running revision of a generative Model is an InferencePool, and the
Model's HTTPRoute sends its OpenAI API requests to the pools by the rollout's weights: a
cluster's Gateway running the extension's endpoint picker routes to the replicas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.kubernetes.operating import RunningOperator, model, operating, ready

pytestmark = pytest.mark.slow

# kwok runs no containers: nothing fetches the sources.
CHAT = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata: {{name: {name}, namespace: default}}
spec:
  source: {{uri: 'https://models.example.com/tiny-chat.gguf'}}
  format: llamacpp
  task: chat
  resources: {{cpu: {millicpu}m}}
  rollout: {rollout}
  adapters:
  - {{name: pirate, source: {{uri: 'https://models.example.com/pirate.gguf'}}}}
"""
CANARY = "{steps: [{weight: 10, pauseSeconds: 600}]}"
IRIS = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata: {name: plain, namespace: default}
spec:
  source: {uri: 'https://models.example.com/iris.onnx'}
  format: onnx
  task: classification
"""


@pytest.fixture(scope="module")
def extension(control_plane: ControlPlane, k8s_bin_dir: Path) -> None:
    """Gateway API's CRDs and the inference extension's InferencePool, as a cluster with the
    extension installed has them."""
    cache = k8s_bin_dir.parents[1]
    crds = sorted(
        [*cache.glob("gateway-api-*/*.yaml"), *cache.glob("inference-extension-*/*.yaml")]
    )
    assert any("inferencepools" in crd.name for crd in crds), "run scripts/k8s-testenv"
    for crd in crds:
        control_plane.kubectl("apply", "--server-side", "-f", str(crd), check=True)
    wait_until(
        lambda: control_plane.kubectl("get", "httproutes,inferencepools").returncode == 0,
        "HTTPRoute and InferencePool served",
    )


@pytest.fixture(scope="module")
def pool_operator(
    extension: None,
    operator_kubeconfig: Path,
    kwok_node: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningOperator]:
    log = tmp_path_factory.mktemp("pools") / "op.log"
    yield from operating(operator_kubeconfig, log, "--endpoint-picker", "{model}-picker:9010")


def pools(plane: ControlPlane, name: str) -> dict[str, dict[str, Any]]:
    listed = plane.get_json("inferencepools", "-l", f"modelplane.io/model={name}")
    return {
        p["metadata"]["name"]: p
        for p in listed["items"]
        if not p["metadata"].get("deletionTimestamp")
    }


def openai_backends(route: dict[str, Any]) -> dict[str, int]:
    """The pools the route's OpenAI API rules send to, by weight."""
    found: dict[str, int] = {}
    for rule in route["spec"]["rules"]:
        for backend in rule["backendRefs"]:
            if backend.get("kind") == "InferencePool":
                found[backend["name"]] = backend["weight"]
    return found


def named(route: dict[str, Any]) -> list[str]:
    """The model names (the body's ``model``, as a header) the route's OpenAI rules match."""
    return [
        header["value"]
        for rule in route["spec"]["rules"]
        for match in rule["matches"]
        for header in match.get("headers", [])
    ]


def apply_chat(plane: ControlPlane, version: int, rollout: str = CANARY) -> None:
    document = CHAT.format(name="chatty", millicpu=100 * version, rollout=rollout)
    plane.kubectl("apply", "-f", "-", input=document, check=True)


def test_each_revision_is_a_pool_and_the_route_splits_over_them(
    control_plane: ControlPlane, pool_operator: RunningOperator
) -> None:
    apply_chat(control_plane, 1)
    wait_until(lambda: ready(control_plane, "chatty"), "chatty Ready", 60)
    wait_until(lambda: "chatty-r1" in pools(control_plane, "chatty"), "chatty-r1's pool", 30)
    pool = pools(control_plane, "chatty")["chatty-r1"]
    labels = {"modelplane.io/model": "chatty", "modelplane.io/revision": "chatty-r1"}
    assert pool["spec"]["selector"] == {"matchLabels": labels}
    assert pool["spec"]["targetPorts"] == [{"number": 8080}]  # the runtime's port in the pod
    assert pool["spec"]["endpointPickerRef"] == {
        "group": "", "kind": "Service", "name": "chatty-picker", "port": {"number": 9010},
        "failureMode": "FailClose",
    }  # fmt: skip
    owner = pool["metadata"]["ownerReferences"][0]
    assert owner["uid"] == model(control_plane, "chatty")["metadata"]["uid"]
    # The pool is the revision's pods: its selector finds them.
    selected = control_plane.get_json("pods", "-l", ",".join(f"{k}={v}" for k, v in labels.items()))
    assert len(selected["items"]) == 1

    route = control_plane.get_json("httproute", "chatty")
    assert openai_backends(route) == {"chatty-r1": 100}
    # Clients name the model, or its adapter, with or without the default namespace.
    assert sorted(named(route)) == ["chatty", "default/chatty", "default/pirate", "pirate"]
    openai = [r for r in route["spec"]["rules"] if openai_backends({"spec": {"rules": [r]}})]
    assert {m["path"]["value"] for r in openai for m in r["matches"]} == {"/v1/"}

    apply_chat(control_plane, 2)  # a new revision, as a canary at 10%
    wait_until(
        lambda: openai_backends(control_plane.get_json("httproute", "chatty"))
        == {"chatty-r1": 90, "chatty-r2": 10},
        "the route's pools split 90/10", 60,
    )  # fmt: skip
    assert set(pools(control_plane, "chatty")) == {"chatty-r1", "chatty-r2"}

    apply_chat(control_plane, 3, rollout="{strategy: Immediate}")
    wait_until(
        lambda: set(pools(control_plane, "chatty")) == {"chatty-r3"},
        "the retired revisions' pools deleted", 60,
    )  # fmt: skip
    route = control_plane.get_json("httproute", "chatty")
    assert openai_backends(route) == {"chatty-r3": 100}


def test_a_model_that_is_not_generative_has_no_pool(
    control_plane: ControlPlane, pool_operator: RunningOperator
) -> None:
    control_plane.kubectl("apply", "-f", "-", input=IRIS, check=True)
    wait_until(lambda: ready(control_plane, "plain"), "plain Ready", 60)
    route = control_plane.get_json("httproute", "plain")
    assert pools(control_plane, "plain") == {}
    assert openai_backends(route) == {}
    assert len(route["spec"]["rules"]) == 2  # its v2 paths only
