"""Reconcile: from a Model, its serving revision and the observed replicas to replica changes,
traffic and a status (the core of ``planning.plan``).

Pure and idempotent: the same inputs always give the same plan, and a converged model gives an
empty one, so a backend can crash at any point and recover by reconciling again.

Traffic comes from the rollout state machine (``rollout.py``): the stable revision serves, a new
revision enters as a canary that takes traffic step by step while its analysis passes, and is
promoted or rolled back. Replicas follow: the serving revisions are autoscaled, a canary is kept
up while it rolls out, everything else drains and stops.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from modelplane.api import (
    GENERATIVE_TASKS,
    Condition,
    EvaluationResult,
    Model,
    ModelStatus,
    RevisionStatus,
    RolloutPhase,
)
from modelplane.control.analysis import Window
from modelplane.control.conditions import (
    READY,
    RECONCILING,
    ROLLOUT_PROGRESSING,
    STALLED,
    set_condition,
)
from modelplane.control.revisions import RevisionRef
from modelplane.control.rollout import ARTIFACT_UNAVAILABLE, Command, Decision, Event, Observed
from modelplane.control.rollout import decide as decide_rollout

CRASH_LOOP_RESTARTS = 3


class Phase(StrEnum):
    STARTING = "Starting"
    READY = "Ready"
    FAILED = "Failed"  # exited; restarted with backoff, unless its failure is permanent
    STOPPING = "Stopping"


@dataclass(frozen=True)
class ReplicaView:
    id: str
    revision: str
    phase: Phase
    restarts: int = 0
    reason: str = ""
    # The condition reason the replica's exit names (``ArtifactUnavailable``, ``MissingExtra``;
    # empty for a crash), and whether no restart can cure it: such a replica stays failed and
    # the Model is stalled at once. Others are restarted with backoff.
    failure: str = ""
    permanent: bool = False


@dataclass(frozen=True)
class Plan:
    start: tuple[str, ...] = ()  # one revision name per replica to start
    stop: tuple[str, ...] = ()  # replica ids to drain and stop
    traffic: dict[str, int] = field(default_factory=dict)
    status: ModelStatus = field(default_factory=ModelStatus)
    event: Event | None = None  # a rollout decision worth recording
    new_window: bool = False  # rollout analysis starts measuring afresh
    replicas: dict[str, int] = field(default_factory=dict)  # wanted per revision; absent: none

    @property
    def empty(self) -> bool:
        return not self.start and not self.stop


def reconcile(
    model: Model,
    latest: RevisionRef,
    replicas: list[ReplicaView],
    desired_replicas: int,
    now: datetime,
    url: str | None = None,
    windows: tuple[Window, Window] = (Window(), Window()),
    command: Command | None = None,
    evaluation: EvaluationResult | None = None,
) -> Plan:
    """The plan for ``model`` whose newest revision is ``latest``.

    ``windows`` are the canary's and the stable revision's measurements since the current
    rollout step began; ``command`` is a user's promote, abort, pause or resume;
    ``evaluation`` the evaluation gate's verdict on ``latest``, once it is in.
    """
    live = [r for r in replicas if r.phase is not Phase.STOPPING]
    ready = Counter(r.revision for r in live if r.phase is Phase.READY)
    failing = _failing(live, latest.name)
    seen = Observed(
        latest=latest.name,
        stable=model.status.stable_revision,
        state=model.status.rollout,
        state_canary=model.status.canary_revision,
        canary_ready=ready[latest.name] > 0,
        canary_failing=failing is not None,
        canary_failure=failing.reason if failing else "",
        canary_unavailable=failing is not None and failing.failure == ARTIFACT_UNAVAILABLE,
        canary_window=windows[0],
        stable_window=windows[1],
        command=command,
        generative=model.spec.task in GENERATIVE_TASKS,
        evaluation=evaluation,
    )
    decision = decide_rollout(model.spec.rollout, seen, now)
    wanted = _wanted(decision, latest.name, desired_replicas)
    start, stop = _replica_changes(live, wanted)
    status = _status(model, latest, live, wanted, decision, failing, now, url)
    return Plan(start, stop, decision.traffic, status, decision.event, decision.new_window, wanted)


def _failing(live: list[ReplicaView], revision: str) -> ReplicaView | None:
    """A replica of ``revision`` that will not serve: failed for good, or crash-looping."""
    failing = [r for r in live if r.revision == revision and r.phase is Phase.FAILED]
    return next((r for r in failing if r.permanent or r.restarts >= CRASH_LOOP_RESTARTS), None)


def _stalled_by(failing: ReplicaView, revision: str) -> tuple[bool, str, str]:
    """The Stalled condition of a first revision that will not serve."""
    if failing.permanent:
        message = f"revision {revision} cannot start, and restarting will not help: "
        return True, failing.failure, message + failing.reason
    if failing.failure == ARTIFACT_UNAVAILABLE:
        why = f"revision {revision} cannot get its artifact: {failing.reason}"
        return True, ARTIFACT_UNAVAILABLE, why
    return True, "RevisionFailing", f"revision {revision} keeps failing: {failing.reason}"


def _rolling(decision: Decision) -> bool:
    state = decision.state
    active = (RolloutPhase.PROGRESSING, RolloutPhase.PAUSED)
    return decision.canary is not None and state is not None and state.phase in active


def _wanted(decision: Decision, latest: str, desired: int) -> dict[str, int]:
    """Replicas per revision: the serving ones autoscaled, a canary kept up while it rolls out."""
    if decision.stable is None:
        return {latest: desired}
    rolling = _rolling(decision)
    wanted = {decision.stable: max(desired, 1) if rolling else desired}
    if rolling and decision.canary is not None:
        wanted[decision.canary] = max(desired, 1)
    return wanted


def _replica_changes(
    live: list[ReplicaView], wanted: dict[str, int]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    start: list[str] = []
    stop: list[str] = []
    by_revision: dict[str, list[ReplicaView]] = {}
    for replica in live:
        by_revision.setdefault(replica.revision, []).append(replica)
    for revision, count in wanted.items():
        have = by_revision.get(revision, [])
        start.extend([revision] * max(0, count - len(have)))
    for revision, have in by_revision.items():
        surplus = len(have) - wanted.get(revision, 0)
        if surplus > 0:
            # Stop the replicas that serve nothing first: failed, then starting, then ready.
            order = {Phase.FAILED: 0, Phase.STARTING: 1, Phase.READY: 2}
            victims = sorted(have, key=lambda r: (order[r.phase], r.id))[:surplus]
            stop.extend(r.id for r in victims)
    return tuple(start), tuple(sorted(stop))


def _status(
    model: Model,
    latest: RevisionRef,
    live: list[ReplicaView],
    wanted: dict[str, int],
    decision: Decision,
    failing: ReplicaView | None,
    now: datetime,
    url: str | None,
) -> ModelStatus:
    generation = model.metadata.generation
    counts = Counter(r.revision for r in live)
    ready = Counter(r.revision for r in live if r.phase is Phase.READY)
    conditions = _ready_condition(
        list(model.status.conditions), latest, decision, ready, wanted, failing, generation, now
    )
    stalled = _stalled(latest, decision, failing)
    conditions = set_condition(conditions, STALLED, *stalled, generation, now)
    converged = set(counts) <= set(wanted) and all(
        counts[n] == c and ready[n] == c for n, c in wanted.items()
    )
    reconciling = not converged and not stalled[0]
    conditions = set_condition(
        conditions,
        RECONCILING,
        reconciling,
        "ReplicasChanging" if reconciling else "Converged",
        _describe(wanted, counts, ready) if reconciling else "",
        generation,
        now,
    )
    phase = decision.state.phase if decision.state is not None else None
    progressing = phase in (RolloutPhase.PROGRESSING, RolloutPhase.PAUSED)
    rollout_reason = phase.value if phase is not None else "NoRollout"
    message = decision.state.message if decision.state is not None else ""
    conditions = set_condition(
        conditions, ROLLOUT_PROGRESSING, progressing, rollout_reason, message, generation, now
    )
    return ModelStatus(
        observed_generation=generation,
        conditions=conditions,
        revisions=_revisions(latest, counts, ready, wanted, decision),
        stable_revision=decision.stable,
        canary_revision=decision.canary,
        rollout=decision.state,
        url=url,
    )


def _revisions(
    latest: RevisionRef,
    counts: Counter[str],
    ready: Counter[str],
    wanted: dict[str, int],
    decision: Decision,
) -> list[RevisionStatus]:
    names = sorted(set(wanted) | set(counts) | set(decision.traffic), key=_revision_number)
    return [
        RevisionStatus(
            name=name,
            digest=latest.digest if name == latest.name else "",
            source=latest.source or None if name == latest.name else None,
            replicas=counts[name],
            ready_replicas=ready[name],
            traffic=decision.traffic.get(name, 0),
        )
        for name in names
    ]


def _stalled(
    latest: RevisionRef, decision: Decision, failing: ReplicaView | None
) -> tuple[bool, str, str]:
    """Stalled: a canary rolled back, or a first revision that keeps failing."""
    phase = decision.state.phase if decision.state is not None else None
    if phase is RolloutPhase.ROLLED_BACK and decision.canary is not None and decision.state:
        unavailable = decision.state.reason == ARTIFACT_UNAVAILABLE
        return True, ARTIFACT_UNAVAILABLE if unavailable else "RolledBack", decision.state.message
    if failing is not None and decision.stable is None:
        return _stalled_by(failing, latest.name)
    return False, "Progressing", ""


def _ready_condition(
    conditions: list[Condition],
    latest: RevisionRef,
    decision: Decision,
    ready: Counter[str],
    wanted: dict[str, int],
    failing: ReplicaView | None,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    def ready_is(value: bool, reason: str, message: str) -> list[Condition]:
        return set_condition(conditions, READY, value, reason, message, generation, now)

    state = decision.state
    if _rolling(decision) and state is not None:
        return ready_is(False, "RolloutInProgress", f"{state.message}; {decision.stable} serving")
    if decision.canary is not None and state is not None:
        return ready_is(False, "RolledBack", state.message)
    if ready[latest.name] and decision.traffic.get(latest.name):
        return ready_is(True, "RevisionReady", f"{latest.name} is serving")
    if wanted.get(latest.name, 0) == 0:
        message = f"{latest.name} is scaled to zero; the next request starts it"
        return ready_is(True, "ScaledToZero", message)
    if failing is not None:
        return ready_is(False, "RevisionFailed", f"{latest.name} failed: {failing.reason}")
    return ready_is(False, "RevisionStarting", f"waiting for {latest.name} to become ready")


def _describe(wanted: dict[str, int], counts: Counter[str], ready: Counter[str]) -> str:
    return ", ".join(f"{n}: {ready[n]}/{c} ready ({counts[n]} running)" for n, c in wanted.items())


def _revision_number(name: str) -> int:
    suffix = name.rsplit("-r", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0
