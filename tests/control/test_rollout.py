"""Every transition of the rollout state machine, with fake time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from modelplane.api import Rollout, RolloutPhase, RolloutStep, RolloutStrategy
from modelplane.control.analysis import Window
from modelplane.control.rollout import Command, Decision, Observed, decide

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CANARY = Rollout(
    steps=[RolloutStep(weight=10, pause_seconds=30), RolloutStep(weight=50, pause_seconds=30)]
)
GOOD = Window(requests=200, errors=0, p99_ms=12.0)
STABLE = Window(requests=1800, errors=0, p99_ms=10.0)


def seen(**changes: object) -> Observed:
    base = Observed(latest="iris-r2", stable="iris-r1", state=None, state_canary=None)
    return replace(base, **changes)  # type: ignore[arg-type]


def carry(decision: Decision, **changes: object) -> Observed:
    """The next observation, as the controller would make it from what it wrote."""
    return seen(state=decision.state, state_canary=decision.canary, **changes)


def ready_at_step_0() -> Decision:
    started = decide(CANARY, seen(), T0)
    return decide(CANARY, carry(started, canary_ready=True), T0)


def test_first_revision_serves_once_ready_without_a_rollout() -> None:
    waiting = decide(CANARY, seen(latest="iris-r1", stable=None), T0)
    assert waiting.traffic == {}
    ready = decide(CANARY, seen(latest="iris-r1", stable=None, canary_ready=True), T0)
    assert (ready.traffic, ready.stable, ready.state) == ({"iris-r1": 100}, "iris-r1", None)


def test_steady_state_serves_stable_only() -> None:
    decision = decide(CANARY, seen(latest="iris-r1"), T0)
    assert decision.traffic == {"iris-r1": 100}
    assert decision.event is None


def test_new_revision_starts_at_zero_until_ready() -> None:
    decision = decide(CANARY, seen(), T0)
    assert decision.traffic == {"iris-r1": 100, "iris-r2": 0}
    assert decision.event is not None
    assert decision.event.reason == "RolloutStarted"
    assert decision.state is not None
    assert decision.state.phase is RolloutPhase.PROGRESSING
    assert decision.canary == "iris-r2"


def test_ready_canary_enters_step_one_with_its_weight() -> None:
    decision = ready_at_step_0()
    assert decision.traffic == {"iris-r1": 90, "iris-r2": 10}
    assert decision.new_window
    assert decision.state is not None
    assert decision.state.step_started_at == T0


def test_passing_steps_move_traffic_and_promote() -> None:
    step0 = ready_at_step_0()
    early = decide(
        CANARY,
        carry(step0, canary_ready=True, canary_window=GOOD, stable_window=STABLE),
        T0 + timedelta(seconds=10),
    )
    assert early.traffic == {"iris-r1": 90, "iris-r2": 10}  # pause not over
    step1 = decide(
        CANARY,
        carry(early, canary_ready=True, canary_window=GOOD, stable_window=STABLE),
        T0 + timedelta(seconds=30),
    )
    assert step1.traffic == {"iris-r1": 50, "iris-r2": 50}
    assert step1.event is not None
    assert step1.event.reason == "RolloutStepPassed"
    assert step1.new_window
    later = T0 + timedelta(seconds=61)
    done = decide(
        CANARY, carry(step1, canary_ready=True, canary_window=GOOD, stable_window=STABLE), later
    )
    assert done.traffic == {"iris-r2": 100}
    assert (done.stable, done.canary) == ("iris-r2", None)
    assert done.state is not None
    assert done.state.phase is RolloutPhase.PROMOTED
    assert done.event is not None
    assert done.event.reason == "RolloutPromoted"
    assert done.state.last_analysis is not None
    assert done.state.last_analysis.passed


def test_too_little_traffic_extends_the_step() -> None:
    step0 = ready_at_step_0()
    thin = Window(requests=10, errors=0, p99_ms=5.0)
    decision = decide(
        CANARY, carry(step0, canary_ready=True, canary_window=thin), T0 + timedelta(minutes=10)
    )
    assert decision.traffic == {"iris-r1": 90, "iris-r2": 10}
    assert decision.state is not None
    assert decision.state.step == 0
    assert decision.state.last_analysis is not None
    assert "10/50 canary requests" in decision.state.last_analysis.message


@pytest.mark.parametrize(
    ("canary", "metric"),
    [
        (Window(requests=200, errors=20, p99_ms=12.0), "errorRate 0.1 exceeds 0.01"),
        (Window(requests=200, errors=0, p99_ms=400.0), "latencyP99Ms 400 exceeds 250"),
        (Window(requests=200, errors=0, p99_ms=60.0), "latencyP99MsVsStable 60 exceeds 30"),
        (
            Window(requests=200, errors=0, p99_ms=12.0, compared=100, disagreement=0.3),
            "disagreement 0.3 exceeds 0.05",
        ),
    ],
)
def test_failing_analysis_rolls_back_at_once_with_the_numbers(canary: Window, metric: str) -> None:
    step0 = ready_at_step_0()
    decision = decide(
        CANARY,
        carry(step0, canary_ready=True, canary_window=canary, stable_window=STABLE),
        T0 + timedelta(seconds=5),
    )
    assert decision.traffic == {"iris-r1": 100}
    assert decision.state is not None
    assert decision.state.phase is RolloutPhase.ROLLED_BACK
    assert decision.event is not None
    assert (decision.event.type, decision.event.reason) == ("Warning", "AnalysisFailed")
    assert metric in decision.event.message
    failed = [m.name for m in decision.state.last_analysis.metrics if not m.passed]  # type: ignore[union-attr]
    assert metric.split()[0] in failed


def test_rolled_back_stays_rolled_back_without_new_events() -> None:
    step0 = ready_at_step_0()
    bad = Window(requests=200, errors=100)
    back = decide(
        CANARY, carry(step0, canary_ready=True, canary_window=bad), T0 + timedelta(seconds=5)
    )
    again = decide(
        CANARY, carry(back, canary_ready=True, canary_window=GOOD), T0 + timedelta(minutes=5)
    )
    assert again.traffic == {"iris-r1": 100}
    assert again.event is None
    assert again.state == back.state


def test_failing_canary_rolls_back() -> None:
    started = decide(CANARY, seen(), T0)
    decision = decide(CANARY, carry(started, canary_failing=True), T0)
    assert decision.traffic == {"iris-r1": 100}
    assert decision.event is not None
    assert decision.event.reason == "CanaryFailing"


def test_commands_abort_promote_pause_resume() -> None:
    step0 = ready_at_step_0()
    aborted = decide(CANARY, carry(step0, canary_ready=True, command=Command.ABORT), T0)
    assert aborted.traffic == {"iris-r1": 100}
    assert aborted.event is not None
    assert aborted.event.reason == "RolloutAborted"
    promoted = decide(CANARY, carry(step0, canary_ready=True, command=Command.PROMOTE), T0)
    assert promoted.traffic == {"iris-r2": 100}
    paused = decide(CANARY, carry(step0, canary_ready=True, command=Command.PAUSE), T0)
    assert paused.state is not None
    assert paused.state.phase is RolloutPhase.PAUSED
    held = decide(
        CANARY,
        carry(paused, canary_ready=True, canary_window=GOOD, stable_window=STABLE),
        T0 + timedelta(hours=1),
    )
    assert held.traffic == {"iris-r1": 90, "iris-r2": 10}  # a paused rollout never moves on
    resumed = decide(
        CANARY, carry(held, canary_ready=True, command=Command.RESUME), T0 + timedelta(hours=1)
    )
    assert resumed.state is not None
    assert resumed.state.phase is RolloutPhase.PROGRESSING
    assert resumed.state.step_started_at == T0 + timedelta(hours=1)


def test_immediate_strategy_promotes_when_ready() -> None:
    immediate = Rollout(strategy=RolloutStrategy.IMMEDIATE)
    started = decide(immediate, seen(), T0)
    assert started.traffic == {"iris-r1": 100, "iris-r2": 0}
    done = decide(immediate, carry(started, canary_ready=True), T0)
    assert done.traffic == {"iris-r2": 100}
    assert done.stable == "iris-r2"


def test_a_newer_revision_restarts_the_rollout() -> None:
    step0 = ready_at_step_0()
    newer = decide(CANARY, seen(latest="iris-r3", state=step0.state, state_canary="iris-r2"), T0)
    assert newer.canary == "iris-r3"
    assert newer.traffic == {"iris-r1": 100, "iris-r3": 0}
    assert newer.event is not None
    assert newer.event.reason == "RolloutStarted"


def test_same_inputs_same_decision() -> None:
    step0 = ready_at_step_0()
    observation = carry(step0, canary_ready=True, canary_window=GOOD, stable_window=STABLE)
    later = T0 + timedelta(seconds=31)
    assert decide(CANARY, observation, later) == decide(CANARY, observation, later)
