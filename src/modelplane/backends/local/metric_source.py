"""Analysis windows from the embedded gateway's own per-revision counters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from modelplane.control.analysis import Counts, History, Window
from modelplane.gateway.stats import Reading


class GatewayMetricSource:
    def __init__(self, reading: Callable[[str, str], Reading]) -> None:
        self._reading = reading
        self._history: dict[tuple[str, str], History] = {}

    async def windows(
        self, model: str, revisions: Sequence[str], since: datetime, now: datetime
    ) -> dict[str, Window]:
        return {
            revision: self._history.setdefault((model, revision), History()).window(
                since, now, Counts(*self._reading(model, revision))
            )
            for revision in revisions
        }

    def forget(self, model: str) -> None:
        for key in [k for k in self._history if k[0] == model]:
            del self._history[key]
