"""Error budgets, burn rates and the multiwindow alerts of the SRE workbook, from request counts
per window; and the windows themselves from cumulative counts read over fake time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelplane.api import SLO
from modelplane.api.counters import RequestCounts
from modelplane.control.slo import (
    Counts,
    SLOReading,
    alerts_for,
    breach,
    measure,
    period,
    slower_than,
    spent,
    windows_for,
)
from modelplane.control.slo_history import CountsHistory

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
H, M, D = timedelta(hours=1), timedelta(minutes=1), timedelta(days=1)


def reading(slo: SLO, ratios: dict[timedelta, float], total: float = 1000.0) -> SLOReading:
    """``total`` requests in every window the objective reads, failing at ``ratios`` (0 where
    not given)."""
    return SLOReading({w: Counts(total, total * ratios.get(w, 0.0)) for w in windows_for(slo)})


def test_the_workbook_alerts_for_30_days_and_scaled_for_shorter_windows() -> None:
    assert [(a.severity, a.factor, a.long, a.short) for a in alerts_for(30 * D)] == [
        ("page", 14.4, H, 5 * M),
        ("page", 6.0, 6 * H, 30 * M),
        ("ticket", 1.0, 3 * D, 6 * H),
    ]
    assert [(period(a.long), period(a.short)) for a in alerts_for(D)] == [
        ("2m", "10s"),
        ("12m", "1m"),
        ("144m", "12m"),
    ]
    # Never shorter than a scrape-based source can measure.
    assert min(a.short for a in alerts_for(H)) == timedelta(seconds=10)
    assert [period(w) for w in windows_for(SLO(window="30d"))] == [
        "5m", "30m", "1h", "6h", "3d", "30d",
    ]  # fmt: skip


def test_a_fast_burn_over_both_windows_pages_with_its_numbers() -> None:
    slo = SLO(availability=0.999)
    # 2% of requests failing: 20 times the 0.1% budget, over the last hour and 5 minutes.
    status = measure(slo, reading(slo, {H: 0.02, 5 * M: 0.02, 30 * D: 0.0005}))
    rates = {r.window: r.availability for r in status.burn_rates}
    assert rates["1h"] == pytest.approx(20)
    assert rates["5m"] == pytest.approx(20)
    assert rates["6h"] == 0
    assert status.alerts == ["page: 14.4x over 1h and 5m"]
    assert status.budget_remaining == pytest.approx(0.5)
    assert status.availability == pytest.approx(0.9995)
    breached, reason, message = breach(slo, status)
    assert (breached, reason) == (True, "ErrorBudgetBurning")
    assert "page: 14.4x over 1h and 5m" in message
    assert "availability 0.9995 against 0.999 over 1000 requests, 50% of the budget left" in (
        message
    )


def test_a_burn_that_stopped_pages_no_more_though_the_hour_still_shows_it() -> None:
    slo = SLO(availability=0.999)
    status = measure(slo, reading(slo, {H: 0.02, 5 * M: 0.0}))
    assert status.alerts == []
    assert breach(slo, status)[:2] == (False, "WithinBudget")


def test_a_slow_burn_opens_a_ticket_but_breaches_nothing() -> None:
    slo = SLO(availability=0.99)
    # 1.5% failing: 1.5 times the 1% budget over 3 days and 6 hours.
    status = measure(slo, reading(slo, {3 * D: 0.015, 6 * H: 0.015, 30 * D: 0.005}))
    assert status.alerts == ["ticket: 1x over 3d and 6h"]
    breached, reason, message = breach(slo, status)
    assert (breached, reason) == (False, "WithinBudget")
    assert "ticket: 1x over 3d and 6h" in message


def test_a_budget_spent_over_the_window_breaches_and_freezes() -> None:
    slo = SLO(availability=0.99, window="7d")
    status = measure(slo, reading(slo, {7 * D: 0.02}))
    assert status.budget_remaining == pytest.approx(-1.0)
    assert spent(status)
    breached, reason, message = breach(slo, status)
    assert (breached, reason) == (True, "ErrorBudgetSpent")
    assert message.startswith("the error budget over 7d is spent: availability 0.98")
    quiet = measure(slo, SLOReading({w: Counts() for w in windows_for(slo)}))
    assert not spent(quiet)
    assert breach(slo, quiet)[:2] == (False, "NoTraffic")


def test_slower_than_spreads_each_bucket_evenly() -> None:
    bounds = (10.0, 20.0, 40.0)
    counts = (5, 10, 4, 1)  # the last one beyond 40 ms
    assert slower_than(bounds, counts, 15.0) == pytest.approx(5 + 4 + 1)
    assert slower_than(bounds, counts, 40.0) == pytest.approx(1)
    assert slower_than(bounds, counts, 100.0) == pytest.approx(1)  # beyond: unknown, so slow
    assert slower_than(bounds, counts, 5.0) == pytest.approx(2.5 + 10 + 4 + 1)


def test_a_latency_objective_has_its_own_budget() -> None:
    slo = SLO(availability=0.999, latency_p99_ms=100, window="1d")
    counts = {w: Counts(1000, 0, 50) for w in windows_for(slo)}  # 5% slower than 100 ms
    status = measure(slo, SLOReading(counts))
    assert [r.latency for r in status.burn_rates] == [pytest.approx(5)] * 5
    assert status.latency == pytest.approx(0.95)
    assert status.latency_budget_remaining == pytest.approx(-4)
    assert status.budget_remaining == 1
    assert breach(slo, status)[1] == "ErrorBudgetSpent"
    assert "0.95 within 100 ms against 0.99" in breach(slo, status)[2]


def counts(requests: int, errors: int) -> RequestCounts:
    return RequestCounts(requests, errors, (100.0,), (requests, 0))


def test_windows_from_cumulative_counts_over_fake_time() -> None:
    started = NOW
    history = CountsHistory(started)
    windows = (timedelta(seconds=10), 2 * M)
    # One request every second, every other one failing, for five minutes.
    found = None
    for second in range(301):
        found = history.reading(
            started + timedelta(seconds=second), counts(second, second // 2), windows, None, "t"
        )
    assert found is not None
    assert found.counts[timedelta(seconds=10)] == Counts(10, 5, None)
    assert found.counts[2 * M].total == pytest.approx(120, rel=0.02)
    assert found.uncovered == ()
    # A window longer than the counts go back: counted since they began, and said so.
    longer = history.reading(started + timedelta(seconds=301), counts(301, 150), (H,), None, "t")
    assert longer.counts[H] == Counts(301, 150, None)
    assert longer.uncovered == (H,)


def test_readings_thin_with_age_so_a_month_costs_little() -> None:
    history = CountsHistory(NOW)
    windows = (timedelta(seconds=10), 30 * D)
    at, seen = NOW, 0
    while at < NOW + 31 * D:  # one request a second, read every two minutes
        at += 2 * M
        seen += 120
        found = history.reading(at, counts(seen, 0), windows, None, "t")
        assert len(history) < 1500
    assert found.counts[30 * D].total == pytest.approx(30 * 86_400, rel=0.02)
    assert found.counts[timedelta(seconds=10)].total == 120  # since the reading before
    assert found.uncovered == ()
