"""The analysis of generative canaries: time to first token and per output token, each against
its threshold and the stable revision, instead of whole-answer latency."""

from __future__ import annotations

from modelplane.api import Analysis
from modelplane.api.counters import RevisionCounts
from modelplane.control.analysis import Window, analyse, window

ANALYSIS = Analysis(min_requests=10, max_time_to_first_token_p99_ms=500)
STABLE = Window(requests=100, p99_ms=4000.0, first_token_p99_ms=40.0, per_token_p99_ms=10.0)


def names(canary: Window, generative: bool = True) -> dict[str, bool]:
    verdict = analyse(ANALYSIS, canary, STABLE, generative)
    return {m.name: m.passed for m in verdict.result.metrics}


def test_a_slow_first_token_fails_and_whole_answer_latency_judges_no_generation() -> None:
    slow = Window(requests=50, p99_ms=9000.0, first_token_p99_ms=300.0, per_token_p99_ms=11.0)
    judged = names(slow)
    assert judged["timeToFirstTokenP99Ms"] is True  # within 500
    assert judged["timeToFirstTokenP99MsVsStable"] is False  # beyond 2 x 40 + 10
    assert judged["timePerOutputTokenP99MsVsStable"] is True
    assert "latencyP99Ms" not in judged  # 9 s for a long answer says nothing of the revision
    # The same numbers for a model that does not generate: judged on whole answers.
    assert names(slow, generative=False) == {
        "errorRate": True, "errorRateVsStable": True,
        "latencyP99Ms": False, "latencyP99MsVsStable": False,
    }  # fmt: skip


def test_streams_and_whole_answers_fill_the_token_histograms_of_a_window() -> None:
    bounds = (10.0, 100.0)
    before = RevisionCounts(5, 0, bounds, (5, 0, 0), first_token_buckets=(5, 0, 0),
                            per_token_buckets=(5, 0, 0))  # fmt: skip
    after = RevisionCounts(25, 0, bounds, (5, 20, 0), first_token_buckets=(5, 0, 20),
                           per_token_buckets=(25, 0, 0))  # fmt: skip
    seen = window(before, after)
    assert seen.first_token_p99_ms is not None
    assert seen.first_token_p99_ms > 100.0  # every first token of the window was past 100 ms
    assert seen.per_token_p99_ms is not None
    assert seen.per_token_p99_ms <= 10.0
    # No generation measured (a model that does not generate): nothing to judge on.
    plain = window(None, RevisionCounts(3, 0, bounds, (3, 0, 0)))
    assert (plain.first_token_p99_ms, plain.per_token_p99_ms) == (None, None)
