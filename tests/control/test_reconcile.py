"""Reconcile as pure logic: plans, traffic and conditions for every replica situation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelplane.api import Model
from modelplane.control.conditions import condition
from modelplane.control.reconcile import Phase, Plan, ReplicaView, reconcile
from modelplane.control.revisions import RevisionRef
from tests.models import onnx_model

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
R1 = RevisionRef("iris-r1", 1, "d1")
R2 = RevisionRef("iris-r2", 2, "d2")


def model(stable: str | None = None, generation: int = 1, strategy: str = "Canary") -> Model:
    m = onnx_model(rollout={"strategy": strategy})
    m.metadata.generation = generation
    m.status.stable_revision = stable
    return m


def ready(revision: str, n: int = 1) -> ReplicaView:
    return ReplicaView(f"{revision}-{n}", revision, Phase.READY)


def status_of(plan: Plan, type_: str) -> tuple[str, str]:
    found = condition(plan.status.conditions, type_)
    assert found is not None
    return found.status.value, found.reason


def test_first_revision_starts_replicas_and_is_not_ready() -> None:
    plan = reconcile(model(), R1, [], desired_replicas=2, now=NOW)
    assert plan.start == ("iris-r1", "iris-r1")
    assert plan.stop == ()
    assert plan.traffic == {}
    assert status_of(plan, "Ready") == ("False", "RevisionStarting")
    assert status_of(plan, "Reconciling") == ("True", "ReplicasChanging")


def test_converged_model_yields_an_empty_plan_and_the_same_status() -> None:
    first = reconcile(model(), R1, [ready("iris-r1")], desired_replicas=1, now=NOW)
    assert first.empty
    assert first.traffic == {"iris-r1": 100}
    assert status_of(first, "Ready") == ("True", "RevisionReady")
    assert status_of(first, "Reconciling") == ("False", "Converged")
    again_model = model("iris-r1")
    again_model.status = first.status
    later = NOW + timedelta(minutes=5)
    again = reconcile(again_model, R1, [ready("iris-r1")], desired_replicas=1, now=later)
    assert again.empty
    assert again.status == first.status  # transition times kept: nothing flipped


def test_new_revision_takes_traffic_only_once_ready_then_old_drains() -> None:
    starting = ReplicaView("iris-r2-3", "iris-r2", Phase.STARTING)
    immediate = model("iris-r1", strategy="Immediate")
    plan = reconcile(immediate, R2, [ready("iris-r1"), starting], 1, NOW)
    assert plan.traffic == {"iris-r1": 100, "iris-r2": 0}
    assert plan.stop == ()
    assert status_of(plan, "Ready") == ("False", "RolloutInProgress")

    done = reconcile(immediate, R2, [ready("iris-r1"), ready("iris-r2", 3)], 1, NOW)
    assert done.traffic == {"iris-r2": 100}
    assert done.stop == ("iris-r1-1",)
    assert done.status.stable_revision == "iris-r2"


def test_crash_looping_revision_is_stalled_and_never_takes_traffic() -> None:
    failing = ReplicaView(
        "iris-r2-3", "iris-r2", Phase.FAILED, restarts=3, reason="sha256 mismatch"
    )
    plan = reconcile(model("iris-r1"), R2, [ready("iris-r1"), failing], 1, NOW)
    assert plan.traffic == {"iris-r1": 100}
    assert plan.stop == ("iris-r2-3",)  # the failed canary is scaled down
    assert status_of(plan, "Stalled") == ("True", "RolledBack")
    assert status_of(plan, "Ready") == ("False", "RolledBack")
    ready_condition = condition(plan.status.conditions, "Ready")
    assert ready_condition is not None
    assert "sha256 mismatch" in ready_condition.message
    assert "rolled back to iris-r1" in ready_condition.message
    assert plan.event is not None
    assert plan.event.reason == "CanaryFailing"


def test_first_revision_crash_loop_is_stalled() -> None:
    failing = ReplicaView("iris-r1-1", "iris-r1", Phase.FAILED, restarts=3, reason="bad file")
    plan = reconcile(model(), R1, [failing], 1, NOW)
    assert status_of(plan, "Stalled") == ("True", "RevisionFailing")
    assert status_of(plan, "Ready") == ("False", "RevisionFailed")


MISSING = "format 'sklearn' needs the 'sklearn' extra; install it with: pip install 'x[sklearn]'"


def test_first_revision_failed_for_good_is_stalled_at_once_and_kept_as_is() -> None:
    failed = ReplicaView(
        "iris-r1-1", "iris-r1", Phase.FAILED, 0, MISSING, "MissingExtra", permanent=True
    )
    plan = reconcile(model(), R1, [failed], 1, NOW)
    assert plan.empty  # neither replaced nor stopped: it stays failed, and says why
    stalled = condition(plan.status.conditions, "Stalled")
    assert stalled is not None
    assert (stalled.status.value, stalled.reason) == ("True", "MissingExtra")
    assert (
        stalled.message == f"revision iris-r1 cannot start, and restarting will not help: {MISSING}"
    )
    assert status_of(plan, "Ready") == ("False", "RevisionFailed")


def test_canary_failed_for_good_is_rolled_back_without_waiting_for_restarts() -> None:
    failed = ReplicaView(
        "iris-r2-3", "iris-r2", Phase.FAILED, 0, MISSING, "MissingExtra", permanent=True
    )
    plan = reconcile(model("iris-r1"), R2, [ready("iris-r1"), failed], 1, NOW)
    assert plan.traffic == {"iris-r1": 100}
    assert status_of(plan, "Stalled") == ("True", "RolledBack")
    assert plan.event is not None
    assert "pip install" in plan.event.message


def test_an_unavailable_artifact_rolls_back_and_stays_stalled_as_such() -> None:
    failing = ReplicaView(
        "iris-r2-3", "iris-r2", Phase.FAILED, restarts=3,
        reason="access to s3://models/iris.onnx was denied", failure="ArtifactUnavailable",
    )  # fmt: skip
    plan = reconcile(model("iris-r1"), R2, [ready("iris-r1"), failing], 1, NOW)
    assert plan.traffic == {"iris-r1": 100}
    assert status_of(plan, "Stalled") == ("True", "ArtifactUnavailable")
    stalled = condition(plan.status.conditions, "Stalled")
    assert stalled is not None
    assert "rolled back to iris-r1: iris-r2 cannot get its artifact: access to" in stalled.message
    assert plan.event is not None
    assert plan.event.reason == "ArtifactUnavailable"
    # Once the failed canary is gone, the recorded rollout still says why.
    later = model("iris-r1")
    later.status = plan.status
    again = reconcile(later, R2, [ready("iris-r1")], 1, NOW)
    assert status_of(again, "Stalled") == ("True", "ArtifactUnavailable")
    assert again.traffic == {"iris-r1": 100}


def test_first_revision_without_its_artifact_is_stalled_as_such() -> None:
    failing = ReplicaView(
        "iris-r1-1", "iris-r1", Phase.FAILED, restarts=3, reason="not found",
        failure="ArtifactUnavailable",
    )  # fmt: skip
    plan = reconcile(model(), R1, [failing], 1, NOW)
    assert status_of(plan, "Stalled") == ("True", "ArtifactUnavailable")
    stalled = condition(plan.status.conditions, "Stalled")
    assert stalled is not None
    assert stalled.message == "revision iris-r1 cannot get its artifact: not found"


def test_canary_takes_step_weights_and_keeps_both_revisions_up() -> None:
    started = reconcile(model("iris-r1"), R2, [ready("iris-r1"), ready("iris-r2", 3)], 2, NOW)
    assert started.traffic == {"iris-r1": 90, "iris-r2": 10}  # the canary is ready: step 1
    assert started.new_window
    assert started.start == ("iris-r1", "iris-r2")  # both revisions get the autoscaled count
    assert status_of(started, "RolloutProgressing") == ("True", "Progressing")
    assert status_of(started, "Ready") == ("False", "RolloutInProgress")
    assert started.status.canary_revision == "iris-r2"
    next_model = model("iris-r1")
    next_model.status = started.status
    later = reconcile(next_model, R2, [ready("iris-r1"), ready("iris-r2", 3)], 2, NOW)
    assert later.traffic == {"iris-r1": 90, "iris-r2": 10}
    assert not later.new_window


def test_scale_up_and_down_stops_unready_replicas_first() -> None:
    replicas = [
        ready("iris-r1", 1),
        ReplicaView("iris-r1-2", "iris-r1", Phase.STARTING),
        ReplicaView("iris-r1-3", "iris-r1", Phase.FAILED),
    ]
    down = reconcile(model("iris-r1"), R1, replicas, desired_replicas=1, now=NOW)
    assert down.stop == ("iris-r1-2", "iris-r1-3")
    up = reconcile(model("iris-r1"), R1, [ready("iris-r1", 1)], desired_replicas=3, now=NOW)
    assert up.start == ("iris-r1", "iris-r1")


def test_scaled_to_zero_is_ready_with_no_traffic() -> None:
    plan = reconcile(model("iris-r1"), R1, [], desired_replicas=0, now=NOW)
    assert plan.empty
    assert status_of(plan, "Ready") == ("True", "ScaledToZero")


def test_stopping_replicas_are_not_counted() -> None:
    stopping = ReplicaView("iris-r1-1", "iris-r1", Phase.STOPPING)
    plan = reconcile(model("iris-r1"), R1, [stopping], desired_replicas=1, now=NOW)
    assert plan.start == ("iris-r1",)


@pytest.mark.parametrize("generation", [1, 7])
def test_observed_generation_follows_the_model(generation: int) -> None:
    plan = reconcile(model(generation=generation), R1, [ready("iris-r1")], 1, NOW)
    assert plan.status.observed_generation == generation
    assert {c.observed_generation for c in plan.status.conditions} == {generation}
