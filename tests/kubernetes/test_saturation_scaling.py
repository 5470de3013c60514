"""Autoscaling on saturation on a cluster: the operator reads the waiting lists of a chat
Model's pods (real `modelplane serve` processes with llama.cpp at the pod IPs, ``podnet``) and
scales out on them. The load report the operator hears is posted here, as a gateway posts it,
counting no request in flight (the chats go to the pod itself): only the pods' own reports can
ask for the second replica."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelplane.api.load import LoadReport, ModelLoad
from modelplane.backends.kubernetes.children import RUNTIME_PORT
from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.kubernetes.operating import RunningOperator, operating_namespace
from tests.kubernetes.podnet import PodRunner, pods_serving
from tests.llm.conftest import chatting, scaled_on_waiting, written_by

pytestmark = pytest.mark.slow

NAMESPACE = "saturation"


@pytest.fixture(scope="module")
def pods(
    control_plane: ControlPlane, kwok_node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PodRunner]:
    yield from pods_serving(control_plane, NAMESPACE, tmp_path_factory.mktemp("pods"))


@pytest.fixture(scope="module")
def operator(
    operator_kubeconfig: Path, pods: PodRunner, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningOperator]:
    log = tmp_path_factory.mktemp("operator") / "op.log"
    yield from operating_namespace(operator_kubeconfig, NAMESPACE, log)


@pytest.fixture(scope="module")
def reporting(operator: RunningOperator) -> Iterator[None]:
    """A gateway's load report every half second: the Model used, nothing in flight."""
    load = LoadReport(gateway="gateway-0", models={f"{NAMESPACE}/busy-chat": ModelLoad(
        idle_seconds=0)}).model_dump_json(by_alias=True)  # fmt: skip
    stopped = threading.Event()

    def post() -> None:
        url = f"http://127.0.0.1:{operator.metrics_port}/v1/load"
        while not stopped.wait(0.5):
            httpx.post(url, content=load, headers={"content-type": "application/json"})

    thread = threading.Thread(target=post)
    thread.start()
    yield
    stopped.set()
    thread.join(timeout=10)


def status_of(plane: ControlPlane, name: str) -> dict[str, Any]:
    found: dict[str, Any] = plane.get_json("mdl", "-n", NAMESPACE, name).get("status") or {}
    return found


def scaling_active(plane: ControlPlane) -> str:
    found = status_of(plane, "busy-chat").get("conditions") or []
    return next((f"{c['status']} {c['reason']}" for c in found if c["type"] == "ScalingActive"), "")


def test_pods_waiting_lists_scale_a_chat_model_out(
    control_plane: ControlPlane,
    pods: PodRunner,
    reporting: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    llm_dir = written_by("make_models.py", tmp_path_factory.mktemp("llm"))
    manifest = scaled_on_waiting(llm_dir, "busy-chat", NAMESPACE)
    control_plane.kubectl("apply", "-f", "-", input=manifest, check=True)
    wait_until(lambda: scaling_active(control_plane) == "True MetricReported",
               "the pod's reports driving scaling", 90)  # fmt: skip
    (pod,) = pods.serving()
    with chatting(f"http://{pods.ips[pod]}:{RUNTIME_PORT}/v1", "busy-chat", clients=4) as answered:
        wait_until(lambda: len(pods.serving()) == 2, "a second pod serving", 60)
    assert answered
    revisions = status_of(control_plane, "busy-chat")["revisions"]
    assert [r["replicas"] for r in revisions] == [2]
