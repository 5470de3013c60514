"""Argo CD's and Flux's view of a Model's health, on fixture objects of each kind of state."""

from __future__ import annotations

from typing import Any

import pytest

from tests.kubernetes.health import argocd, flux


def model(
    generation: int, observed: int | None, *conditions: tuple[str, str, str], **extra: Any
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [
            {"type": t, "status": s, "reason": r, "message": f"{r} message",
             "lastTransitionTime": "2026-11-27T10:00:00Z"}
            for t, s, r in conditions
        ],
        **extra,
    }  # fmt: skip
    if observed is not None:
        status["observedGeneration"] = observed
    return {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "iris", "namespace": "default", "generation": generation},
        "spec": {"source": {"uri": "https://models.example.com/iris.onnx"}, "format": "onnx"},
        "status": status,
    }


READY = ("Ready", "True", "RevisionReady")
STALLED = ("Stalled", "True", "RolledBack")
NOT_STALLED = ("Stalled", "False", "Progressing")
ROLLING = ("RolloutProgressing", "True", "Progressing")
FAILING = (("Ready", "False", "RevisionFailed"), ("Stalled", "True", "RevisionFailing"))
PAUSED = {"rollout": {"phase": "Paused", "step": 0}}
HELD = ("RolloutProgressing", "True", "Paused")
STARTING = ("Ready", "False", "RevisionStarting")


@pytest.mark.parametrize(
    ("obj", "argo", "flux_says"),
    [
        (model(1, 1, READY, NOT_STALLED), "Healthy", "Current"),
        (model(2, 1, READY, NOT_STALLED), "Progressing", "InProgress"),
        (model(1, None), "Progressing", "InProgress"),
        (model(2, 2, ("Ready", "True", "RevisionReady"), ROLLING), "Progressing", "InProgress"),
        (model(2, 2, ("Ready", "False", "RolledBack"), STALLED), "Degraded", "Failed"),
        (model(1, 1, *FAILING), "Degraded", "Failed"),
        (model(2, 2, READY, HELD, **PAUSED), "Suspended", "InProgress"),
        (model(1, 1, STARTING, NOT_STALLED), "Progressing", "InProgress"),
    ],
)  # fmt: skip
def test_health_of_each_state(obj: dict[str, Any], argo: str, flux_says: str) -> None:
    status, message = argocd(obj)
    assert status == argo
    assert flux(obj) == flux_says
    if status == "Degraded":
        assert "message" in message  # the condition's own words reach the user


def test_an_object_with_no_status_yet_is_progressing() -> None:
    fresh = model(1, None)
    del fresh["status"]
    assert argocd(fresh) == ("Progressing", "Waiting for the modelplane operator")
