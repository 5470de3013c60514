"""Analysis windows from the embedded gateway's own per-revision counters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from modelplane.api.counters import RevisionCounts
from modelplane.control.analysis import History, Window


class GatewayMetricSource:
    def __init__(self, reading: Callable[[str, str], RevisionCounts]) -> None:
        self._reading = reading
        self._history: dict[tuple[str, str], History] = {}

    async def windows(
        self, model: str, revisions: Sequence[str], since: datetime, now: datetime
    ) -> dict[str, Window]:
        return {
            revision: self._history.setdefault((model, revision), History()).window(
                since, now, self._reading(model, revision)
            )
            for revision in revisions
        }

    def forget(self, model: str) -> None:
        for key in [k for k in self._history if k[0] == model]:
            del self._history[key]
