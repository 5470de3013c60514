"""The rollout state machine: how traffic moves from the stable revision to a new one.

Pure and deterministic, driven by the clock and metric windows it is given, so every transition
is tested with fake time and the same logic serves embedded mode and the operator.

    (new revision) ─► Progressing step 0 ─(pause over, analysis passed)─► step 1 … ─► Promoted
                          │   ▲ │
                          │   └─┘ too little traffic: the step is extended
                          ├──(analysis failed, canary failing, abort)──► RolledBack
                          └──(pause)──► Paused ──(resume)──► Progressing

``Immediate`` skips the steps: the new revision takes all traffic once it is ready. A failing
analysis rolls back at once, without waiting for the step's pause to end.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from modelplane.api import (
    ROLLOUT_COMMAND_ANNOTATION,
    EvaluationResult,
    Model,
    Rollout,
    RolloutPhase,
    RolloutStatus,
    RolloutStrategy,
)
from modelplane.control.analysis import Verdict, Window, analyse

# The reason a rollout rolled back (and the Model is Stalled) when the canary's artifact cannot be
# fetched or verified: not found, access denied, digest mismatch, store unreachable.
ARTIFACT_UNAVAILABLE = "ArtifactUnavailable"
# The reason a rollout rolled back when the canary failed its evaluation gate (a gate whose
# scorer failed gives its own: ScorerFailed).
EVALUATION_FAILED = "EvaluationFailed"


class Command(StrEnum):
    PROMOTE = "promote"
    ABORT = "abort"
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Observed:
    """What the rollout needs to know of the world at one moment."""

    latest: str  # the newest revision
    stable: str | None  # the revision that serves today (status.stableRevision)
    state: RolloutStatus | None  # status.rollout as last written
    state_canary: str | None  # status.canaryRevision as last written
    canary_ready: bool = False
    canary_failing: bool = False
    canary_failure: str = ""  # why, in the runtime's words
    canary_unavailable: bool = False  # it fails because its artifact cannot be had
    canary_window: Window = field(default_factory=Window)
    stable_window: Window = field(default_factory=Window)
    command: Command | None = None
    generative: bool = False  # the model generates text: judged per token, not per answer
    evaluation: EvaluationResult | None = None  # the evaluation gate's verdict on the canary


@dataclass(frozen=True)
class Decision:
    traffic: dict[str, int]
    stable: str | None
    canary: str | None
    state: RolloutStatus | None
    event: Event | None = None
    new_window: bool = False  # the metric window restarts (a step began)


def decide(rollout: Rollout, seen: Observed, now: datetime) -> Decision:
    latest, stable = seen.latest, seen.stable
    if stable is None:  # the first revision: it serves once ready, no rollout
        return Decision(
            {latest: 100} if seen.canary_ready else {},
            latest if seen.canary_ready else None,
            None,
            None,
        )
    if latest == stable:
        return Decision({stable: 100}, stable, None, seen.state)
    state = seen.state
    if state is None or seen.state_canary != latest:
        # The command the last rollout acted on stays acted on: a promote annotation left on
        # the Model must not promote the next canary the moment it starts.
        handled = state.last_command if state is not None else ""
        started = RolloutStatus(
            phase=RolloutPhase.PROGRESSING, step=0, message=f"rolling out {latest}",
            last_command=handled,
        )  # fmt: skip
        event = Event("Normal", "RolloutStarted", f"rolling out {latest} to replace {stable}")
        return _continue(rollout, replace(seen, state=started, state_canary=latest), now, event)
    return _continue(rollout, seen, now, None)


def _continue(rollout: Rollout, seen: Observed, now: datetime, event: Event | None) -> Decision:
    state = seen.state
    assert state is not None  # established by decide()
    assert seen.stable is not None
    canary, stable = seen.latest, seen.stable
    if state.phase in (RolloutPhase.ROLLED_BACK, RolloutPhase.FAILED):
        return Decision({stable: 100}, stable, canary, state, event)
    if seen.command is Command.ABORT:
        return _roll_back(seen, state, "RolloutAborted", "aborted by a user", None)
    if seen.command is Command.PROMOTE and seen.canary_ready:
        return _promote(seen, state, "promoted by a user")
    if seen.canary_failing and seen.canary_unavailable:
        why = f"{canary} cannot get its artifact: {seen.canary_failure}"
        return _roll_back(seen, state, ARTIFACT_UNAVAILABLE, why, None)
    if seen.canary_failing:
        why = (
            f"{canary} keeps failing: {seen.canary_failure}"
            if seen.canary_failure
            else (f"{canary} keeps failing to serve")
        )
        return _roll_back(seen, state, "CanaryFailing", why, None)
    if not seen.canary_ready:
        waiting = _with(state, message=f"waiting for {canary} to become ready")
        return Decision({stable: 100, canary: 0}, stable, canary, waiting, event)
    gate = rollout.evaluation
    if gate is not None and state.evaluation is None:  # judged before any traffic, once
        verdict = seen.evaluation
        if verdict is None:
            evaluating = _with(state, message=f"evaluating {canary} on {gate.dataset}")
            return Decision({stable: 100, canary: 0}, stable, canary, evaluating, event)
        state = _with(state, evaluation=verdict)
        if not verdict.passed:  # the verdict's own reason when its scorer failed
            reason = verdict.reason or EVALUATION_FAILED
            return _roll_back(seen, state, reason, verdict.message, None)
        event = event or Event("Normal", "EvaluationPassed", f"{canary}: {verdict.message}")
    if rollout.strategy is RolloutStrategy.IMMEDIATE or not rollout.steps:
        return _promote(seen, state, f"{canary} is ready")
    return _step(rollout, seen, state, now, event)


def _step(
    rollout: Rollout, seen: Observed, state: RolloutStatus, now: datetime, event: Event | None
) -> Decision:
    canary, stable = seen.latest, seen.stable
    assert stable is not None
    started = state.step_started_at

    def at(step: int, new: RolloutStatus, why: Event | None, new_window: bool = False) -> Decision:
        weights = _weights(rollout, step, canary, stable)
        return Decision(weights, stable, canary, new, why, new_window)

    if started is None:  # the canary just became ready: step 0 begins
        begun = _with(state, step_started_at=now, message=_step_message(rollout, state.step))
        return at(state.step, begun, event, True)
    if seen.command is Command.PAUSE:
        paused = _with(state, phase=RolloutPhase.PAUSED, message="paused by a user")
        return at(state.step, paused, Event("Normal", "RolloutPaused", "paused by a user"))
    if state.phase is RolloutPhase.PAUSED:
        if seen.command is not Command.RESUME:
            return at(state.step, state, event)
        resumed = _with(
            state,
            phase=RolloutPhase.PROGRESSING,
            step_started_at=now,
            message=_step_message(rollout, state.step),
        )
        why = Event("Normal", "RolloutResumed", f"resumed at step {state.step + 1}")
        return at(state.step, resumed, why, True)
    verdict = analyse(rollout.analysis, seen.canary_window, seen.stable_window, seen.generative)
    judged = _with(state, last_analysis=verdict.result)
    if verdict.passed is False:
        return _roll_back(seen, judged, "AnalysisFailed", verdict.result.message, verdict)
    pause = timedelta(seconds=rollout.steps[state.step].pause_seconds)
    if verdict.passed is None or now - started < pause:
        return at(state.step, judged, event)  # too little traffic or time: the step goes on
    if state.step + 1 >= len(rollout.steps):
        return _promote(seen, judged, f"{canary} passed every step")
    nxt = state.step + 1
    moved = _with(judged, step=nxt, step_started_at=now, message=_step_message(rollout, nxt))
    weight = rollout.steps[nxt].weight
    why = Event("Normal", "RolloutStepPassed", f"step {nxt} passed; {canary} now takes {weight}%")
    return at(nxt, moved, why, True)


def _weights(rollout: Rollout, step: int, canary: str, stable: str) -> dict[str, int]:
    weight = rollout.steps[step].weight
    return {stable: 100 - weight, canary: weight} if weight < 100 else {canary: 100}


def _step_message(rollout: Rollout, step: int) -> str:
    target = rollout.steps[step]
    count = len(rollout.steps)
    return f"step {step + 1}/{count}: {target.weight}% for at least {target.pause_seconds}s"


def _promote(seen: Observed, state: RolloutStatus, why: str) -> Decision:
    canary = seen.latest
    done = _with(state, phase=RolloutPhase.PROMOTED, message=f"{canary} promoted: {why}")
    event = Event("Normal", "RolloutPromoted", f"{canary} promoted to stable: {why}")
    return Decision({canary: 100}, canary, None, done, event, True)


def _roll_back(
    seen: Observed, state: RolloutStatus, reason: str, why: str, verdict: Verdict | None
) -> Decision:
    stable, canary = seen.stable, seen.latest
    assert stable is not None
    done = _with(
        state,
        phase=RolloutPhase.ROLLED_BACK,
        reason=reason,
        message=f"rolled back to {stable}: {why}",
    )
    if verdict is not None:
        done = _with(done, last_analysis=verdict.result)
    event = Event("Warning", reason, f"{canary} rolled back, all traffic to {stable}: {why}")
    return Decision({stable: 100}, stable, canary, done, event, True)


def _with(state: RolloutStatus, **changes: Any) -> RolloutStatus:
    return state.model_copy(update=changes)


def pending_command(model: Model) -> tuple[Command | None, str]:
    """A user's rollout command (``promote:<time>`` …) not yet acted on, and its annotation."""
    annotation = model.metadata.annotations.get(ROLLOUT_COMMAND_ANNOTATION, "")
    handled = model.status.rollout.last_command if model.status.rollout else ""
    verb = annotation.split(":", 1)[0]
    if not annotation or annotation == handled or verb not in Command.__members__.values():
        return None, annotation
    return Command(verb), annotation
