"""Comparing a canary's answer with the stable one: v2 answers by task, OpenAI API answers by
what fits them."""

from __future__ import annotations

import orjson
import pytest

from modelplane.api.counters import RevisionCounts
from modelplane.control.analysis import window
from modelplane.gateway.shadowing import COSINE, EXACT, compare, disagreement
from modelplane.gateway.shadowing import SAMPLED as SAMPLED_MEASURE


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


def chat(text: str, finish: str = "stop", tokens: int | None = None) -> bytes:
    usage = {"completion_tokens": tokens} if tokens is not None else {}
    choice = {"message": {"role": "assistant", "content": text}, "finish_reason": finish}
    return orjson.dumps({"choices": [choice], "usage": usage})


GREEDY = orjson.dumps({"model": "m", "messages": [], "temperature": 0, "seed": 3})
SAMPLED = orjson.dumps({"model": "m", "messages": [], "temperature": 0.8})


def test_openai_answers_are_compared_by_a_measure_that_fits_them() -> None:
    path = "/v1/chat/completions"
    assert compare(path, GREEDY, "chat", chat("the sky"), chat("the sky")) == (0.0, EXACT)
    assert compare(path, GREEDY, "chat", chat("the sky"), chat("the sea")) == (1.0, EXACT)
    # Sampled text differs anyway: how it stopped, and how long it went on.
    same_shape = compare(path, SAMPLED, "chat", chat("a b", tokens=10), chat("c d", tokens=10))
    assert same_shape == (0.0, SAMPLED_MEASURE)
    cut_short = compare(path, SAMPLED, "chat", chat("a", "stop", 10), chat("b", "length", 5))
    assert cut_short == (pytest.approx(0.5 + 0.5 * 0.5), SAMPLED_MEASURE)
    completion = orjson.dumps({"choices": [{"text": "once", "finish_reason": "stop"}]})
    assert compare("/v1/completions", GREEDY, "text-generation", completion, completion) == (
        0.0,
        EXACT,
    )
    embeddings = orjson.dumps({"data": [{"embedding": [1.0, 0.0]}, {"embedding": [0.0, 1.0]}]})
    turned = orjson.dumps({"data": [{"embedding": [1.0, 0.0]}, {"embedding": [1.0, 0.0]}]})
    assert compare("/v1/embeddings", b"{}", "embedding", embeddings, turned) == (0.5, COSINE)
    assert compare(path, GREEDY, "chat", b"not json", chat("x")) is None
    # v2 answers: by task, named.
    assert compare("", b"{}", "classification", answer([1, 2]), answer([1, 1])) == (
        0.5,
        "label mismatch",
    )
