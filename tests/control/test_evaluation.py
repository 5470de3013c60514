"""The evaluation gate: each task's metric, the verdict against a threshold or the stable
revision, and where the gate sits in a rollout (before any traffic), with fake time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelplane.api import Evaluation, EvaluationMetric, EvaluationResult, Model, RevisionStatus
from modelplane.control.evaluation import (
    Failed,
    Scored,
    judge,
    mean_score,
    score,
    scorer_failed,
)
from modelplane.control.planning import Observed, evaluation_due, plan
from modelplane.control.reconcile import Phase, ReplicaView
from modelplane.control.revisions import RevisionRef
from tests.control.test_planning import revision_of
from tests.models import onnx_model

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
M = EvaluationMetric


def test_classification_metrics_count_labels_and_a_failed_answer_as_wrong() -> None:
    pairs: list[tuple[object, object]] = [(0, 0), (1, 1), (1, 0), (Failed("HTTP 500"), 2)]
    assert score(M.ACCURACY, pairs).value == 0.5
    # Labels 0, 1, 2: F1 2/3, 2/3 and 0; macro-averaged.
    assert score(M.F1, pairs).value == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert score(M.ACCURACY, [(1.0, 1), ("setosa", "setosa")]).value == 1.0


def test_regression_and_embeddings_need_every_answer_and_numbers() -> None:
    assert score(M.MEAN_ABSOLUTE_ERROR, [(1.5, 1.0), (2.0, 3.0)]).value == 0.75
    near = score(M.COSINE_SIMILARITY, [([1.0, 0.0], [1.0, 0.0]), ([0.0, 1.0], [1.0, 1.0])])
    assert near.value == pytest.approx((1 + 2**-0.5) / 2)
    broken = score(M.MEAN_ABSOLUTE_ERROR, [(1.0, 1.0), (Failed("HTTP 503 overloaded"), 2.0)])
    assert (broken.value, broken.problem) == (None, "1 of 2 examples failed: HTTP 503 overloaded")
    assert score(M.MEAN_ABSOLUTE_ERROR, [("many", 1.0)]).problem == "'many' is not a number"
    wrong = score(M.COSINE_SIMILARITY, [([1.0, 0.0], [1.0, 0.0, 0.0])])
    assert wrong.problem == "an embedding of 2 dimensions against an expected 3"


def test_generation_matches_whole_answers_and_no_examples_is_no_score() -> None:
    assert score(M.EXACT_MATCH, [(" Paris\n", "Paris"), ("Lyon", "Paris")]).value == 0.5
    assert score(M.EXACT_MATCH, []).problem == "the dataset has no examples"


def test_a_scorers_metric_is_the_mean_of_its_numbers_a_failed_answer_counting_zero() -> None:
    assert mean_score([1.0, 0.5, 0.0]).value == 0.5
    assert mean_score([1.0, Failed("HTTP 500"), 0.5, 1.0]).value == 0.625
    assert mean_score([]).problem == "the dataset has no examples"
    nothing = mean_score([Failed("HTTP 503"), Failed("HTTP 503")])
    assert (nothing.value, nothing.examples, nothing.problem) == (
        None, 2, "every example failed: HTTP 503",
    )  # fmt: skip


def gate(
    metric: M, threshold: float, relative: bool = False, scorer: str | None = None
) -> Evaluation:
    return Evaluation(
        dataset="file:///eval.jsonl", metric=metric, threshold=threshold,
        relative_to_stable=relative, scorer=scorer,
    )  # fmt: skip


def test_a_scorers_verdict_names_it_and_its_failure_has_its_own_reason() -> None:
    scored = gate(M.SCORER, 0.8, scorer="acme.judging:rubric")
    under = judge(scored, Scored(0.75, 4))
    assert (under.passed, under.metric, under.reason) == (False, "scorer", "")
    assert under.message == (
        "scorer acme.judging:rubric 0.75 over 4 examples is under the threshold (0.8)"
    )
    relative = gate(M.SCORER, 0.05, relative=True, scorer="rubric")
    assert judge(relative, Scored(0.9, 4), Scored(0.93, 4)).passed
    broken = scorer_failed(scored, "scorer acme.judging:rubric raised on eval.jsonl line 2")
    assert (broken.passed, broken.reason, broken.value) == (False, "ScorerFailed", None)


def test_the_verdict_against_a_threshold_or_the_stable_revision() -> None:
    passed = judge(gate(M.ACCURACY, 0.9), Scored(0.95, 40))
    assert passed.passed
    assert passed.message == "accuracy 0.95 over 40 examples is at least the threshold (0.9)"
    failed = judge(gate(M.MEAN_ABSOLUTE_ERROR, 0.5), Scored(0.7, 10))
    assert not failed.passed
    assert failed.message == "meanAbsoluteError 0.7 over 10 examples is over the threshold (0.5)"
    relative = judge(gate(M.ACCURACY, 0.02, relative=True), Scored(0.90, 40), Scored(0.95, 40))
    assert (relative.passed, relative.stable_value) == (False, 0.95)
    assert "under the stable revision's 0.95 - 0.02 (0.93)" in relative.message
    close = judge(gate(M.MEAN_ABSOLUTE_ERROR, 0.1, relative=True), Scored(0.55, 9), Scored(0.5, 9))
    assert close.passed
    nothing = judge(gate(M.ACCURACY, 0.9), Scored(None, 0, "the dataset has no examples"))
    assert (nothing.passed, nothing.message) == (False, "canary: the dataset has no examples")


# -- in a rollout ------------------------------------------------------------------------------


def gated_model() -> tuple[Model, Observed]:
    model = onnx_model(rollout={
        "steps": [{"weight": 20, "pauseSeconds": 60}],
        "evaluation": {"dataset": "file:///eval.jsonl", "metric": "accuracy", "threshold": 0.9},
    })  # fmt: skip
    model.status.stable_revision = "iris-r1"
    model.status.revisions = [RevisionStatus(name="iris-r1", traffic=100)]
    stored = (RevisionRef("iris-r1", 1, "old"), revision_of(model, 2))
    replicas = (
        ReplicaView("iris-r1-1", "iris-r1", Phase.READY),
        ReplicaView("iris-r2-1", "iris-r2", Phase.READY),
    )
    return model, Observed(revisions=stored, replicas=replicas)


def verdict(passed: bool, value: float) -> EvaluationResult:
    return EvaluationResult(passed=passed, metric="accuracy", value=value, threshold=0.9,
                            examples=50, message=f"accuracy {value}")  # fmt: skip


def test_a_gated_canary_takes_no_traffic_until_its_verdict_is_in() -> None:
    model, seen = gated_model()
    waiting = plan(model, seen, NOW)
    assert waiting.plan.traffic == {"iris-r1": 100, "iris-r2": 0}
    rollout = waiting.plan.status.rollout
    assert rollout is not None
    assert rollout.message == "evaluating iris-r2 on file:///eval.jsonl"
    model.status = waiting.plan.status
    assert evaluation_due(model) == "iris-r2"
    # A verdict on another revision is not this canary's.
    other = plan(model, Observed(**{**seen.__dict__, "evaluated": "iris-r9",
                                    "evaluation": verdict(True, 1.0)}), NOW)  # fmt: skip
    assert other.plan.traffic["iris-r2"] == 0


def test_a_passing_verdict_starts_the_steps_and_stays_on_status() -> None:
    model, seen = gated_model()
    model.status = plan(model, seen, NOW).plan.status
    judged = Observed(
        **{**seen.__dict__, "evaluated": "iris-r2", "evaluation": verdict(True, 0.96)}
    )
    passed = plan(model, judged, NOW + timedelta(seconds=5))
    assert passed.plan.traffic == {"iris-r1": 80, "iris-r2": 20}
    assert "EvaluationPassed" in [e.reason for e in passed.events]
    model.status = passed.plan.status
    assert model.status.rollout is not None
    assert model.status.rollout.evaluation == verdict(True, 0.96)
    assert evaluation_due(model) is None  # judged once: the backend may forget it
    later = plan(model, seen, NOW + timedelta(seconds=10))
    assert later.plan.traffic == {"iris-r1": 80, "iris-r2": 20}


def test_a_failing_verdict_rolls_back_before_any_traffic_with_the_numbers() -> None:
    model, seen = gated_model()
    model.status = plan(model, seen, NOW).plan.status
    judged = Observed(
        **{**seen.__dict__, "evaluated": "iris-r2", "evaluation": verdict(False, 0.4)}
    )
    failed = plan(model, judged, NOW + timedelta(seconds=5))
    assert failed.plan.traffic == {"iris-r1": 100}
    rollout = failed.plan.status.rollout
    assert rollout is not None
    assert (rollout.phase.value, rollout.reason) == ("RolledBack", "EvaluationFailed")
    assert rollout.evaluation is not None
    assert rollout.evaluation.value == 0.4
    assert "EvaluationFailed" in [e.reason for e in failed.events]
    assert [m.milestone.value for m in failed.marks] == ["rolledBack"]  # never took traffic


def test_a_verdict_whose_scorer_failed_rolls_back_with_that_reason() -> None:
    model, seen = gated_model()
    model.status = plan(model, seen, NOW).plan.status
    why = "scorer acme:rubric cannot be imported here (ModuleNotFoundError: No module named 'acme')"
    broken = scorer_failed(gate(M.SCORER, 0.8, scorer="acme:rubric"), why)
    judged = Observed(**{**seen.__dict__, "evaluated": "iris-r2", "evaluation": broken})
    failed = plan(model, judged, NOW + timedelta(seconds=5))
    assert failed.plan.traffic == {"iris-r1": 100}
    rollout = failed.plan.status.rollout
    assert rollout is not None
    assert (rollout.phase.value, rollout.reason) == ("RolledBack", "ScorerFailed")
    assert rollout.message == f"rolled back to iris-r1: {why}"
    assert "ScorerFailed" in [e.reason for e in failed.events]
    assert "EvaluationFailed" not in [e.reason for e in failed.events]
