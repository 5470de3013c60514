"""The one plan both backends apply, with fake time: which revision serves, replicas from
demand, the namespace's replica cap, rollout windows and commands, and the events a pass tells.
Each situation is one both modes meet; where they observe differently (a cluster's gateways not
reporting yet), the observation says so and the rule is still the same."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from modelplane.api import Model, revision_digest
from modelplane.control.analysis import Window
from modelplane.control.autoscaling import Demand, DemandMemory
from modelplane.control.planning import AnalysisWindows, ModelPlan, Observed, plan
from modelplane.control.quotas import Claim, ReplicaCap
from modelplane.control.reconcile import Phase, ReplicaView
from modelplane.control.revisions import RevisionRef
from tests.models import onnx_model

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
CREATED = NOW - timedelta(days=1)


def revision_of(model: Model, number: int = 1) -> RevisionRef:
    return RevisionRef(f"{model.metadata.name}-r{number}", number, revision_digest(model.spec))


def ready(revision: str, index: int = 1) -> ReplicaView:
    return ReplicaView(f"{revision}-{index}", revision, Phase.READY)


def reasons(decided: ModelPlan) -> list[str]:
    return [event.reason for event in decided.events]


def test_a_new_model_gets_its_first_revision_recorded_then_started() -> None:
    model = onnx_model()
    decided = plan(model, Observed(demand=Demand(born=NOW)), NOW)
    assert decided.new_revision
    assert decided.revision == revision_of(model)
    assert decided.plan.start == ("iris-r1",)
    assert reasons(decided) == ["RevisionCreated"]
    assert "revision iris-r1 created" in decided.events[0].message


def test_unchanged_serving_fields_keep_the_revision_and_a_changed_one_makes_the_next() -> None:
    model = onnx_model(scaling={"maxReplicas": 4})
    stored = (revision_of(model),)
    rescaled = onnx_model(scaling={"maxReplicas": 8})
    same = plan(rescaled, Observed(revisions=stored, replicas=(ready("iris-r1"),)), NOW)
    assert not same.new_revision
    assert same.revision.name == "iris-r1"
    moved = onnx_model(source={"uri": "file:///other.onnx"})
    nxt = plan(moved, Observed(revisions=stored, replicas=(ready("iris-r1"),)), NOW)
    assert nxt.new_revision
    assert (nxt.revision.name, nxt.revision.number) == ("iris-r2", 2)
    # Edited back to r1's fields: a new revision still, numbered after the newest.
    back = plan(model, Observed(revisions=(*stored, nxt.revision)), NOW)
    assert (back.revision.name, back.new_revision) == ("iris-r3", True)


def test_the_replica_cap_goes_to_the_models_created_first_and_is_said_once() -> None:
    busy = Demand(samples=(), last_request=NOW, born=NOW)
    cap = ReplicaCap(5, (Claim(CREATED, "team-a/old", 3), Claim(NOW, "team-a/young", 4)))
    young_scaled = onnx_model("young", "team-a", scaling={"minReplicas": 4, "maxReplicas": 4})
    stored = (revision_of(young_scaled),)
    first = plan(young_scaled, Observed(revisions=stored, demand=busy, cap=cap), NOW)
    assert (first.wanted, first.desired) == (4, 2)
    assert reasons(first) == ["ReplicaQuotaReached"]
    assert "4 replicas wanted, 2 allowed: namespace 'team-a' may run 5 in all" in (
        first.events[0].message
    )
    again = plan(young_scaled, Observed(revisions=stored, demand=busy, cap=cap,
                                        reported=first.reported), NOW)  # fmt: skip
    assert again.desired == 2
    assert "ReplicaQuotaReached" not in reasons(again)
    # The older Model claims less: the younger gets its room, and a later cap says so afresh.
    shrunk = ReplicaCap(5, (Claim(CREATED, "team-a/old", 1), Claim(NOW, "team-a/young", 4)))
    room = plan(young_scaled, Observed(revisions=stored, demand=busy, cap=shrunk,
                                       reported=again.reported), NOW)  # fmt: skip
    assert room.desired == 4
    assert not room.reported.held_back
    # The older Model is never held back by a younger one's claim.
    old_scaled = onnx_model("old", "team-a", scaling={"minReplicas": 3, "maxReplicas": 3})
    older = plan(old_scaled, Observed(revisions=(revision_of(old_scaled),), cap=cap), NOW)
    assert older.desired == 3


def test_idle_demand_scales_to_zero_after_its_time_and_a_request_brings_one_back() -> None:
    model = onnx_model(scaling={"minReplicas": 0, "maxReplicas": 2,
                                "scaleToZeroAfterSeconds": 60})  # fmt: skip
    stored = (revision_of(model),)
    memory = DemandMemory()
    born = NOW - timedelta(minutes=10)
    demand = memory.observe("iris-r1", 0, NOW - timedelta(seconds=30), NOW, born)
    running = plan(model, Observed(revisions=stored, replicas=(ready("iris-r1"),),
                                   demand=demand), NOW)  # fmt: skip
    assert running.desired == 1
    later = NOW + timedelta(seconds=40)
    idle = memory.observe("iris-r1", 0, NOW - timedelta(seconds=30), later, born)
    zero = plan(model, Observed(revisions=stored, replicas=(ready("iris-r1"),), demand=idle), later)
    assert zero.desired == 0
    assert zero.plan.stop == ("iris-r1-1",)
    held = memory.observe("iris-r1", 1, later, later + timedelta(seconds=1), born)
    back = plan(model, Observed(revisions=stored, demand=held), later + timedelta(seconds=1))
    assert back.desired == 1
    assert back.plan.start == ("iris-r1",)


def test_unknown_demand_keeps_what_runs_and_wakes_nothing_at_zero() -> None:
    model = onnx_model(scaling={"minReplicas": 0, "maxReplicas": 4})
    stored = (revision_of(model),)
    at_zero = plan(model, Observed(revisions=stored, demand=Demand(known=False, scaled_to=0)), NOW)
    assert at_zero.desired == 0
    busy = plan(model, Observed(revisions=stored, demand=Demand(known=False, scaled_to=3)), NOW)
    assert busy.desired == 3
    never = plan(model, Observed(revisions=stored, demand=Demand(known=False)), NOW)
    assert never.desired == 1


def test_windows_of_another_revision_are_not_taken_for_the_canarys() -> None:
    model = onnx_model(rollout={"steps": [{"weight": 10, "pauseSeconds": 0}],
                                "analysis": {"minRequests": 10, "maxErrorRate": 0.01}})  # fmt: skip
    model.status.stable_revision = "iris-r1"
    stored = (RevisionRef("iris-r1", 1, "old"), revision_of(model, 2))
    replicas = (ready("iris-r1"), ready("iris-r2"))
    failing = Window(requests=100, errors=50)
    started = plan(model, Observed(revisions=stored, replicas=replicas), NOW)
    model.status = started.plan.status
    later = NOW + timedelta(seconds=1)
    elsewhere = AnalysisWindows("iris-r9", failing, Window(requests=100))
    judged_not = plan(model, Observed(revisions=stored, replicas=replicas, windows=elsewhere),
                      later)  # fmt: skip
    assert "iris-r2" in judged_not.plan.traffic
    assert judged_not.plan.traffic["iris-r2"] > 0
    own = AnalysisWindows("iris-r2", failing, Window(requests=100))
    judged = plan(model, Observed(revisions=stored, replicas=replicas, windows=own), later)
    assert judged.plan.traffic == {"iris-r1": 100}
    assert "AnalysisFailed" in reasons(judged)


def test_a_rollout_command_is_acted_on_once() -> None:
    model = onnx_model(rollout={"steps": [{"weight": 10, "pauseSeconds": 3600}]})
    model.status.stable_revision = "iris-r1"
    stored = (RevisionRef("iris-r1", 1, "old"), revision_of(model, 2))
    replicas = (ready("iris-r1"), ready("iris-r2"))
    started = plan(model, Observed(revisions=stored, replicas=replicas), NOW)
    model.status = started.plan.status
    model.metadata.annotations["modelplane.io/rollout-command"] = "promote:1"
    promoted = plan(model, Observed(revisions=stored, replicas=replicas), NOW)
    assert promoted.plan.traffic == {"iris-r2": 100}
    assert promoted.plan.status.rollout is not None
    assert promoted.plan.status.rollout.last_command == "promote:1"


def test_a_command_acted_on_does_not_steer_the_next_rollout() -> None:
    model = onnx_model(rollout={"steps": [{"weight": 10, "pauseSeconds": 3600}]})
    model.status.stable_revision = "iris-r1"
    stored = (RevisionRef("iris-r1", 1, "old"), revision_of(model, 2))
    replicas = (ready("iris-r1"), ready("iris-r2"))
    model.status = plan(model, Observed(revisions=stored, replicas=replicas), NOW).plan.status
    model.metadata.annotations["modelplane.io/rollout-command"] = "promote:1"
    model.status = plan(model, Observed(revisions=stored, replicas=replicas), NOW).plan.status
    assert model.status.stable_revision == "iris-r2"
    changed = onnx_model(rollout={"steps": [{"weight": 10, "pauseSeconds": 3600}]},
                         batching={"maxBatchSize": 4})  # fmt: skip
    changed.status, changed.metadata.annotations = model.status, model.metadata.annotations
    stored = (*stored, revision_of(changed, 3))
    replicas = (ready("iris-r2"), ready("iris-r3"))
    for _ in range(3):  # the annotation still says promote:1, which promoted r2 only
        changed.status = plan(
            changed, Observed(revisions=stored, replicas=replicas), NOW
        ).plan.status
    assert changed.status.stable_revision == "iris-r2"
    assert changed.status.canary_revision == "iris-r3"


def test_a_new_revision_records_its_moving_reference_resolved() -> None:
    model = onnx_model(source={"uri": "oci://registry.example/team/iris:stable"})
    pinned = model.spec.source.model_copy(
        update={"uri": "oci://registry.example/team/iris@sha256:" + "b" * 64}
    )
    decided = plan(model, Observed(demand=Demand(born=NOW), source=pinned), NOW)
    assert decided.new_revision
    assert decided.source.uri.endswith("@sha256:" + "b" * 64)
    # The revision is named by the spec as written: a tag that moves later makes none.
    assert decided.revision == revision_of(model)


def test_a_source_that_cannot_be_resolved_makes_no_revision_and_the_stable_one_serves() -> None:
    model = onnx_model()
    stored = (revision_of(model),)
    moved = onnx_model(source={"uri": "models:/iris@champion"})
    why = "no alias 'champion' on registered model 'iris'"
    decided = plan(
        moved, Observed(revisions=stored, replicas=(ready("iris-r1"),), unresolved=why), NOW
    )
    assert not decided.new_revision
    assert decided.revision.name == "iris-r1"
    assert decided.plan.stop == ()
    assert decided.plan.traffic == {"iris-r1": 100}
    stalled = {c.type: c for c in decided.plan.status.conditions}["Stalled"]
    assert (stalled.status.value, stalled.reason) == ("True", "ArtifactUnavailable")
    assert why in stalled.message
    assert "ArtifactUnavailable" in reasons(decided)


def test_a_first_source_that_cannot_be_resolved_starts_nothing_and_is_not_ready() -> None:
    model = onnx_model(source={"uri": "hf://org/missing"})
    decided = plan(model, Observed(demand=Demand(born=NOW), unresolved="not found"), NOW)
    assert not decided.new_revision
    assert (decided.plan.start, decided.plan.replicas, decided.plan.traffic) == ((), {}, {})
    assert decided.plan.status.revisions == []
    conditions = {c.type: c for c in decided.plan.status.conditions}
    assert (conditions["Ready"].status.value, conditions["Ready"].reason) == (
        "False",
        "ArtifactUnavailable",
    )


def test_an_unresolvable_source_planned_again_later_changes_nothing() -> None:
    """Idempotent: the second pass over the same observation, an hour on, says the same."""
    model = onnx_model(source={"uri": "hf://org/missing"})
    observed = Observed(demand=Demand(born=NOW), unresolved="not found")
    first = plan(model, observed, NOW)
    model.status = first.plan.status
    later = replace(observed, reported=first.reported)
    again = plan(model, later, NOW + timedelta(hours=1))
    assert again.plan.status == first.plan.status
    assert again.events == ()
