"""The SLO in the one plan both backends apply, with fake time: the SLOBreached condition and
status.slo from the counts a backend read, and the release freeze a spent budget imposes (a
rollback and an override go through)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from modelplane.api import SLO, Condition, Model
from modelplane.api.releases import Incident, Milestone
from modelplane.control.planning import ModelPlan, Observed, plan
from modelplane.control.slo import Counts, SLOReading, windows_for
from tests.control.test_planning import ready, reasons, revision_of
from tests.models import onnx_model

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
FAILING = 0.5  # of requests, in every window


def with_slo(freeze: bool = False, **spec: object) -> Model:
    return onnx_model(slo={"availability": 0.99, "window": "1d", "freeze": freeze}, **spec)


def counted(model: Model, failing: float) -> SLOReading:
    assert model.spec.slo is not None
    return SLOReading({w: Counts(200, 200 * failing) for w in windows_for(model.spec.slo)}, "t")


def condition(decided: ModelPlan, type_: str) -> Condition:
    return next(c for c in decided.plan.status.conditions if c.type == type_)


def serving(model: Model, failing: float) -> tuple[Model, Observed]:
    """``model`` after a pass with r1 stable and the given share of requests failing."""
    stored = (revision_of(model),)
    observed = Observed(revisions=stored, replicas=(ready("iris-r1"),), slo=counted(model, failing))
    first = plan(model, observed, NOW)
    model.status = first.plan.status
    return model, replace(observed, reported=first.reported)


def test_requests_failing_fast_breach_the_slo_with_the_numbers_once() -> None:
    model = with_slo()
    observed = Observed(
        revisions=(revision_of(model),), replicas=(ready("iris-r1"),), slo=counted(model, FAILING)
    )
    first = plan(model, observed, NOW)
    breached = condition(first, "SLOBreached")
    assert (breached.status.value, breached.reason) == ("True", "ErrorBudgetSpent")
    assert "availability 0.5 against 0.99 over 200 requests" in breached.message
    slo = first.plan.status.slo
    assert slo is not None
    assert slo.budget_remaining == -49
    assert {r.window: r.availability for r in slo.burn_rates}["2m"] == 50
    assert "page: 14.4x over 2m and 10s" in slo.alerts
    assert "ErrorBudgetSpent" in reasons(first)
    # Planned again later over the same counts: nothing to write, nothing to tell.
    model.status = first.plan.status
    again = plan(model, replace(observed, reported=first.reported), NOW + timedelta(minutes=5))
    assert again.plan.status == first.plan.status
    assert again.events == ()
    # Healthy again: the breach ends, said once, and the transition time moves.
    model.status = again.plan.status
    healthy = replace(observed, reported=again.reported, slo=counted(model, 0.0))
    later = NOW + timedelta(minutes=10)
    recovered = plan(model, healthy, later)
    ended = condition(recovered, "SLOBreached")
    assert (ended.status.value, ended.reason, ended.last_transition_time) == (
        "False", "WithinBudget", later,
    )  # fmt: skip
    assert reasons(recovered) == ["ErrorBudgetRecovered"]


def test_without_counts_this_pass_what_status_said_stands() -> None:
    model, observed = serving(with_slo(), FAILING)
    again = plan(model, replace(observed, slo=None), NOW + timedelta(minutes=1))
    assert again.plan.status.slo == model.status.slo
    assert condition(again, "SLOBreached") == next(
        c for c in model.status.conditions if c.type == "SLOBreached"
    )


def test_no_source_says_why_nothing_is_measured() -> None:
    model = with_slo()
    why = "no Prometheus to count requests: start the operator with --prometheus URL"
    observed = Observed(
        revisions=(revision_of(model),),
        replicas=(ready("iris-r1"),),
        slo=SLOReading(unavailable=why),
    )
    decided = plan(model, observed, NOW)
    found = condition(decided, "SLOBreached")
    assert (found.status.value, found.reason, found.message) == ("False", "NotMeasured", why)
    assert decided.plan.status.slo is None


def test_slo_edits_make_no_revision_and_dropping_it_drops_the_condition() -> None:
    model, observed = serving(with_slo(), FAILING)
    edited = model.model_copy(update={"spec": model.spec.model_copy(update={"slo": SLO()})})
    assert not plan(edited, observed, NOW).new_revision
    dropped = model.model_copy(update={"spec": model.spec.model_copy(update={"slo": None})})
    decided = plan(dropped, observed, NOW)
    assert not decided.new_revision
    assert "SLOBreached" not in {c.type for c in decided.plan.status.conditions}
    assert decided.plan.status.slo is None


def changed(model: Model, uri: str, **annotations: str) -> Model:
    """``model`` with another artifact (a new revision), keeping its status."""
    spec = model.spec.model_copy(
        update={"source": model.spec.source.model_copy(update={"uri": uri})}
    )
    meta = model.metadata.model_copy(update={"annotations": annotations})
    return model.model_copy(update={"spec": spec, "metadata": meta})


def test_a_spent_budget_under_freeze_holds_a_new_spec_while_the_stable_one_serves() -> None:
    model, observed = serving(with_slo(freeze=True), FAILING)
    held = plan(changed(model, "file:///new.onnx"), observed, NOW)
    assert not held.new_revision
    assert held.revision.name == "iris-r1"
    assert held.plan.traffic == {"iris-r1": 100}
    assert held.plan.start == ()
    assert held.plan.stop == ()
    stalled = condition(held, "Stalled")
    assert (stalled.status.value, stalled.reason) == ("True", "ReleaseFrozen")
    assert "the error budget over 1d is spent" in stalled.message
    assert 'modelplane.io/freeze-override="<reason>"' in stalled.message
    assert "iris-r1 keeps serving" in stalled.message
    assert reasons(held) == ["ReleaseFrozen"]
    # Within budget again: the change goes through on its own.
    healthy = replace(observed, slo=counted(model, 0.0))
    assert plan(changed(model, "file:///new.onnx"), healthy, NOW).new_revision


def test_freeze_off_or_budget_left_lets_changes_through() -> None:
    model, observed = serving(with_slo(freeze=False), FAILING)
    assert plan(changed(model, "file:///new.onnx"), observed, NOW).new_revision
    model, observed = serving(with_slo(freeze=True), 0.001)
    assert plan(changed(model, "file:///new.onnx"), observed, NOW).new_revision


def test_a_rollback_to_an_earlier_revisions_spec_goes_through_a_freeze() -> None:
    first = with_slo(freeze=True)
    r1 = revision_of(first)
    model, observed = serving(changed(first, "file:///bad.onnx"), FAILING)
    r2 = revision_of(model, 2)
    observed = replace(observed, revisions=(r1, r2), replicas=(ready("iris-r2"),))
    model.status.stable_revision = "iris-r2"
    undone = plan(changed(model, first.spec.source.uri), observed, NOW)
    assert undone.new_revision
    assert (undone.revision.name, undone.revision.digest) == ("iris-r3", r1.digest)
    assert "FreezeOverridden" not in reasons(undone)


def test_the_override_annotation_lets_a_change_through_and_is_told_with_its_reason() -> None:
    model, observed = serving(with_slo(freeze=True), FAILING)
    override = {"modelplane.io/freeze-override": "fixes the outage, INC-42"}
    decided = plan(changed(model, "file:///fix.onnx", **override), observed, NOW)
    assert decided.new_revision
    told = {e.reason: e.message for e in decided.events}
    assert told["FreezeOverridden"] == (
        "iris-r2 released while the error budget over 1d is spent: fixes the outage, INC-42"
    )
    assert condition(decided, "Stalled").reason != "ReleaseFrozen"
    # ... and kept in the release history, on the revision it let through.
    kept = [m for m in decided.marks if m.milestone is Milestone.FREEZE_OVERRIDDEN]
    assert [(m.revision, m.reason) for m in kept] == [("iris-r2", "fixes the outage, INC-42")]


def test_a_breach_opens_an_incident_on_the_stable_revision_and_recovery_closes_it() -> None:
    model = with_slo()
    model.status.stable_revision = "iris-r1"
    stored = (revision_of(model),)
    observed = Observed(revisions=stored, replicas=(ready("iris-r1"),), slo=counted(model, FAILING))
    first = plan(model, observed, NOW)
    breached = condition(first, "SLOBreached")
    assert first.incidents == (
        Incident("default", "iris", "iris-r1", breached.last_transition_time, None,
                 "ErrorBudgetSpent"),
    )  # fmt: skip
    # A pass repeated (its status unwritten) starts one again; the store keeps the open one.
    repeated = plan(model, observed, NOW + timedelta(minutes=1)).incidents
    assert [(i.started, i.restored) for i in repeated] == [(NOW + timedelta(minutes=1), None)]
    model.status = first.plan.status
    observed = replace(observed, reported=first.reported)
    assert plan(model, observed, NOW + timedelta(minutes=5)).incidents == ()
    later = NOW + timedelta(minutes=10)
    recovered = plan(model, replace(observed, slo=counted(model, 0.0)), later)
    assert recovered.incidents == (
        Incident("default", "iris", "", breached.last_transition_time, later, "ErrorBudgetSpent"),
    )
    # The objective dropped while breached: the incident ends with it.
    model.spec.slo = None
    dropped = plan(model, replace(observed, slo=None), later)
    assert [(i.started, i.restored) for i in dropped.incidents] == [
        (breached.last_transition_time, later)
    ]
