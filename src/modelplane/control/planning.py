"""The one decision a backend asks for: from a Model and what was observed of it, the plan.

Both backends take the same three steps each pass: observe (stored revisions, replicas and
their readiness, demand, the rollout's analysis windows, the namespace's replica cap), call
``plan``, and apply what it returns (record a new revision first, then replicas, routes, status
and events). Every rule lives here or below: which revision serves, replicas from demand, the
replica cap, traffic and the rollout, status, and the events worth telling. Pure and
idempotent, with time passed in: the same observation always yields the same plan, so a backend
that crashes anywhere recovers by planning again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from modelplane.api import (
    COMMIT_TIME_ANNOTATION,
    EvaluationResult,
    Model,
    RolloutPhase,
    SLOStatus,
    Source,
)
from modelplane.api.releases import Incident, Mark, Milestone
from modelplane.control.adapters import adapter_conditions, adapter_events
from modelplane.control.analysis import Window
from modelplane.control.autoscaling import Demand, replicas_for
from modelplane.control.conditions import READY, STALLED, set_condition
from modelplane.control.quotas import ReplicaCap, within_cap
from modelplane.control.reconcile import Plan, ReplicaView, reconcile
from modelplane.control.releases import incidents, milestones
from modelplane.control.reporting import Reported, events
from modelplane.control.revisions import RevisionRef, select_revision
from modelplane.control.rollout import ARTIFACT_UNAVAILABLE, Event, pending_command
from modelplane.control.scaling_condition import scaling_conditions, scaling_events
from modelplane.control.slo import (
    RELEASE_FROZEN,
    SLOReading,
    breach_events,
    freeze,
    measure,
    overridden,
    slo_conditions,
)


@dataclass(frozen=True)
class AnalysisWindows:
    """What the canary ``revision`` and the stable one did since the rollout step began."""

    revision: str
    canary: Window = field(default_factory=Window)
    stable: Window = field(default_factory=Window)


@dataclass(frozen=True)
class Observed:
    """What a backend saw of one Model."""

    revisions: tuple[RevisionRef, ...] = ()  # stored, any order
    replicas: tuple[ReplicaView, ...] = ()  # of every revision of the Model
    demand: Demand = field(default_factory=Demand)
    cap: ReplicaCap | None = None  # the namespace's replica cap; None: no cap
    windows: AnalysisWindows | None = None
    reported: Reported = field(default_factory=Reported)  # what was told before
    url: str | None = None  # where the Model is served
    # The spec's source with its moving reference (a tag, an alias, a branch) resolved, which a
    # new revision records; or why it could not be resolved (no new revision is made then).
    source: Source | None = None
    unresolved: str = ""
    # The evaluation gate's verdict on a revision (named), once the backend's replay is done.
    evaluated: str = ""
    evaluation: EvaluationResult | None = None
    # Requests counted per window of the Model's SLO; None: not read this pass (what status
    # said stands).
    slo: SLOReading | None = None
    # Why LoRA adapters of the Model failed on its replicas, by name (as its gateway saw).
    adapter_failures: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelPlan:
    revision: RevisionRef  # the one the Model serves next
    new_revision: bool  # to be recorded before anything else is applied
    wanted: int  # replicas for ``revision`` by demand, before the cap: the Model's claim
    desired: int  # ... within the cap
    plan: Plan  # replicas per revision, traffic, status
    events: tuple[Event, ...]  # in the order they happened
    reported: Reported  # what the backend has told once these events are recorded
    source: Source  # what a new revision records as its source: immutable references only
    # Release milestones this pass saw happen, recorded before the status that shows them.
    marks: tuple[Mark, ...] = ()
    # An SLO breach this pass saw begin or end, recorded likewise.
    incidents: tuple[Incident, ...] = ()


@dataclass(frozen=True)
class _Held:
    """Why the new spec makes no revision yet: the Model is Stalled for ``reason``."""

    reason: str = ""
    message: str = ""


def plan(model: Model, observed: Observed, now: datetime) -> ModelPlan:
    pinned = observed.source.uri if observed.source is not None else ""
    revision, new = select_revision(model, observed.revisions, pinned)
    slo = _slo_status(model, observed.slo)
    stored = max(observed.revisions, key=lambda r: r.number, default=None)
    if new and observed.unresolved:
        # The new spec's artifact cannot be pinned: the newest stored revision keeps serving.
        why = "the new spec's artifact cannot be resolved, no revision was made: "
        held = _Held(ARTIFACT_UNAVAILABLE, why + observed.unresolved)
        return _plan(model, observed, now, stored or revision, False, held, slo)
    frozen = freeze(model, observed.revisions, revision, slo) if new else None
    if frozen is not None and frozen.held and stored is not None:
        return _plan(model, observed, now, stored, False, _Held(RELEASE_FROZEN, frozen.held), slo)
    decided = _plan(model, observed, now, revision, new, _Held(), slo)
    if frozen is not None and frozen.override and model.spec.slo is not None:
        told = overridden(revision.name, model.spec.slo.window, frozen.override)
        kept = Mark(revision.name, Milestone.FREEZE_OVERRIDDEN, now, frozen.override)
        decided = replace(decided, events=(*decided.events, told), marks=(*decided.marks, kept))
    return decided


def _slo_status(model: Model, reading: SLOReading | None) -> SLOStatus | None:
    """The objective's status this pass: measured afresh, else as status last said."""
    slo = model.spec.slo
    if slo is None:
        return None
    if reading is None or reading.unavailable:
        return model.status.slo
    return measure(slo, reading)


def _plan(
    model: Model,
    observed: Observed,
    now: datetime,
    revision: RevisionRef,
    new: bool,
    held: _Held,
    slo: SLOStatus | None,
) -> ModelPlan:
    current = sum(1 for r in observed.replicas if r.revision == revision.name)
    wanted = replicas_for(model.spec.scaling, observed.demand, current, now)
    meta, before = model.metadata, observed.reported
    desired, capped = within_cap(meta.namespace, model.key, wanted, observed.cap, before.held_back)
    windows = observed.windows
    measured = (
        (windows.canary, windows.stable)
        if windows is not None and windows.revision == revision.name
        else (Window(), Window())
    )
    command, annotation = pending_command(model)
    if held.reason and not observed.revisions:
        desired = wanted = 0  # nothing recorded, nothing to start
    verdict = observed.evaluation if observed.evaluated == revision.name else None
    found = reconcile(
        model, revision, list(observed.replicas), desired, now, observed.url, measured, command,
        verdict,
    )  # fmt: skip
    if held.reason:
        found = _held(found, model, held, bool(observed.revisions), now)
    unavailable = observed.slo.unavailable if observed.slo is not None else ""
    found.status.conditions = slo_conditions(
        model.spec.slo, found.status.conditions, slo, unavailable, meta.generation, now
    )
    found.status.slo = slo
    found.status.conditions = scaling_conditions(
        model.spec.scaling, observed.demand.reading, found.status.conditions, meta.generation, now
    )
    found.status.conditions = adapter_conditions(
        model.spec, found.status.conditions, observed.adapter_failures, meta.generation, now
    )
    if command is not None and found.status.rollout is not None:
        found.status.rollout.last_command = annotation  # acted on once
    told: list[Event] = []
    if new:
        message = f"revision {revision.name} created for generation {meta.generation}"
        told.append(Event("Normal", "RevisionCreated", message))
    if capped is not None:
        told.append(capped)
    rest, reported = events(found, desired, before)
    rest += breach_events(model.status.conditions, found.status.conditions)
    rest += scaling_events(model.status.conditions, found.status.conditions)
    rest += adapter_events(model.status.conditions, found.status.conditions)
    held_back = desired < wanted
    marks = milestones(model.status, found.status, now)
    if new and (committed := _commit_time(model)) is not None:
        marks.insert(0, Mark(revision.name, Milestone.COMMITTED, committed))
    breaches = incidents(meta.namespace, meta.name, model.status, found.status, revision.name, now)
    return ModelPlan(
        revision, new, wanted, desired, found, (*told, *rest),
        replace(reported, held_back=held_back), observed.source or model.spec.source,
        tuple(marks), tuple(breaches),
    )  # fmt: skip


def _commit_time(model: Model) -> datetime | None:
    """The change's commit time as its applier annotated it; a malformed or zoneless one is
    ignored (the release then counts from its revision's creation)."""
    value = model.metadata.annotations.get(COMMIT_TIME_ANNOTATION, "")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _held(found: Plan, model: Model, held: _Held, serving: bool, now: datetime) -> Plan:
    """Stalled (and, with nothing recorded yet, not Ready and nothing to run) because the new
    spec makes no revision: its artifact cannot be resolved, or releases are frozen."""
    status, generation = found.status, model.metadata.generation
    said = [STALLED] if serving else [STALLED, READY]
    # Over what the Model said before, not over what this pass first made of it: a condition
    # that stays put keeps its transition time, and a pass that changes nothing writes nothing.
    before = {c.type: c for c in model.status.conditions if c.type in said}
    conditions = [before.get(c.type, c) if c.type in said else c for c in status.conditions]
    for type_ in said:
        conditions = set_condition(
            conditions, type_, type_ == STALLED, held.reason, held.message, generation, now
        )
    status.conditions = conditions
    if serving:
        return found
    status.revisions = []
    return replace(found, start=(), traffic={}, replicas={})


def evaluation_due(model: Model) -> str | None:
    """The canary revision the evaluation gate waits on (the backend replays the dataset against
    it), or None when no gate is waiting."""
    rollout = model.status.rollout
    gate = model.spec.rollout.evaluation
    if gate is None or rollout is None or rollout.phase is not RolloutPhase.PROGRESSING:
        return None
    if rollout.evaluation is not None or rollout.step_started_at is not None:
        return None
    return model.status.canary_revision
