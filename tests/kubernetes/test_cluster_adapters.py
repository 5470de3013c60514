"""LoRA adapters on a cluster, end to end: the operator tells a chat Model's pods its adapter
list through a ConfigMap they mount (kept current by the kubelet's stand-in, ``podnet``), real
``modelplane serve`` processes with llama.cpp at the pod IPs fetch each adapter into a cache of
their own on its first request, and the cluster gateway routes adapter names and tells the
operator the ones that failed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelplane.api.adapters import ADAPTERS_FILE
from tests.kubernetes.conftest import condition
from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.kubernetes.gateways import RunningGateway, gateway_of
from tests.kubernetes.operating import RunningOperator, operating_namespace
from tests.kubernetes.podnet import PodRunner, pods_serving
from tests.llm.conftest import (
    EXAMPLE_SCALING,
    complete,
    completion_text,
    served_models,
    written_by,
)

pytestmark = pytest.mark.slow

NAMESPACE = "adapters"
NAME = "lora-chat"
BASE = f"{NAMESPACE}/{NAME}"  # how a client names a Model outside the default namespace


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return written_by("make_models.py", tmp_path_factory.mktemp("llm"))


@pytest.fixture(scope="module")
def pods(
    control_plane: ControlPlane, kwok_node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PodRunner]:
    yield from pods_serving(control_plane, NAMESPACE, tmp_path_factory.mktemp("pods"))


@pytest.fixture(scope="module")
def operator(
    operator_kubeconfig: Path, pods: PodRunner, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningOperator]:
    """The operator with the installed RBAC: ConfigMaps are among what it may write."""
    log = tmp_path_factory.mktemp("operator") / "op.log"
    yield from operating_namespace(operator_kubeconfig, NAMESPACE, log)


@pytest.fixture(scope="module")
def gateway(
    control_plane: ControlPlane, operator: RunningOperator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    report_to = f"http://127.0.0.1:{operator.metrics_port}/v1/load"
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with gateway_of(control_plane, NAMESPACE, log, "--report-to", report_to) as running:
        yield running


def with_adapters(llm_dir: Path, **files: str) -> str:
    """The chat example as NAMESPACE/NAME on one pod, serving ``files`` as adapters by name."""
    text = (llm_dir / "chat.yaml").read_text()
    text = text.replace("  name: tiny-chat\n", f"  name: {NAME}\n  namespace: {NAMESPACE}\n")
    text = text.replace(EXAMPLE_SCALING, "  scaling: {minReplicas: 1, maxReplicas: 1}\n")
    listed = "".join(
        f"  - name: {name}\n    source: {{uri: '{(llm_dir / file).as_uri()}'}}\n"
        for name, file in files.items()
    )
    return text + f"  adapters:\n{listed}"


def adapters_ready(plane: ControlPlane) -> dict[str, Any] | None:
    found = plane.get_json("mdl", "-n", NAMESPACE, NAME).get("status") or {}
    return next((c for c in found.get("conditions") or [] if c["type"] == "AdaptersReady"), None)


def told(plane: ControlPlane) -> list[str]:
    """The adapter names in the Model's ConfigMap."""
    found = plane.get_json("configmap", "-n", NAMESPACE, f"{NAME}-adapters")
    return [a["name"] for a in json.loads(found["data"][ADAPTERS_FILE])["adapters"]]


@pytest.fixture(scope="module")
def serving(
    control_plane: ControlPlane, pods: PodRunner, gateway: RunningGateway, llm_dir: Path
) -> str:
    """The Model with one adapter, its pod serving: the pod's name."""
    control_plane.kubectl("apply", "-f", "-", check=True,
                          input=with_adapters(llm_dir, pirate="tiny-chat-pirate.gguf"))  # fmt: skip
    model = lambda: control_plane.get_json("mdl", "-n", NAMESPACE, NAME)  # noqa: E731
    wait_until(lambda: condition(model(), "Ready") == "True", f"{NAME} Ready", 120)
    (pod,) = wait_until(lambda: pods.serving() or None, "the pod's runtime started", 60)
    wait_until(lambda: complete(gateway.url, BASE).status_code == 200, "the pod answering", 60)
    return str(pod)


def test_an_adapter_is_served_through_the_cluster_gateway_as_a_model_name(
    control_plane: ControlPlane, gateway: RunningGateway, serving: str
) -> None:
    assert served_models(gateway.url) == {BASE: None, f"{NAMESPACE}/pirate": BASE}
    base, pirate = (
        completion_text(complete(gateway.url, BASE)),
        completion_text(complete(gateway.url, f"{NAMESPACE}/pirate")),
    )
    assert base != pirate  # the adapter was fetched by the pod and applied
    listed = control_plane.get_json("configmap", "-n", NAMESPACE, f"{NAME}-adapters")
    assert listed["metadata"]["labels"]["modelplane.io/model"] == NAME
    assert [o["kind"] for o in listed["metadata"]["ownerReferences"]] == ["Model"]
    assert told(control_plane) == ["pirate"]
    found = wait_until(lambda: adapters_ready(control_plane), "AdaptersReady on status", 30)
    assert (found["status"], found["reason"]) == ("True", "AdaptersListed")


def test_an_adapter_edit_reaches_the_same_pod_and_a_broken_adapter_is_reported(
    control_plane: ControlPlane,
    pods: PodRunner,
    operator: RunningOperator,
    gateway: RunningGateway,
    llm_dir: Path,
    serving: str,
) -> None:
    broken = llm_dir / "broken-adapter.gguf"
    broken.write_bytes(b"GGUF but nothing more")
    files = {"pirate": "tiny-chat-pirate.gguf", "poet": "tiny-chat-poet.gguf"}
    edited = with_adapters(llm_dir, **files, broken="broken-adapter.gguf")
    control_plane.kubectl("apply", "-f", "-", input=edited, check=True)
    wait_until(lambda: complete(gateway.url, f"{NAMESPACE}/poet").status_code == 200,
               "poet served by the running pod", 60)  # fmt: skip
    poet = completion_text(complete(gateway.url, f"{NAMESPACE}/poet"))
    assert poet != completion_text(complete(gateway.url, f"{NAMESPACE}/pirate"))

    failed = complete(gateway.url, f"{NAMESPACE}/broken")
    assert failed.status_code == 424, failed.text
    assert "adapter 'broken' of model 'lora-chat'" in failed.json()["error"]["message"]
    assert completion_text(complete(gateway.url, BASE))  # the base model serves on

    def reported() -> dict[str, Any] | None:
        found = adapters_ready(control_plane)
        return found if found and found["status"] == "False" else None

    found = wait_until(reported, "AdaptersReady False from the gateway's report", 30)
    assert found["reason"] == "AdapterUnavailable"
    assert "adapter 'broken'" in found["message"]

    # No new revision, no pod started again: the same process answered throughout.
    status = control_plane.get_json("mdl", "-n", NAMESPACE, NAME)["status"]
    assert [r["name"] for r in status["revisions"]] == [f"{NAME}-r1"]
    assert pods.serving() == {serving}

    # The broken one taken off the list: the condition is True again.
    control_plane.kubectl("apply", "-f", "-", input=with_adapters(llm_dir, **files), check=True)
    wait_until(lambda: (adapters_ready(control_plane) or {}).get("status") == "True",
               "AdaptersReady True again", 30)  # fmt: skip
    assert told(control_plane) == ["pirate", "poet"]
    assert pods.serving() == {serving}


def test_a_converged_model_with_adapters_costs_no_write(
    control_plane: ControlPlane, operator: RunningOperator, serving: str
) -> None:
    """A pass over a Model whose ConfigMap says what its spec does writes nothing."""
    wait_until(lambda: (adapters_ready(control_plane) or {}).get("status") == "True",
               "AdaptersReady True", 30)  # fmt: skip
    before, passes = operator.writes(), operator.reconciles() or 0
    # An annotation changes no spec: the Model is queued and reconciled, nothing to write.
    control_plane.kubectl("annotate", "--overwrite", "mdl", "-n", NAMESPACE, NAME,
                          "example.com/touched=1", check=True)  # fmt: skip
    wait_until(lambda: (operator.reconciles() or 0) > passes, "a pass over the Model", 30)
    assert operator.writes() == before, operator.writes_by_kind()
