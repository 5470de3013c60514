"""Analysis windows from timed readings of cumulative counters (the embedded metric source)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelplane.api.counters import RevisionCounts
from modelplane.control.analysis import History

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BOUNDS = (10.0, 100.0)


def counts(requests: int, errors: int = 0) -> RevisionCounts:
    return RevisionCounts(requests, errors, BOUNDS, (requests, 0, 0))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_step_counts_from_the_reading_taken_when_it_began() -> None:
    history = History()
    history.window(at(0), at(0), counts(100))  # waiting for the canary: a reading each pass
    history.window(at(0), at(1), counts(150))  # the step begins at the pass at t=1
    window = history.window(at(1), at(2), counts(170, errors=5))
    assert (window.requests, window.errors) == (20, 5)
    assert history.window(at(1), at(3), counts(200, errors=5)).requests == 50


def test_the_next_step_starts_afresh() -> None:
    history = History()
    history.window(at(0), at(0), counts(0))
    history.window(at(0), at(5), counts(40))  # step 2 begins at t=5
    assert history.window(at(5), at(6), counts(45)).requests == 5


def test_without_an_earlier_reading_the_first_one_stands_in() -> None:
    history = History()  # e.g. just after a restart, counters and readings start at zero
    assert history.window(at(0), at(10), counts(7)).requests == 0
    assert history.window(at(0), at(11), counts(9)).requests == 2
