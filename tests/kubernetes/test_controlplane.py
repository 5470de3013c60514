"""The test control plane itself: a real API server, controllers and scheduler, with kwok
standing in for kubelets, so that Nodes become Ready and Pods Running without containers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.kubernetes.conftest import condition
from tests.kubernetes.controlplane import ControlPlane, wait_until

pytestmark = pytest.mark.slow


def test_api_server_is_ready(control_plane: ControlPlane) -> None:
    result = control_plane.kubectl("get", "--raw", "/readyz")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_node_becomes_ready_through_kwok(control_plane: ControlPlane, kwok_node: str) -> None:
    node = control_plane.get_json("node", kwok_node)
    assert condition(node, "Ready") == "True"
    assert node["status"]["nodeInfo"]["kubeletVersion"].startswith("kwok-")
    lease = control_plane.get_json("lease", kwok_node, "-n", "kube-node-lease")
    assert lease["spec"].get("renewTime"), "kwok renews the Node's Lease"


def test_deployment_pods_run_and_back_a_service(
    control_plane: ControlPlane, kwok_node: str
) -> None:
    namespace = "kwok-deployment"
    labels = {"app": "web"}
    control_plane.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
    )
    control_plane.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "registry.invalid/modelplane/never-pulled:1",
                                "ports": [{"containerPort": 8080, "name": "http"}],
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": "http"}]},
        },
    )

    def running_pods() -> list[Any] | None:
        pods = control_plane.get_json("pods", "-n", namespace, "-l", "app=web")["items"]
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        return running if len(running) == 2 else None

    pods = wait_until(running_pods, "2 Running pods of deployment web")
    assert {p["spec"]["nodeName"] for p in pods} == {kwok_node}
    assert all(condition(p, "Ready") == "True" for p in pods)

    def available() -> bool:
        deployment = control_plane.get_json("deployment", "web", "-n", namespace)
        return bool(deployment["status"].get("availableReplicas") == 2)

    wait_until(available, "deployment web to report 2 available replicas")

    def ready_endpoints() -> set[str] | None:
        slices = control_plane.get_json(
            "endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=web"
        )["items"]
        addresses = {
            address
            for endpoint_slice in slices
            for endpoint in endpoint_slice.get("endpoints") or []
            if endpoint.get("conditions", {}).get("ready")
            for address in endpoint["addresses"]
        }
        return addresses if len(addresses) == 2 else None

    addresses = wait_until(
        ready_endpoints, "an EndpointSlice of service web with 2 ready endpoints"
    )
    assert addresses == {p["status"]["podIP"] for p in pods}
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=True)
