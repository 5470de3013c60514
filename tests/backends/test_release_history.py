"""Release history on a cluster, as the operator writes it onto ControllerRevisions and anyone
with list rights reads it back: milestones and SLO breaches survive the round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from modelplane.api.releases import Incident, Mark, Milestone
from modelplane.backends.kubernetes.release_history import (
    INCIDENTS,
    KEPT_INCIDENTS,
    incident_annotations,
    new_annotations,
    revision_history,
)

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def controller_revision(number: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"iris-r{number}",
            "namespace": "team-a",
            "labels": {"modelplane.io/model": "iris"},
            "creationTimestamp": T0.isoformat(),
            "annotations": annotations or {},
        },
        "revision": number,
        "data": {"digest": f"sha256:{number}"},
    }


def breach(revision: str, minute: int, restored: int | None = None) -> Incident:
    ended = T0 + timedelta(minutes=restored) if restored is not None else None
    return Incident("team-a", "iris", revision, T0 + timedelta(minutes=minute), ended, "Spent")


def annotated(revisions: dict[str, dict[str, Any]], changes: dict[str, dict[str, str]]) -> None:
    """What the API server holds after the operator's patches."""
    for name, added in changes.items():
        revisions[name]["metadata"]["annotations"].update(added)


def test_breaches_open_on_their_revision_once_and_close_and_read_back() -> None:
    revisions = {"iris-r1": controller_revision(1), "iris-r2": controller_revision(2)}
    annotated(revisions, incident_annotations([breach("iris-r1", 0)], revisions))
    # Open already: a repeated start writes nothing.
    assert incident_annotations([breach("iris-r1", 1)], revisions) == {}
    annotated(revisions, incident_annotations([breach("", 1, restored=30)], revisions))
    assert incident_annotations([breach("", 2, restored=31)], revisions) == {}  # none open
    # A revision this operator never saw (or none): the newest keeps it.
    annotated(revisions, incident_annotations([breach("iris-r9", 60)], revisions))
    read = {name: revision_history(body) for name, body in revisions.items()}
    assert {name: found.incidents for name, found in read.items() if found} == {
        "iris-r1": (breach("iris-r1", 0, restored=30),),
        "iris-r2": (breach("iris-r2", 60),),
    }


def test_a_revision_keeps_its_newest_breaches_and_skips_what_an_edit_broke() -> None:
    revisions = {"iris-r1": controller_revision(1)}
    for minute in range(0, 2 * (KEPT_INCIDENTS + 5), 2):
        annotated(revisions, incident_annotations([breach("iris-r1", minute)], revisions))
        annotated(revisions, incident_annotations([breach("", minute, minute + 1)], revisions))
    kept = json.loads(revisions["iris-r1"]["metadata"]["annotations"][INCIDENTS])
    assert len(kept) == KEPT_INCIDENTS
    assert kept[0]["started"] == (T0 + timedelta(minutes=10)).isoformat()  # the 5 oldest aged out
    revisions["iris-r1"]["metadata"]["annotations"][INCIDENTS] = '[{"started": "never"}, 7'
    found = revision_history(revisions["iris-r1"])
    assert found is not None
    assert found.incidents == ()


def test_a_release_through_a_freeze_keeps_its_reason_beside_the_rollback_reason() -> None:
    live = controller_revision(2)
    marks = [
        Mark("iris-r2", Milestone.FREEZE_OVERRIDDEN, T0, "tokenizer hotfix"),
        Mark("iris-r2", Milestone.ROLLED_BACK, T0 + timedelta(minutes=5), "AnalysisFailed"),
    ]
    live["metadata"]["annotations"] = new_annotations(marks, live)
    found = revision_history(live)
    assert found is not None
    assert {(m.milestone, m.reason) for m in found.marks} == {
        (Milestone.FREEZE_OVERRIDDEN, "tokenizer hotfix"),
        (Milestone.ROLLED_BACK, "AnalysisFailed"),
    }
