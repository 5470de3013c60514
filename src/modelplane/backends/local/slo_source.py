"""An SLO's counts from the embedded gateway's own (what its clients saw, since it started):
the source of ``modelplane up`` without Prometheus. Windows longer than the platform has been up
are counted over what there is, and status says which."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from modelplane.api.counters import RequestCounts
from modelplane.control.slo import SLOReading
from modelplane.control.slo_history import CountsHistory

SOURCE = "gateway (counted since the platform started)"


class GatewaySLOSource:
    def __init__(self, served: Callable[[str], RequestCounts], started: datetime) -> None:
        self._served, self._started = served, started
        self._history: dict[str, CountsHistory] = {}

    async def counts(
        self, model: str, windows: Sequence[timedelta], latency_ms: float | None, now: datetime
    ) -> SLOReading:
        history = self._history.setdefault(model, CountsHistory(self._started))
        return history.reading(now, self._served(model), windows, latency_ms, SOURCE)

    def forget(self, model: str) -> None:
        self._history.pop(model, None)
