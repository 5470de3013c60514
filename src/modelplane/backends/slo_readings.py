"""The I/O before ``control.planning.plan`` judges a Model's SLO, as both backends take it: its
requests counted over each window the objective needs, from the backend's source.

Read at most every ``REFRESH_SECONDS`` per Model, and the same reading given in between: the
numbers on status move at that pace rather than with every request, so a Model under steady
traffic is not rewritten on every pass. A source that cannot answer leaves status as it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from modelplane.api import SLO, Model
from modelplane.control.slo import SLOReading, SLOSource, windows_for
from modelplane.errors import MetricsUnavailableError

log = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0


class SLOReadings:
    def __init__(
        self,
        source: SLOSource | None,
        missing: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``missing``: what status says when there is no source at all."""
        self.source, self.missing, self._clock = source, missing, clock
        # By Model: when read, for which objective, and what was found.
        self._last: dict[str, tuple[float, SLO, SLOReading | None]] = {}

    def due(self, key: str) -> bool:
        last = self._last.get(key)
        return last is None or self._clock() - last[0] >= REFRESH_SECONDS

    async def observe(self, model: Model, now: datetime) -> SLOReading | None:
        slo, key = model.spec.slo, model.key
        if slo is None:
            self._last.pop(key, None)
            return None
        if self.source is None:
            return SLOReading(unavailable=self.missing)
        last = self._last.get(key)
        if last is not None and last[1] == slo and not self.due(key):
            return last[2]
        latency = slo.latency_p99_ms
        try:
            found: SLOReading | None = await self.source.counts(key, windows_for(slo), latency, now)
        except MetricsUnavailableError as exc:
            log.warning("the SLO of %s is not measured this time: %s", key, exc)
            found = None
        self._last[key] = (self._clock(), slo, found)
        return found

    def forget(self, key: str) -> None:
        self._last.pop(key, None)
        if self.source is not None:
            self.source.forget(key)
