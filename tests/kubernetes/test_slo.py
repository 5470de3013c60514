"""The operator measures a Model's SLO from Prometheus, reports the breach on the Model's status
and holds a new revision while the budget is spent, until the override annotation lets it
through; on a real control plane, with the operator's own RBAC.

kwok runs no containers, so the requests are served by a real embedded platform whose gateway
the Prometheus scrapes: a gateway counts ``modelplane_gateway_requests_total{model="default/
frozen"}`` the same wherever it runs, and the operator reads nothing else of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kubernetes.controlplane import ControlPlane, wait_until
from tests.kubernetes.operating import MODEL, RunningOperator, events, model, names
from tests.platform.conftest import Platform
from tests.prometheus import PrometheusServer
from tests.traffic import flaky_manifest, steady_load

pytestmark = pytest.mark.slow

SLO = "  slo: {availability: 0.99, window: 1d, freeze: true}\n"
OVERRIDE = "modelplane.io/freeze-override"


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A Prometheus that has seen every request to ``default/frozen`` fail."""
    root = tmp_path_factory.mktemp("served")
    platform = Platform(root / "state", root / "up.log")
    manifest = root / "frozen.yaml"
    manifest.write_text(flaky_manifest("frozen", True, "  rollout: {strategy: Immediate}\n"))
    try:
        assert platform.cli("apply", "-f", str(manifest)).returncode == 0
        platform.wait_condition("frozen", "Ready", "True", "RevisionReady")
        prometheus = PrometheusServer(root, [platform.gateway.removeprefix("http://")])
        errors = 'modelplane_gateway_requests_total{model="default/frozen", outcome="error"}'
        with steady_load(f"{platform.gateway}/v2/models/frozen/infer", clients=1):
            wait_until(lambda: len(prometheus.query(errors)) > 0, "errors scraped", 30)
        yield prometheus
        prometheus.stop()
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def operator(
    operator_kubeconfig: Path,
    kwok_node: str,
    failing: PrometheusServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningOperator]:
    log = tmp_path_factory.mktemp("op") / "op.log"
    running = RunningOperator(operator_kubeconfig, log, options=("--prometheus", failing.url))
    yield running
    running.stop()


def apply(plane: ControlPlane, uri: str, annotations: str = "") -> None:
    document = MODEL.format(name="frozen", extra=SLO).replace(
        "https://models.example.com/iris.onnx", uri
    )
    if annotations:
        document = document.replace("namespace: default}", f"namespace: default, {annotations}}}")
    plane.kubectl("apply", "-f", "-", input=document, check=True)


def test_a_spent_budget_breaches_and_holds_a_release_until_overridden(
    control_plane: ControlPlane, operator: RunningOperator
) -> None:
    apply(control_plane, "https://models.example.com/iris.onnx")

    def breached() -> dict[str, str]:
        found = model(control_plane, "frozen").get("status", {}).get("conditions", [])
        return next((c for c in found if c["type"] == "SLOBreached"), {})

    wait_until(lambda: breached().get("reason") == "ErrorBudgetSpent", "SLOBreached", 60)
    slo = model(control_plane, "frozen")["status"]["slo"]
    assert (slo["source"], slo["availability"], slo["budgetRemaining"]) == ("prometheus", 0, -99)

    apply(control_plane, "https://models.example.com/iris-v2.onnx")

    def frozen() -> bool:
        found = model(control_plane, "frozen")["status"]["conditions"]
        return any(c["type"] == "Stalled" and c["reason"] == "ReleaseFrozen" for c in found)

    wait_until(frozen, "Stalled with ReleaseFrozen", 30)
    assert names(control_plane, "controllerrevision", "frozen") == {"ControllerRevision/frozen-r1"}
    assert any(
        e.startswith("ReleaseFrozen: release frozen") for e in events(control_plane, "frozen")
    )

    apply(
        control_plane,
        "https://models.example.com/iris-v2.onnx",
        f'annotations: {{"{OVERRIDE}": "INC-9: the fix"}}',
    )
    wait_until(
        lambda: (
            "ControllerRevision/frozen-r2" in names(control_plane, "controllerrevision", "frozen")
        ),
        "frozen-r2 made",
        30,
    )
    wait_until(
        lambda: any(e.startswith("FreezeOverridden: frozen-r2 released while the error budget "
                                 "over 1d is spent: INC-9: the fix")
                    for e in events(control_plane, "frozen")),
        "the override told", 30,
    )  # fmt: skip

    # The release history keeps both on the ControllerRevisions, where `modelplane releases
    # --cluster` reads them: the breach (open: a day's budget stays spent) on the revision that
    # was stable when it began, the override's reason on the revision it let out.
    def kept(name: str) -> dict[str, str]:
        found = control_plane.get_json("controllerrevision", name)["metadata"]
        return {k: v for k, v in (found.get("annotations") or {}).items() if "releases." in k}

    breach = json.loads(kept("frozen-r1")["releases.modelplane.io/incidents"])
    assert [(b["restored"], b["reason"]) for b in breach] == [(None, "ErrorBudgetSpent")]
    assert kept("frozen-r2")["releases.modelplane.io/freezeOverrideReason"] == "INC-9: the fix"
