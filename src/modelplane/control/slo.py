"""Service level objectives: error budgets, burn rates and the alerts they raise, and the
release freeze a spent budget imposes. Pure, with the counts and time passed in; ``planning``
calls it on every pass of both backends.

The alerts are the multiwindow, multi-burn-rate alerts of the Google SRE workbook ("Alerting on
SLOs"): for a 30-day objective, a page when the last hour and the last 5 minutes both burn the
budget over 14.4 times as fast as the window allows (2% of it in an hour), or the last 6 hours
and 30 minutes over 6 times (5% in 6 hours); a ticket when the last 3 days and 6 hours burn it
faster than it lasts. The short window makes an alert stop soon after the burning does. Other
objective windows scale the alert windows with them, so the factors keep their meaning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from modelplane.api import (
    FREEZE_OVERRIDE_ANNOTATION,
    SLO,
    BurnRate,
    Condition,
    ConditionStatus,
    Model,
    SLOStatus,
)
from modelplane.control.conditions import condition, set_condition
from modelplane.control.revisions import RevisionRef
from modelplane.control.rollout import Event

SLO_BREACHED = "SLOBreached"
BUDGET_BURNING = "ErrorBudgetBurning"
BUDGET_SPENT = "ErrorBudgetSpent"
RELEASE_FROZEN = "ReleaseFrozen"
FREEZE_OVERRIDDEN = "FreezeOverridden"
# latencyP99Ms: 99% of requests within it, so the latency budget is the other 1%.
LATENCY_OBJECTIVE = 0.99
REFERENCE_WINDOW = timedelta(days=30)
# Alert windows scaled below this could not be measured by scraping every few seconds.
MIN_ALERT_WINDOW = timedelta(seconds=10)


class Severity(StrEnum):
    PAGE = "page"
    TICKET = "ticket"


@dataclass(frozen=True)
class BurnAlert:
    """Fires while both windows burn the budget more than ``factor`` times as fast as the
    objective's window allows."""

    severity: Severity
    factor: float
    long: timedelta
    short: timedelta

    def describe(self) -> str:
        return (
            f"{self.severity}: {self.factor:g}x over {period(self.long)} and {period(self.short)}"
        )


WORKBOOK_ALERTS = (
    BurnAlert(Severity.PAGE, 14.4, timedelta(hours=1), timedelta(minutes=5)),
    BurnAlert(Severity.PAGE, 6.0, timedelta(hours=6), timedelta(minutes=30)),
    BurnAlert(Severity.TICKET, 1.0, timedelta(days=3), timedelta(hours=6)),
)


def alerts_for(window: timedelta) -> tuple[BurnAlert, ...]:
    """The workbook's alerts for an objective over ``window``, their windows scaled from 30 days."""
    scale = window / REFERENCE_WINDOW

    def scaled(span: timedelta) -> timedelta:
        return max(MIN_ALERT_WINDOW, timedelta(seconds=round(span.total_seconds() * scale)))

    return tuple(
        BurnAlert(a.severity, a.factor, scaled(a.long), scaled(a.short)) for a in WORKBOOK_ALERTS
    )


def windows_for(slo: SLO) -> tuple[timedelta, ...]:
    """Every window the objective needs counted, shortest first: its alerts' and its own."""
    spans = {slo.period}
    for alert in alerts_for(slo.period):
        spans |= {alert.long, alert.short}
    return tuple(sorted(spans))


def period(span: timedelta) -> str:
    """``span`` in the largest unit that divides it (``30d``, ``144m``, ``10s``), as Prometheus
    range selectors and the ``window`` field write it."""
    seconds = round(span.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Counts:
    """Requests over one window: all of them, the failed (5xx, or no answer), and those slower
    than the latency objective (None without one). Floats: Prometheus extrapolates."""

    total: float = 0.0
    bad: float = 0.0
    slow: float | None = None


def slower_than(bounds_ms: Sequence[float], counts: Sequence[float], threshold_ms: float) -> float:
    """How many of a histogram's observations (per bucket, upper bounds in milliseconds, the
    last bucket +Inf) took longer than ``threshold_ms``, spread evenly inside each bucket, as
    ``histogram_quantile`` assumes."""
    slow = 0.0
    for index, count in enumerate(counts):
        low = bounds_ms[index - 1] if index > 0 else 0.0
        high = bounds_ms[index] if index < len(bounds_ms) else float("inf")
        if low >= threshold_ms:
            slow += count
        elif high > threshold_ms and high != float("inf"):
            slow += count * (high - threshold_ms) / (high - low)
        elif high == float("inf"):
            slow += count  # beyond the last bound: none of it is known to be fast
    return slow


@dataclass(frozen=True)
class SLOReading:
    """What a backend counted of one Model, per window; ``uncovered``: windows longer than its
    counts reach back (counted over what there is); ``unavailable``: why nothing is counted."""

    counts: Mapping[timedelta, Counts] = field(default_factory=dict)
    source: str = ""
    uncovered: tuple[timedelta, ...] = ()
    unavailable: str = ""


class SLOSource(Protocol):
    """Where an objective's counts come from: Prometheus, or the embedded gateway's own."""

    async def counts(
        self, model: str, windows: Sequence[timedelta], latency_ms: float | None, now: datetime
    ) -> SLOReading:
        """``model``'s (``namespace/name``) requests over each window ending ``now``, with
        those slower than ``latency_ms`` where given."""
        ...

    def forget(self, model: str) -> None:
        """The model is gone: drop whatever is kept for it."""
        ...


def measure(slo: SLO, reading: SLOReading) -> SLOStatus:
    """The status of ``slo`` from what was counted: the window's availability and budget, and
    each alert window's burn rate."""
    budget = 1 - slo.availability
    over = reading.counts.get(slo.period, Counts())
    rates = []
    for span in windows_for(slo):
        found = reading.counts.get(span, Counts())
        if span != slo.period:
            rates.append(
                BurnRate(
                    window=period(span),
                    availability=_rounded(_burn(found.bad, found.total, budget)),
                    latency=_rounded(_burn(found.slow, found.total, 1 - LATENCY_OBJECTIVE)),
                )
            )
    status = SLOStatus(
        window=slo.window,
        requests=round(over.total),
        availability=_rounded(1 - over.bad / over.total, 6) if over.total else None,
        budget_remaining=_left(over.bad, over.total, budget),
        latency=_rounded(1 - over.slow / over.total, 6)
        if over.total and over.slow is not None
        else None,
        latency_budget_remaining=_left(over.slow, over.total, 1 - LATENCY_OBJECTIVE),
        burn_rates=rates,
        uncovered=[period(span) for span in reading.uncovered],
        source=reading.source,
    )
    status.alerts = [a.describe() for a in alerts_for(slo.period) if _fires(a, status)]
    return status


def _burn(bad: float | None, total: float, budget: float) -> float | None:
    return bad / total / budget if total and bad is not None else None


def _left(bad: float | None, total: float, budget: float) -> float | None:
    burned = _burn(bad, total, budget)
    return _rounded(1 - burned) if burned is not None else None


def _rounded(value: float | None, digits: int = 4) -> float | None:
    """Significant digits enough to judge by, few enough that a status is not rewritten for
    noise."""
    return float(f"{value:.{digits}g}") if value is not None else None


def _fires(alert: BurnAlert, status: SLOStatus) -> bool:
    rates = {r.window: r for r in status.burn_rates}
    long, short = rates.get(period(alert.long)), rates.get(period(alert.short))
    if long is None or short is None:
        return False
    return any(
        a is not None and b is not None and a > alert.factor and b > alert.factor
        for a, b in ((long.availability, short.availability), (long.latency, short.latency))
    )


def spent(status: SLOStatus | None) -> bool:
    """Whether the window's error budget (of availability, or of latency) is used up."""
    if status is None:
        return False
    left = (status.budget_remaining, status.latency_budget_remaining)
    return any(value is not None and value <= 0 for value in left)


def breach(slo: SLO, status: SLOStatus) -> tuple[bool, str, str]:
    """The ``SLOBreached`` condition: True while the budget is spent or a page fires."""
    pages = [a for a in status.alerts if a.startswith(Severity.PAGE.value)]
    burning = f"; burning: {', '.join(status.alerts)}" if status.alerts else ""
    if spent(status):
        message = f"the error budget over {slo.window} is spent: {_summary(slo, status)}"
        return True, BUDGET_SPENT, message + burning
    if pages:
        message = f"burning the error budget ({', '.join(pages)}): {_summary(slo, status)}"
        return True, BUDGET_BURNING, message
    if not status.requests:
        return False, "NoTraffic", f"no requests over {slo.window} to measure"
    return False, "WithinBudget", _summary(slo, status) + burning


def _summary(slo: SLO, status: SLOStatus) -> str:
    parts = [
        f"availability {status.availability:g} against {slo.availability:g} over "
        f"{status.requests} requests, {_share(status.budget_remaining)} of the budget left"
    ]
    if slo.latency_p99_ms is not None and status.latency is not None:
        parts.append(
            f"{status.latency:g} within {slo.latency_p99_ms:g} ms against "
            f"{LATENCY_OBJECTIVE:g}, {_share(status.latency_budget_remaining)} of its budget left"
        )
    if status.uncovered:
        parts.append(f"counted since the platform started, not over {', '.join(status.uncovered)}")
    return "; ".join(parts)


def _share(fraction: float | None) -> str:
    return f"{fraction:.0%}" if fraction is not None else "all"


def slo_conditions(
    slo: SLO | None,
    conditions: list[Condition],
    status: SLOStatus | None,
    unavailable: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """``conditions`` with ``SLOBreached`` as ``status`` says (kept as it was while nothing
    was measured this pass, dropped with the objective)."""
    if slo is None:
        return [c for c in conditions if c.type != SLO_BREACHED]
    if status is None:
        if condition(conditions, SLO_BREACHED) is not None:
            return conditions
        why = unavailable or "no requests counted yet"
        return set_condition(conditions, SLO_BREACHED, False, "NotMeasured", why, generation, now)
    return set_condition(conditions, SLO_BREACHED, *breach(slo, status), generation, now)


def breach_events(before: Sequence[Condition], after: Sequence[Condition]) -> list[Event]:
    """A breach said once when it begins, and once when it ends."""
    was, now = condition(list(before), SLO_BREACHED), condition(list(after), SLO_BREACHED)
    breached = now is not None and now.status is ConditionStatus.TRUE
    had = was is not None and was.status is ConditionStatus.TRUE
    if now is not None and breached and not had:
        return [Event("Warning", now.reason, now.message)]
    if had and now is not None and not breached:
        return [Event("Normal", "ErrorBudgetRecovered", now.message)]
    return []


@dataclass(frozen=True)
class Freeze:
    """What the freeze makes of a spec change that would make a new revision: ``held`` with
    why, or let through by an override (its reason), or not concerned."""

    held: str = ""
    override: str = ""


def freeze(
    model: Model, stored: Sequence[RevisionRef], new: RevisionRef, status: SLOStatus | None
) -> Freeze:
    """A new revision waits while the budget is spent under ``freeze: true``, unless it brings
    back an earlier revision's spec (a rollback restores, it does not risk) or the Model
    carries the override annotation."""
    slo = model.spec.slo
    if slo is None or not slo.freeze or not spent(status) or not stored:
        return Freeze()
    if any(r.digest == new.digest for r in stored):
        return Freeze()
    reason = model.metadata.annotations.get(FREEZE_OVERRIDE_ANNOTATION, "").strip()
    if reason:
        return Freeze(override=reason)
    serving = model.status.stable_revision or max(stored, key=lambda r: r.number).name
    assert status is not None  # spent() says so
    message = (
        f"release frozen: the error budget over {slo.window} is spent ({_summary(slo, status)}); "
        f"{serving} keeps serving and "
        f"the change waits until the budget recovers. A rollback to an earlier revision "
        f"(modelplane rollout undo) goes through; to release anyway, annotate the Model "
        f'{FREEZE_OVERRIDE_ANNOTATION}="<reason>"'
    )
    return Freeze(held=message)


def overridden(revision: str, window: str, reason: str) -> Event:
    message = f"{revision} released while the error budget over {window} is spent: {reason}"
    return Event("Normal", FREEZE_OVERRIDDEN, message)
