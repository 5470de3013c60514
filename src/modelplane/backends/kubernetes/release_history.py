"""Release milestones on a cluster: annotations on each revision's ControllerRevision, written
once each (the first time wins, as in the embedded store), so the history lives and dies with
the revisions themselves and survives operator restarts and failovers.

    releases.modelplane.io/committed   2026-12-01T08:30:00+00:00
    releases.modelplane.io/traffic     2026-12-01T09:00:02+00:00
    releases.modelplane.io/promoted    2026-12-01T09:04:10+00:00
    releases.modelplane.io/rolledBack  2026-12-01T09:04:10+00:00
    releases.modelplane.io/reason      AnalysisFailed
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from lightkube import ALL_NS, AsyncClient
from lightkube.resources.apps_v1 import ControllerRevision

from modelplane.api.releases import Mark, Milestone, RevisionHistory
from modelplane.backends.kubernetes.children import LABEL_MANAGED_BY, LABEL_MODEL, MANAGER
from modelplane.backends.kubernetes.observed import Body, as_dict

PREFIX = "releases.modelplane.io/"
REASON = PREFIX + "reason"


def new_annotations(marks: Sequence[Mark], live: Body) -> dict[str, str]:
    """The annotations ``marks`` add to the ControllerRevision ``live``: none it already has."""
    present = live["metadata"].get("annotations") or {}
    found: dict[str, str] = {}
    for mark in marks:
        key = PREFIX + mark.milestone.value
        if key in present:
            continue
        found[key] = mark.at.isoformat()
        if mark.milestone is Milestone.ROLLED_BACK:
            found[REASON] = mark.reason
    return found


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
        reason = annotations.get(REASON, "") if milestone is Milestone.ROLLED_BACK else ""
        marks.append(Mark(meta["name"], milestone, at, reason))
    return RevisionHistory(
        meta.get("namespace", "default"), model, meta["name"], int(body.get("revision", 0)),
        (body.get("data") or {}).get("digest", ""), created, tuple(marks),
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
