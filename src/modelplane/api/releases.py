"""What each revision records of its own fate (release milestones) and the SLO breaches that
began while it served (incidents), as a store keeps them and ``control.releases`` reads them: the
raw history that release figures are computed from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Milestone(StrEnum):
    COMMITTED = "committed"  # the commit that carried the change (from the Model's annotation)
    TRAFFIC = "traffic"  # first took a share of the traffic
    PROMOTED = "promoted"  # became the stable revision: all traffic
    ROLLED_BACK = "rolledBack"  # all traffic back to the stable one; reason says why
    # Released while the Model's error budget was spent; reason is the override's.
    FREEZE_OVERRIDDEN = "freezeOverridden"


@dataclass(frozen=True)
class Mark:
    """One milestone of one revision; recorded once (the first time wins)."""

    revision: str
    milestone: Milestone
    at: datetime
    reason: str = ""


@dataclass(frozen=True)
class Incident:
    """A breach of a Model's SLO: from its ``SLOBreached`` condition turning True (``started``,
    while ``revision`` was the stable one) to its turning False again (``restored``; None
    while it lasts). A Model has at most one open incident; each breach is its own."""

    namespace: str
    model: str
    revision: str
    started: datetime
    restored: datetime | None = None
    reason: str = ""  # what the condition said at the start: ErrorBudgetSpent, …Burning


@dataclass(frozen=True)
class RevisionHistory:
    """One revision as the store keeps it: identity, birth and milestones."""

    namespace: str
    model: str
    name: str
    number: int
    digest: str
    created: datetime
    marks: tuple[Mark, ...] = ()
    incidents: tuple[Incident, ...] = ()  # those that began while it was stable

    def at(self, milestone: Milestone) -> Mark | None:
        return next((m for m in self.marks if m.milestone is milestone), None)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
PERIOD_MAX = timedelta(days=3660)


def parse_period(text: str) -> timedelta:
    """A period as people write one: ``90m``, ``12h``, ``30d``, ``2w``."""
    number, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not number.isdigit() or int(number) == 0:
        raise ValueError(
            f"period {text!r} is not a positive whole number followed by one of "
            f"{', '.join(_UNITS)} (e.g. 30d, 12h)"
        )
    # Longer than anyone keeps history for: the history there is, not an error.
    seconds = min(int(number) * _UNITS[unit], int(PERIOD_MAX.total_seconds()))
    return timedelta(seconds=seconds)
