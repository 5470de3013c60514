"""Comparing a canary's answer with the stable one, by task."""

from __future__ import annotations

import orjson
import pytest

from modelplane.api.counters import RevisionCounts
from modelplane.control.analysis import window
from modelplane.gateway.shadowing import disagreement


def answer(data: list[object]) -> bytes:
    return orjson.dumps(
        {"outputs": [{"name": "y", "datatype": "FP32", "shape": [len(data)], "data": data}]}
    )


@pytest.mark.parametrize(
    ("task", "stable", "canary", "expected"),
    [
        ("classification", [0, 1, 2, 2], [0, 1, 2, 2], 0.0),
        ("classification", [0, 1, 2, 2], [0, 1, 1, 0], 0.5),
        ("regression", [10.0, 20.0], [11.0, 20.0], 0.05),
        ("regression", [1.0], [100.0], 1.0),  # capped at 1
        ("embedding", [1.0, 0.0], [1.0, 0.0], 0.0),
        ("embedding", [1.0, 0.0], [0.0, 1.0], 1.0),
    ],
)
def test_disagreement_by_task(
    task: str, stable: list[object], canary: list[object], expected: float
) -> None:
    assert disagreement(task, answer(stable), answer(canary)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("stable", "canary"),
    [
        (answer([1, 2]), answer([1])),
        (b"not json", answer([1])),
        (answer([]), answer([])),
        (b"{}", b"{}"),
    ],
)
def test_incomparable_answers_are_skipped(stable: bytes, canary: bytes) -> None:
    assert disagreement("classification", stable, canary) is None


def test_window_averages_disagreement_over_comparisons() -> None:
    bounds = (1.0, 10.0)
    before = RevisionCounts(10, 0, bounds, (5, 5, 0), compared=4, disagreement=0.4)
    after = RevisionCounts(30, 1, bounds, (10, 15, 5), compared=14, disagreement=2.4)
    seen = window(before, after)
    assert (seen.requests, seen.errors, seen.compared) == (20, 1, 10)
    assert seen.disagreement == pytest.approx(0.2)
    assert seen.p99_ms is not None
    assert seen.p99_ms > 10.0  # a fifth of the window was beyond the last bound
