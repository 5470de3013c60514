"""The evaluation gate's arithmetic: each task's metric over (prediction, expected) pairs, or
the mean of a scorer's numbers, and the verdict against the threshold (absolute, or relative to
the stable revision). Pure: the backends and ``modelplane evaluate`` replay the dataset (and
call the scorer) and hand the results in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from modelplane.api import Evaluation, EvaluationMetric, EvaluationResult
from modelplane.api.model import LOWER_IS_BETTER

# The reason a gate fails (and the rollout rolls back) when its scorer, not the model, failed.
SCORER_FAILED = "ScorerFailed"


class Failed(str):
    """A prediction that could not be had: the runtime's error, as text."""


@dataclass(frozen=True)
class Scored:
    """A metric's value over a replay, or why there is none."""

    value: float | None
    examples: int
    problem: str = ""


def score(metric: EvaluationMetric, pairs: Sequence[tuple[object, object]]) -> Scored:
    """``pairs``: (prediction, expected) per example; a prediction that is an exception's text
    (``Failed``) counts as wrong (or, for regression and embeddings, makes the score fail)."""
    if not pairs:
        return Scored(None, 0, "the dataset has no examples")
    failed = [p for p, _ in pairs if isinstance(p, Failed)]
    if len(failed) == len(pairs):  # nothing was measured, whatever the metric
        return Scored(None, len(pairs), f"every example failed: {failed[0]}")
    if metric is EvaluationMetric.ACCURACY:
        right = sum(1 for p, e in pairs if not isinstance(p, Failed) and _same(p, e))
        return Scored(right / len(pairs), len(pairs))
    if metric is EvaluationMetric.EXACT_MATCH:
        right = sum(1 for p, e in pairs if isinstance(p, str) and p.strip() == str(e).strip())
        return Scored(right / len(pairs), len(pairs))
    if metric is EvaluationMetric.F1:
        return Scored(_macro_f1(pairs), len(pairs))
    if failed:
        return Scored(
            None, len(pairs), f"{len(failed)} of {len(pairs)} examples failed: {failed[0]}"
        )
    try:
        if metric is EvaluationMetric.MEAN_ABSOLUTE_ERROR:
            errors = [abs(_number(p) - _number(e)) for p, e in pairs]
            return Scored(sum(errors) / len(errors), len(pairs))
        similarities = [_cosine(_vector(p), _vector(e)) for p, e in pairs]
    except ValueError as exc:
        return Scored(None, len(pairs), str(exc))
    return Scored(sum(similarities) / len(similarities), len(pairs))


def mean_score(values: Sequence[float | Failed]) -> Scored:
    """A scorer's metric: the mean of its numbers, one per example; an example the canary failed
    to answer counts 0, as a wrong answer does."""
    if not values:
        return Scored(None, 0, "the dataset has no examples")
    failed = [v for v in values if isinstance(v, Failed)]
    if len(failed) == len(values):
        return Scored(None, len(values), f"every example failed: {failed[0]}")
    judged = [v for v in values if not isinstance(v, Failed)]
    return Scored(sum(judged) / len(values), len(values))


def scorer_failed(gate: Evaluation, why: str) -> EvaluationResult:
    """The verdict when the scorer could not judge: failed, with its own reason."""
    return EvaluationResult(
        passed=False, metric=gate.metric.value, threshold=gate.threshold, message=why,
        reason=SCORER_FAILED,
    )  # fmt: skip


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, float | int):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def _vector(value: object) -> list[float]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{str(value)[:60]} is not a vector of numbers")
    return [_number(v) for v in value]


def _same(prediction: object, expected: object) -> bool:
    if isinstance(prediction, float | int) and isinstance(expected, float | int):
        return math.isclose(float(prediction), float(expected), abs_tol=1e-9)
    return str(prediction) == str(expected)


def _label(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _macro_f1(pairs: Sequence[tuple[object, object]]) -> float:
    labels = {_label(e) for _, e in pairs}
    scores = []
    for label in sorted(labels):
        tp = sum(1 for p, e in pairs if _label(e) == label and _label(p) == label)
        fp = sum(1 for p, e in pairs if _label(e) != label and _label(p) == label)
        fn = sum(1 for p, e in pairs if _label(e) == label and _label(p) != label)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def _cosine(prediction: Sequence[float], expected: Sequence[float]) -> float:
    if len(prediction) != len(expected):
        raise ValueError(
            f"an embedding of {len(prediction)} dimensions against an expected {len(expected)}"
        )
    dot = sum(a * b for a, b in zip(prediction, expected, strict=True))
    norms = math.sqrt(sum(a * a for a in prediction)) * math.sqrt(sum(b * b for b in expected))
    return dot / norms if norms else 0.0


def judge(gate: Evaluation, canary: Scored, stable: Scored | None = None) -> EvaluationResult:
    """The verdict: the canary's value against the threshold, or against the stable revision's
    value moved by the threshold (``relativeToStable``)."""
    metric, threshold = gate.metric, gate.threshold
    lower = metric in LOWER_IS_BETTER
    result = EvaluationResult(
        passed=False, metric=metric.value, value=canary.value, threshold=threshold,
        stable_value=stable.value if stable is not None else None, examples=canary.examples,
    )  # fmt: skip
    if canary.value is None:
        return result.model_copy(update={"message": f"canary: {canary.problem}"})
    bound, against = threshold, "the threshold"
    if gate.relative_to_stable:
        if stable is None or stable.value is None:
            why = stable.problem if stable is not None else "no stable revision to compare with"
            return result.model_copy(update={"message": f"stable: {why}"})
        bound = stable.value + threshold if lower else stable.value - threshold
        against = f"the stable revision's {stable.value:.4g} {'+' if lower else '-'} {threshold:g}"
    passed = canary.value <= bound if lower else canary.value >= bound
    relation = ("at most" if lower else "at least") if passed else ("over" if lower else "under")
    message = (
        f"{gate.judged_by} {canary.value:.4g} over {canary.examples} examples is {relation} "
        f"{against} ({bound:.4g})"
    )
    return result.model_copy(update={"passed": passed, "message": message})
