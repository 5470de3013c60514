"""Releases and their DORA figures with fake time: which milestones a pass records, and what a
history of them means (the edge cases a team's figures hinge on)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelplane.api import COMMIT_TIME_ANNOTATION, RevisionStatus
from modelplane.api.releases import Incident, Mark, Milestone, RevisionHistory
from modelplane.control.planning import Observed, plan
from modelplane.control.reconcile import Phase, ReplicaView
from modelplane.control.releases import Outcome, figures, releases
from modelplane.control.revisions import RevisionRef
from tests.control.test_planning import revision_of
from tests.models import onnx_model

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def revision(
    number: int,
    digest: str,
    created: float,
    *,
    traffic: float | None = None,
    promoted: float | None = None,
    rolled_back: tuple[float, str] | None = None,
    committed: float | None = None,
    model: str = "iris",
) -> RevisionHistory:
    name = f"{model}-r{number}"
    marks = []
    if committed is not None:
        marks.append(Mark(name, Milestone.COMMITTED, minutes(committed)))
    if traffic is not None:
        marks.append(Mark(name, Milestone.TRAFFIC, minutes(traffic)))
    if promoted is not None:
        marks.append(Mark(name, Milestone.PROMOTED, minutes(promoted)))
    if rolled_back is not None:
        at, reason = rolled_back
        marks.append(Mark(name, Milestone.ROLLED_BACK, minutes(at), reason))
    return RevisionHistory("team-a", model, name, number, digest, minutes(created), tuple(marks))


def outcomes(history: list[RevisionHistory], **kwargs: timedelta) -> dict[str, Outcome]:
    return {r.revision: r.outcome for r in releases(history, **kwargs)}


# -- what a pass records ---------------------------------------------------------------------


def ready(name: str) -> ReplicaView:
    return ReplicaView(f"{name}-1", name, Phase.READY)


def test_a_first_revision_is_marked_serving_and_promoted_once_ready() -> None:
    model = onnx_model()
    model.metadata.annotations[COMMIT_TIME_ANNOTATION] = "2026-12-01T08:30:00Z"
    first = plan(model, Observed(), T0)
    assert [m.milestone for m in first.marks] == [Milestone.COMMITTED]
    assert first.marks[0].at == datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    stored = (revision_of(model),)
    model.status = first.plan.status
    serving = plan(model, Observed(revisions=stored, replicas=(ready("iris-r1"),)), minutes(1))
    assert {(m.revision, m.milestone, m.at) for m in serving.marks} == {
        ("iris-r1", Milestone.TRAFFIC, minutes(1)),
        ("iris-r1", Milestone.PROMOTED, minutes(1)),
    }
    model.status = serving.plan.status
    again = plan(model, Observed(revisions=stored, replicas=(ready("iris-r1"),)), minutes(2))
    assert again.marks == ()  # nothing new happened


def test_a_canary_is_marked_when_it_takes_traffic_and_when_it_is_rolled_back() -> None:
    model = onnx_model(rollout={"steps": [{"weight": 10, "pauseSeconds": 3600}]})
    model.status.stable_revision = "iris-r1"
    model.status.revisions = [RevisionStatus(name="iris-r1", traffic=100)]
    stored = (RevisionRef("iris-r1", 1, "old"), revision_of(model, 2))
    replicas = (ready("iris-r1"), ready("iris-r2"))
    stepped = plan(model, Observed(revisions=stored, replicas=replicas), minutes(1))
    assert stepped.plan.traffic == {"iris-r1": 90, "iris-r2": 10}
    assert [(m.revision, m.milestone) for m in stepped.marks] == [("iris-r2", Milestone.TRAFFIC)]
    model.status = stepped.plan.status
    model.metadata.annotations["modelplane.io/rollout-command"] = "abort:1"
    aborted = plan(model, Observed(revisions=stored, replicas=replicas), minutes(2))
    assert [(m.revision, m.milestone, m.reason) for m in aborted.marks] == [
        ("iris-r2", Milestone.ROLLED_BACK, "RolloutAborted")
    ]
    model.status = aborted.plan.status
    assert plan(model, Observed(revisions=stored, replicas=replicas), minutes(3)).marks == ()


def test_a_malformed_commit_time_is_ignored_and_the_release_counts_from_its_revision() -> None:
    model = onnx_model()
    model.metadata.annotations[COMMIT_TIME_ANNOTATION] = "yesterday"
    assert plan(model, Observed(), T0).marks == ()


# -- what a history means ---------------------------------------------------------------------


def test_lead_time_runs_from_the_commit_when_known_else_from_the_revision() -> None:
    found = releases(
        [
            revision(1, "a", 0, traffic=5, promoted=5),
            revision(2, "b", 60, committed=30, traffic=61, promoted=90),
        ]
    )
    assert [r.lead_time for r in found] == [timedelta(minutes=5), timedelta(minutes=60)]
    assert all(r.outcome is Outcome.PROMOTED for r in found)


def test_a_release_brought_back_within_the_window_is_undone_and_restored_by_the_undo() -> None:
    history = [
        revision(1, "a", 0, traffic=1, promoted=1),
        revision(2, "b", 10, traffic=11, promoted=20),
        revision(3, "a", 50, traffic=51, promoted=55),  # `modelplane rollouts undo`
    ]
    found = {r.revision: r for r in releases(history)}
    assert found["iris-r2"].outcome is Outcome.UNDONE
    assert found["iris-r2"].undone_by == "iris-r3"
    assert found["iris-r2"].time_to_restore == timedelta(minutes=35)
    assert found["iris-r3"].outcome is Outcome.PROMOTED
    # Brought back two days later: a new decision, not an undo.
    assert outcomes(history, undo_window=timedelta(minutes=20))["iris-r2"] is Outcome.PROMOTED


def test_a_rollback_of_a_rollback_fails_both() -> None:
    history = [
        revision(1, "a", 0, promoted=1),
        revision(2, "b", 10, promoted=20),
        revision(3, "a", 30, promoted=35),  # undo b
        revision(4, "b", 40, promoted=45),  # undo the undo: b was right after all
    ]
    assert outcomes(history) == {
        "iris-r1": Outcome.PROMOTED,
        "iris-r2": Outcome.UNDONE,
        "iris-r3": Outcome.UNDONE,
        "iris-r4": Outcome.PROMOTED,
    }
    summary = figures(releases(history), T0, minutes(60))
    assert (summary.releases, summary.deployments, summary.failed) == (4, 4, 2)
    assert summary.change_failure_rate == 0.5


def test_an_abort_before_any_traffic_fails_but_restored_nothing() -> None:
    history = [
        revision(1, "a", 0, traffic=1, promoted=1),
        revision(2, "b", 10, rolled_back=(12, "RolloutAborted")),
        revision(3, "c", 20, traffic=25, rolled_back=(40, "AnalysisFailed")),
    ]
    found = {r.revision: r for r in releases(history)}
    assert (found["iris-r2"].outcome, found["iris-r2"].time_to_restore) == (Outcome.ABORTED, None)
    assert found["iris-r3"].outcome is Outcome.ROLLED_BACK
    assert found["iris-r3"].reason == "AnalysisFailed"
    assert found["iris-r3"].time_to_restore == timedelta(minutes=15)
    summary = figures(list(found.values()), T0, minutes(60))
    assert summary.change_failure_rate == 2 / 3
    assert summary.time_to_restore_median == timedelta(minutes=15)
    assert summary.deployments == 1


def test_overlapping_releases_supersede_and_count_neither_way() -> None:
    history = [
        revision(1, "a", 0, promoted=1),
        revision(2, "b", 10, traffic=12),  # still a canary when the next change came
        revision(3, "c", 15, traffic=16, promoted=30),
        revision(4, "d", 40),  # rolling out now
    ]
    assert outcomes(history) == {
        "iris-r1": Outcome.PROMOTED,
        "iris-r2": Outcome.SUPERSEDED,
        "iris-r3": Outcome.PROMOTED,
        "iris-r4": Outcome.IN_PROGRESS,
    }
    summary = figures(releases(history), T0, minutes(60))
    assert (summary.releases, summary.change_failure_rate) == (2, 0.0)


def test_figures_count_the_releases_finished_in_the_period_and_per_day() -> None:
    day = 24 * 60
    history = [revision(n, str(n), day * n, promoted=day * n + 30) for n in range(1, 11)]
    history += [revision(1, "x", 0, promoted=10, model="other")]
    found = releases(history)
    week = figures(found, minutes(4 * day), minutes(11 * day))
    assert week.deployments == 7  # days 4..10
    assert week.deployments_per_day == 1.0
    assert week.lead_time_median == timedelta(minutes=30)
    assert week.change_failure_rate == 0.0
    assert week.time_to_restore_median is None
    empty = figures(found, minutes(20 * day), minutes(21 * day))
    assert (empty.releases, empty.change_failure_rate, empty.lead_time_median) == (0, None, None)


def test_time_to_restore_counts_slo_breaches_restored_in_the_period() -> None:
    def breach(start: float, end: float | None) -> Incident:
        ended = minutes(end) if end is not None else None
        return Incident("team-a", "iris", "iris-r1", minutes(start), ended, "ErrorBudgetSpent")

    history = [
        revision(1, "a", 0, promoted=5),
        revision(2, "b", 60, traffic=61, rolled_back=(71, "AnalysisFailed")),
    ]
    # Restored after 20 minutes, after 40, and one still open: not restored, not counted.
    breaches = [breach(100, 120), breach(200, 240), breach(300, None)]
    hour = figures(releases(history), T0, minutes(400), breaches)
    assert hour.incidents == 2
    assert hour.time_to_restore_median == timedelta(minutes=20)  # of 10, 20 and 40
    assert hour.change_failure_rate == 0.5  # breaches are no releases: the rate stands
    before = figures(releases(history), T0, minutes(110), breaches)
    assert (before.incidents, before.time_to_restore_median) == (0, timedelta(minutes=10))
