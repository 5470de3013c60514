"""What the operator observes of replica caps, without a cluster: claims that change queue the
namespace, what a bad annotation does, and that a namespace without a cap costs no scan. (How
the cap is shared out is ``control.quotas``, tested with both modes in tests/control.)"""

from __future__ import annotations

import logging

import pytest

from modelplane.backends.kubernetes.observed import Body
from modelplane.backends.kubernetes.replica_quotas import ReplicaQuotas
from modelplane.control.quotas import room

CAP = "quota.modelplane.io/max-replicas"


def limit_of(quotas: ReplicaQuotas, models: list[tuple[str, str, int]]) -> int | None:
    cap = quotas.cap("team-a", lambda: models)
    return cap.limit if cap is not None else None


def namespace(name: str, **annotations: str) -> Body:
    return {"metadata": {"name": name, "annotations": annotations}}


def test_claims_are_kept_and_a_changed_claim_queues_the_namespace() -> None:
    requeued: list[str] = []
    quotas = ReplicaQuotas(requeued.append)
    quotas.observe_namespace("ADDED", namespace("team-a", **{CAP: "5"}))
    assert requeued == ["team-a"]
    models = [
        ("2026-01-01T00:00:00Z", "team-a/old", 3),
        ("2026-02-01T00:00:00Z", "team-a/young", 0),
    ]
    requeued.clear()
    quotas.claim("team-a", "team-a/young", 4)
    assert requeued == ["team-a"]
    quotas.claim("team-a", "team-a/young", 4)  # the same claim: nobody needs a look
    assert requeued == ["team-a"]
    cap = quotas.cap("team-a", lambda: models)
    assert cap is not None
    assert cap.limit == 5
    # The old Model has no claim yet: it counts with what it runs; the young one with its claim.
    assert [(c.key, c.replicas) for c in sorted(cap.claims)] == [
        ("team-a/old", 3),
        ("team-a/young", 4),
    ]
    assert room(cap, "team-a/young") == (2, 3)
    quotas.forget("team-a/young")
    cap = quotas.cap("team-a", lambda: models)
    assert cap is not None
    assert [c.replicas for c in sorted(cap.claims)] == [3, 0]


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
    models = [("2026-01-01T00:00:00Z", "team-a/m", 0)]
    assert limit_of(quotas, models) == 2
    # Mended, then the same mistake again: said again.
    quotas.observe_namespace("MODIFIED", namespace("team-a", **{CAP: "3"}))
    with caplog.at_level(logging.WARNING):
        quotas.observe_namespace("MODIFIED", namespace("team-a", **{CAP: "lots"}))
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
    assert limit_of(quotas, models) == 3
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

    assert quotas.cap("team-b", scan) is None
