"""The operator's replica cap per namespace, decided without a cluster: how the cap is shared
out, what a bad annotation does, and that a namespace without a cap costs no scan."""

from __future__ import annotations

import logging

import pytest

from modelplane.api import Model
from modelplane.backends.kubernetes.observed import Body
from modelplane.backends.kubernetes.replica_quotas import ReplicaQuotas
from tests.models import onnx_model

CAP = "quota.modelplane.io/max-replicas"


def model(name: str, namespace: str = "team-a") -> Model:
    return onnx_model(name, namespace)


def namespace(name: str, **annotations: str) -> Body:
    return {"metadata": {"name": name, "annotations": annotations}}


def test_the_cap_is_shared_out_in_creation_order() -> None:
    requeued: list[str] = []
    quotas = ReplicaQuotas(requeued.append)
    quotas.observe_namespace("ADDED", namespace("team-a", **{CAP: "5"}))
    assert requeued == ["team-a"]
    models = [("2026-01-01", "team-a/old", 3), ("2026-02-01", "team-a/young", 0)]
    assert quotas.within(model("old"), 3, lambda: models) == (3, None)
    allowed, event = quotas.within(model("young"), 4, lambda: models)
    assert allowed == 2
    assert event is not None
    assert event.reason == "ReplicaQuotaReached"
    assert "4 replicas wanted, 2 allowed" in event.message
    # Held back again: no second event for the same episode.
    assert quotas.within(model("young"), 4, lambda: models) == (2, None)
    # The older Model wants fewer: the younger gets the room, and is asked to look again.
    requeued.clear()
    assert quotas.within(model("old"), 1, lambda: models) == (1, None)
    assert requeued == ["team-a"]
    assert quotas.within(model("young"), 4, lambda: models) == (4, None)


def test_a_bad_annotation_keeps_the_last_cap_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    quotas = ReplicaQuotas(lambda _: None)
    quotas.observe_namespace("ADDED", namespace("team-a", **{CAP: "2"}))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):  # every update of the Namespace (a label, say) comes back here
            quotas.observe_namespace("MODIFIED", namespace("team-a", **{CAP: "lots"}))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert CAP in warnings[0]
    assert "last valid replica cap" in warnings[0]
    models = [("2026-01-01", "team-a/m", 0)]
    assert quotas.within(model("m"), 5, lambda: models)[0] == 2
    # Mended, then the same mistake again: said again.
    quotas.observe_namespace("MODIFIED", namespace("team-a", **{CAP: "3"}))
    with caplog.at_level(logging.WARNING):
        quotas.observe_namespace("MODIFIED", namespace("team-a", **{CAP: "lots"}))
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
    assert quotas.within(model("m"), 5, lambda: models)[0] == 3
    # Gone at a fresh list (deleted while the watch was down), then made again as badly: said.
    quotas.replace_namespaces("", [])
    with caplog.at_level(logging.WARNING):
        quotas.observe_namespace("ADDED", namespace("team-a", **{CAP: "lots"}))
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 3


def test_a_namespace_without_a_cap_is_not_scanned() -> None:
    quotas = ReplicaQuotas(lambda _: None)
    quotas.observe_namespace("ADDED", namespace("team-b"))

    def scan() -> list[tuple[str, str, int]]:
        raise AssertionError("a namespace without a cap listed its Models")

    assert quotas.within(model("m", "team-b"), 7, scan) == (7, None)
