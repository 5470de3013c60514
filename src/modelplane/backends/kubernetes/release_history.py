"""Release milestones on a cluster: annotations on each revision's ControllerRevision, written
once each (the first time wins, as in the embedded store), so the history lives and dies with
the revisions themselves and survives operator restarts and failovers.

    releases.modelplane.io/committed   2026-12-01T08:30:00+00:00
    releases.modelplane.io/traffic     2026-12-01T09:00:02+00:00
    releases.modelplane.io/promoted    2026-12-01T09:04:10+00:00
    releases.modelplane.io/rolledBack  2026-12-01T09:04:10+00:00
    releases.modelplane.io/reason      AnalysisFailed
    releases.modelplane.io/freezeOverridden      2026-12-01T10:00:00+00:00
    releases.modelplane.io/freezeOverrideReason  hotfix for the tokenizer
    releases.modelplane.io/incidents   [{"started": "…", "restored": "…", "reason": "…"}]

SLO breaches (incidents) are kept on the revision that was stable when each began, the newest
``KEPT_INCIDENTS`` of them, as one JSON list: written when a breach begins or ends, never while
it lasts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from lightkube import ALL_NS, AsyncClient
from lightkube.resources.apps_v1 import ControllerRevision

from modelplane.api.releases import Incident, Mark, Milestone, RevisionHistory
from modelplane.backends.kubernetes.children import LABEL_MANAGED_BY, LABEL_MODEL, MANAGER
from modelplane.backends.kubernetes.observed import Body, as_dict

PREFIX = "releases.modelplane.io/"
# Where a milestone's reason is kept (the rollback's key predates the others).
REASONS = {
    Milestone.ROLLED_BACK: PREFIX + "reason",
    Milestone.FREEZE_OVERRIDDEN: PREFIX + "freezeOverrideReason",
}
INCIDENTS = PREFIX + "incidents"
KEPT_INCIDENTS = 20  # an annotation stays small; older breaches age out of the figures anyway


def new_annotations(marks: Sequence[Mark], live: Body) -> dict[str, str]:
    """The annotations ``marks`` add to the ControllerRevision ``live``: none it already has."""
    present = live["metadata"].get("annotations") or {}
    found: dict[str, str] = {}
    for mark in marks:
        key = PREFIX + mark.milestone.value
        if key in present:
            continue
        found[key] = mark.at.isoformat()
        if mark.milestone in REASONS:
            found[REASONS[mark.milestone]] = mark.reason
    return found


def incident_annotations(
    incidents: Sequence[Incident], revisions: Mapping[str, Body]
) -> dict[str, dict[str, str]]:
    """The incidents annotation of each ControllerRevision (of one Model, by name) that
    ``incidents`` change: a beginning opens one on its revision (else the newest) unless one
    is open already; an ending closes the open one."""
    kept = {name: _listed(body) for name, body in revisions.items()}
    changed: set[str] = set()
    for incident in incidents:
        opened = next(
            (name for name, entries in kept.items() if any(e["restored"] is None for e in entries)),
            None,
        )
        if incident.restored is not None:
            if opened is not None:
                for entry in kept[opened]:
                    if entry["restored"] is None:
                        entry["restored"] = incident.restored.isoformat()
                changed.add(opened)
            continue
        if opened is not None or not kept:
            continue
        name = incident.revision if incident.revision in kept else _newest(revisions)
        entry = {"started": incident.started.isoformat(), "restored": None,
                 "reason": incident.reason}  # fmt: skip
        kept[name] = [*kept[name], entry][-KEPT_INCIDENTS:]
        changed.add(name)
    return {name: {INCIDENTS: json.dumps(kept[name], separators=(",", ":"))} for name in changed}


def _newest(revisions: Mapping[str, Body]) -> str:
    return max(revisions, key=lambda name: int(revisions[name].get("revision", 0)))


def _listed(body: Body) -> list[dict[str, Any]]:
    """The incidents a ControllerRevision keeps; whatever is not one (an edit) is skipped."""
    text = (body["metadata"].get("annotations") or {}).get(INCIDENTS, "[]")
    try:
        entries = json.loads(text)
    except ValueError:
        return []
    if not isinstance(entries, list):
        return []
    return [
        {"started": e["started"], "restored": e.get("restored"), "reason": str(e.get("reason", ""))}
        for e in entries
        if isinstance(e, dict) and _time(e.get("started")) is not None
    ]


def revision_history(body: Body) -> RevisionHistory | None:
    """One ControllerRevision of ours as a revision's history; None for anything else."""
    meta = body["metadata"]
    model = (meta.get("labels") or {}).get(LABEL_MODEL)
    created = _time(meta.get("creationTimestamp"))
    if model is None or created is None:
        return None
    annotations = meta.get("annotations") or {}
    marks = []
    for milestone in Milestone:
        at = _time(annotations.get(PREFIX + milestone.value))
        if at is None:  # not reached, or edited into something that is not a time
            continue
        reason = annotations.get(REASONS[milestone], "") if milestone in REASONS else ""
        marks.append(Mark(meta["name"], milestone, at, reason))
    namespace = meta.get("namespace", "default")
    incidents = tuple(
        Incident(namespace, model, meta["name"], started, _time(entry["restored"]), entry["reason"])
        for entry in _listed(body)
        if (started := _time(entry["started"])) is not None
    )
    return RevisionHistory(
        namespace, model, meta["name"], int(body.get("revision", 0)),
        (body.get("data") or {}).get("digest", ""), created, tuple(marks), incidents,
    )  # fmt: skip


def history_of(bodies: Iterable[Body]) -> list[RevisionHistory]:
    return [found for body in bodies if (found := revision_history(body)) is not None]


def _time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo is not None else None


async def cluster_history(client: AsyncClient, namespace: str | None) -> list[RevisionHistory]:
    """Every revision's history on the cluster (of ``namespace``, or of every namespace), as the
    caller's own credentials may list ControllerRevisions: Kubernetes RBAC decides who sees
    which team's releases."""
    found = client.list(
        ControllerRevision,
        namespace=namespace if namespace is not None else ALL_NS,
        labels={LABEL_MANAGED_BY: MANAGER},
    )
    return history_of([as_dict(body) async for body in found])
