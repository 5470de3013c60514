"""Releases and the four DORA figures, from what each revision records of its own fate.

A release is a revision a spec change made. Each revision records a few milestones, once each,
at the moment a reconcile pass sees them happen (``milestones``): when it first took traffic,
when it became stable (reached 100%), when it was rolled back and why, and the commit time of
the change when the Model carried one. Everything else is derived here, pure and with time
passed in, so the same history gives the same figures on either backend:

- a release **promoted** reached 100%; it is **undone** when, within the undo window of its
  promotion, a later release brings back the spec that was stable before it (``modelplane
  rollouts undo``, a git revert): the undone one counts as failed. An undo that is itself undone
  (a rollback of a rollback) fails too: the history says it was the wrong call;
- **rolled back** (analysis failed, canary failing, artifact unavailable) and **aborted** releases
  failed; an abort or a failure before any traffic reached the canary harmed nobody, so it has
  no time to restore;
- **superseded**: a newer spec arrived before it finished; neither success nor failure.

Deployment frequency counts releases that reached 100%; lead time runs from the commit (else the
revision's creation) to promotion; change-failure rate is failed over finished releases; time to
restore runs from the moment a bad revision took traffic to the moment all traffic left it, and
from the start of each SLO breach (an incident) to the moment its ``SLOBreached`` condition
cleared: a Model can fail its users without any release failing, and restoring it counts.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from modelplane.api import ConditionStatus, ModelStatus, RolloutPhase
from modelplane.api.releases import Incident, Mark, Milestone, RevisionHistory
from modelplane.control.conditions import condition
from modelplane.control.slo import SLO_BREACHED

DEFAULT_UNDO_WINDOW = timedelta(days=1)


ABORTED_REASON = "RolloutAborted"


def milestones(before: ModelStatus, after: ModelStatus, now: datetime) -> list[Mark]:
    """What a pass that turns status ``before`` into ``after`` is worth recording. Pure and
    idempotent with the store's first-wins rule: a pass that crashed after recording its marks
    records the same ones again, and they change nothing."""
    found: list[Mark] = []
    served = {r.name for r in before.revisions if r.traffic}
    for revision in after.revisions:
        if revision.traffic and revision.name not in served:
            found.append(Mark(revision.name, Milestone.TRAFFIC, now))
    if after.stable_revision is not None and after.stable_revision != before.stable_revision:
        found.append(Mark(after.stable_revision, Milestone.PROMOTED, now))
    rollout, was = after.rollout, before.rollout
    rolled_back = rollout is not None and rollout.phase is RolloutPhase.ROLLED_BACK
    already = was is not None and was.phase is RolloutPhase.ROLLED_BACK
    if rolled_back and after.canary_revision is not None and not already:
        assert rollout is not None
        found.append(Mark(after.canary_revision, Milestone.ROLLED_BACK, now, rollout.reason))
    return found


def incidents(
    namespace: str, model: str, before: ModelStatus, after: ModelStatus, serving: str, now: datetime
) -> list[Incident]:
    """The SLO breach a pass turning ``before`` into ``after`` begins (an open incident, on the
    stable revision, else ``serving``) or ends (``restored`` set: the store closes the Model's
    open incident, whichever it is). Times are the condition's own transitions, so a pass
    repeated after a crash records the same ones again; the store keeps one open at a time."""
    was, is_ = condition(before.conditions, SLO_BREACHED), condition(after.conditions, SLO_BREACHED)
    had = was is not None and was.status is ConditionStatus.TRUE
    has = is_ is not None and is_.status is ConditionStatus.TRUE
    if has and not had:
        assert is_ is not None
        revision = after.stable_revision or serving
        return [Incident(namespace, model, revision, is_.last_transition_time, None, is_.reason)]
    if had and not has:
        assert was is not None
        # The objective dropped while breached: the incident ends now, nothing measures it.
        restored = is_.last_transition_time if is_ is not None else now
        return [Incident(namespace, model, "", was.last_transition_time, restored, was.reason)]
    return []


def incidents_of(history: Iterable[RevisionHistory]) -> list[Incident]:
    return [incident for revision in history for incident in revision.incidents]


class Outcome(StrEnum):
    PROMOTED = "Promoted"
    UNDONE = "Undone"
    ROLLED_BACK = "RolledBack"
    ABORTED = "Aborted"
    SUPERSEDED = "Superseded"
    IN_PROGRESS = "InProgress"


FAILED = frozenset({Outcome.UNDONE, Outcome.ROLLED_BACK, Outcome.ABORTED})
REACHED_ALL_TRAFFIC = frozenset({Outcome.PROMOTED, Outcome.UNDONE})


@dataclass(frozen=True)
class Release:
    namespace: str
    model: str
    revision: str
    started: datetime  # the change: its commit when known, else the revision's creation
    outcome: Outcome
    finished: datetime | None = None  # promoted, rolled back, or superseded
    reason: str = ""  # why it failed, as a machine reads it
    undone_by: str | None = None
    lead_time: timedelta | None = None  # to promotion
    time_to_restore: timedelta | None = None  # for a failure that reached traffic
    freeze_override: str = ""  # released through a freeze, for this reason

    @property
    def failed(self) -> bool:
        return self.outcome in FAILED

    @property
    def finished_release(self) -> bool:
        return self.outcome in FAILED | REACHED_ALL_TRAFFIC


def releases(
    history: Iterable[RevisionHistory], undo_window: timedelta = DEFAULT_UNDO_WINDOW
) -> list[Release]:
    """Every revision as a release, oldest first, per Model."""
    by_model: dict[tuple[str, str], list[RevisionHistory]] = {}
    for revision in history:
        by_model.setdefault((revision.namespace, revision.model), []).append(revision)
    found: list[Release] = []
    for revisions in by_model.values():
        found.extend(_model_releases(sorted(revisions, key=lambda r: r.number), undo_window))
    return sorted(found, key=lambda r: (r.started, r.namespace, r.model, r.revision))


def _model_releases(ordered: list[RevisionHistory], undo_window: timedelta) -> list[Release]:
    promoted = [(r, m) for r in ordered if (m := r.at(Milestone.PROMOTED)) is not None]
    promoted.sort(key=lambda pair: pair[1].at)
    places = {revision.name: place for place, (revision, _) in enumerate(promoted)}
    found = []
    for index, revision in enumerate(ordered):
        newer = ordered[index + 1] if index + 1 < len(ordered) else None
        found.append(_release(revision, newer, promoted, places, undo_window))
    return found


def _release(
    revision: RevisionHistory,
    newer: RevisionHistory | None,
    promoted: list[tuple[RevisionHistory, Mark]],
    places: dict[str, int],
    undo_window: timedelta,
) -> Release:
    found = _fate(revision, newer, promoted, places, undo_window)
    override = revision.at(Milestone.FREEZE_OVERRIDDEN)
    return replace(found, freeze_override=override.reason) if override is not None else found


def _fate(
    revision: RevisionHistory,
    newer: RevisionHistory | None,
    promoted: list[tuple[RevisionHistory, Mark]],
    places: dict[str, int],
    undo_window: timedelta,
) -> Release:
    committed = revision.at(Milestone.COMMITTED)
    started = committed.at if committed is not None else revision.created
    base = Release(revision.namespace, revision.model, revision.name, started, Outcome.IN_PROGRESS)
    traffic = revision.at(Milestone.TRAFFIC)
    back = revision.at(Milestone.ROLLED_BACK)
    if back is not None:
        outcome = Outcome.ABORTED if back.reason == ABORTED_REASON else Outcome.ROLLED_BACK
        restore = back.at - traffic.at if traffic is not None else None
        return _with(base, outcome, back.at, back.reason, time_to_restore=restore)
    done = revision.at(Milestone.PROMOTED)
    if done is not None:
        undo = _undone_by(places[revision.name], done, promoted, undo_window)
        lead = done.at - started
        if undo is None:
            return _with(base, Outcome.PROMOTED, done.at, lead_time=lead)
        undoing, undone_at = undo
        return Release(
            base.namespace, base.model, base.revision, started, Outcome.UNDONE, done.at,
            "Undone", undoing.name, lead, undone_at.at - done.at,
        )  # fmt: skip
    if newer is not None:
        return _with(base, Outcome.SUPERSEDED, newer.created)
    return base


def _with(
    base: Release,
    outcome: Outcome,
    finished: datetime,
    reason: str = "",
    *,
    lead_time: timedelta | None = None,
    time_to_restore: timedelta | None = None,
) -> Release:
    return Release(
        base.namespace, base.model, base.revision, base.started, outcome, finished, reason,
        None, lead_time, time_to_restore,
    )  # fmt: skip


def _undone_by(
    position: int,
    done: Mark,
    promoted: list[tuple[RevisionHistory, Mark]],
    window: timedelta,
) -> tuple[RevisionHistory, Mark] | None:
    """The release that brought back what was stable before the one promoted at ``position``
    (of ``promoted``, in promotion order), if it was the next one promoted and its change came
    within ``window`` of that promotion."""
    if position == 0 or position + 1 >= len(promoted):
        return None
    before, _ = promoted[position - 1]
    after, after_done = promoted[position + 1]
    if after.digest != before.digest or after.created - done.at > window:
        return None
    return after, after_done


@dataclass(frozen=True)
class Figures:
    """The four DORA figures for one group of releases over one period."""

    releases: int  # finished in the period: reached 100% or failed
    deployments: int  # reached 100% in the period
    deployments_per_day: float
    lead_time_median: timedelta | None
    change_failure_rate: float | None
    time_to_restore_median: timedelta | None
    failed: int
    incidents: int = 0  # SLO breaches restored in the period


def figures(
    found: Sequence[Release],
    since: datetime,
    now: datetime,
    breaches: Sequence[Incident] = (),
) -> Figures:
    """Over releases finished and SLO breaches restored in [since, now)."""
    period = [r for r in found if r.finished is not None and since <= r.finished < now]
    restored = [
        i.restored - i.started
        for i in breaches
        if i.restored is not None and since <= i.restored < now
    ]
    finished = [r for r in period if r.finished_release]
    deployed = [r for r in period if r.outcome in REACHED_ALL_TRAFFIC]
    failed = [r for r in finished if r.failed]
    days = max((now - since).total_seconds() / 86_400, 1e-9)
    leads = [r.lead_time for r in deployed if r.lead_time is not None]
    restores = [r.time_to_restore for r in failed if r.time_to_restore is not None] + restored
    return Figures(
        releases=len(finished),
        deployments=len(deployed),
        deployments_per_day=len(deployed) / days,
        lead_time_median=_median(leads),
        change_failure_rate=len(failed) / len(finished) if finished else None,
        time_to_restore_median=_median(restores),
        failed=len(failed),
        incidents=len(restored),
    )


def _median(values: list[timedelta]) -> timedelta | None:
    if not values:
        return None
    return timedelta(seconds=statistics.median(v.total_seconds() for v in values))


def trend(
    found: Sequence[Release],
    since: datetime,
    now: datetime,
    step: timedelta,
    breaches: Sequence[Incident] = (),
) -> list[tuple[datetime, Figures]]:
    """The figures per ``step`` from ``since`` to ``now``, oldest first (the last may be short)."""
    buckets = []
    start = since
    while start < now:
        end = min(start + step, now)
        buckets.append((start, figures(found, start, end, breaches)))
        start = end
    return buckets
