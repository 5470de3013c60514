"""The Model CRD, generated from the ``api`` types, on a real kube-apiserver."""

from __future__ import annotations

import pytest

from tests.kubernetes.controlplane import ControlPlane
from tests.kubernetes.operating import MODEL

pytestmark = pytest.mark.slow


def test_the_crd_is_structural_and_serves_models(control_plane: ControlPlane, crd: str) -> None:
    found = control_plane.get_json("crd", "models.modelplane.io")
    problems = [c for c in found["status"]["conditions"] if c["type"] == "NonStructuralSchema"]
    assert problems == []
    applied = control_plane.kubectl("apply", "-f", "-", input=MODEL.format(name="ok", extra=""))
    assert applied.returncode == 0, applied.stderr
    table = control_plane.kubectl("get", "mdl", "ok", "-o", "wide", check=True).stdout
    assert table.split("\n")[0].split() == [
        "NAME", "URL", "READY", "REASON", "AGE", "STABLE", "CANARY", "FORMAT",
    ]  # fmt: skip
    assert "onnx" in table
    saturation = "  scaling: {metric: kvCache, target: 0.7}\n"
    applied = control_plane.kubectl(
        "apply", "-f", "-", input=MODEL.format(name="kv", extra=saturation)
    )
    assert applied.returncode == 0, applied.stderr
    stored = control_plane.get_json("mdl", "kv")["spec"]["scaling"]
    assert (stored["metric"], stored["target"], stored["targetInFlight"]) == ("kvCache", 0.7, 4)


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [
        ("  scaling: {minReplicas: -1}\n", "spec.scaling.minReplicas"),
        ("  rollout: {steps: [{weight: 150}]}\n", "spec.rollout.steps[0].weight"),
        ("  batching: {maxBatchSize: 8, surprise: 1}\n", 'unknown field "spec.batching.surprise"'),
        ("  scaling: {targetInFlight: 'four'}\n", "spec.scaling.targetInFlight"),
        (
            "  scaling: {metric: kvCache, target: 1.5}\n",
            "target for metric kvCache is the share of a replica's KV cache in use, more than 0 "
            "and at most 1",
        ),
        ("  scaling: {metric: waiting}\n", "a metric other than inFlight needs target"),
        ("  scaling: {metric: waiting, target: 0}\n", "spec.scaling.target"),
        ("  scaling: {target: 2.5}\n", "target for metric inFlight is requests in flight"),
    ],
)
def test_invalid_models_are_rejected_with_the_field(
    control_plane: ControlPlane, crd: str, extra: str, complaint: str
) -> None:
    rejected = control_plane.kubectl(
        "apply", "-f", "-", input=MODEL.format(name="bad", extra=extra)
    )
    assert rejected.returncode != 0
    assert complaint in rejected.stderr, rejected.stderr
    assert control_plane.kubectl("get", "mdl", "bad").returncode != 0  # nothing half-applied
