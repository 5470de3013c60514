"""With Gateway API installed, the operator also writes an HTTPRoute per Model that carries the
rollout's traffic split, for a cluster's own Gateway implementation to enforce."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.kubernetes.operating import RunningOperator, apply, model, operating, ready

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway_api(control_plane: ControlPlane, k8s_bin_dir: Path) -> None:
    crds = sorted(k8s_bin_dir.parents[1].glob("gateway-api-*/*.yaml"))
    assert crds, "Gateway API CRDs missing: run scripts/k8s-testenv"
    for crd in crds:
        control_plane.kubectl("apply", "--server-side", "-f", str(crd), check=True)
    wait_until(
        lambda: control_plane.kubectl("get", "httproutes").returncode == 0, "HTTPRoute served"
    )


@pytest.fixture(scope="module")
def routing_operator(
    gateway_api: None,
    operator_kubeconfig: Path,
    kwok_node: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningOperator]:
    log = tmp_path_factory.mktemp("routing") / "op.log"
    yield from operating(operator_kubeconfig, log, "--route-parent", "gateway-system/edge")


def backends(route: dict[str, Any]) -> dict[str, int]:
    return {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}


def test_the_route_follows_the_rollout(
    control_plane: ControlPlane, routing_operator: RunningOperator
) -> None:
    apply(control_plane, "routed")
    wait_until(lambda: ready(control_plane, "routed"), "routed Ready", 60)
    route = control_plane.get_json("httproute", "routed")
    assert route["spec"]["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge",
         "namespace": "gateway-system"},
    ]  # fmt: skip
    namespaced, short = route["spec"]["rules"]
    assert namespaced["matches"][0]["path"] == {
        "type": "PathPrefix", "value": "/v2/models/default/routed",
    }  # fmt: skip
    rewrite = namespaced["filters"][0]["urlRewrite"]["path"]
    assert rewrite == {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2/models/routed"}
    assert short["matches"][0]["path"]["value"] == "/v2/models/routed"
    assert backends(route) == {"routed-r1": 100}
    owner = route["metadata"]["ownerReferences"][0]
    assert owner["uid"] == model(control_plane, "routed")["metadata"]["uid"]

    apply(control_plane, "routed", "  batching: {maxBatchSize: 8}\n")
    wait_until(
        lambda: (
            backends(control_plane.get_json("httproute", "routed"))
            == {"routed-r1": 90, "routed-r2": 10}
        ),
        "the route split 90/10",
        60,
    )
