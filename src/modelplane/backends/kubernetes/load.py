"""Demand on a cluster: gateways send their load to the operator, which scales on it.

Each gateway posts a ``LoadReport`` every second, and at once when it starts holding requests
for a model with no ready replica, so a cold start waits for no poll. The operator keeps the
latest report of each gateway and sums them; a gateway silent for ``STALE_SECONDS`` no longer
counts. With no gateway reporting at all, the operator cannot tell idle from unknown, so it
scales nothing to zero (see ``LoadBoard.known``). The reports also carry the LoRA adapters the
gateway saw fail on a model's pods, which make the Model's ``AdaptersReady`` condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from modelplane.api.load import LoadReport

log = logging.getLogger(__name__)

REPORT_EVERY = 1.0
MIN_GAP = 0.1  # between reports, however often held requests poke
STALE_SECONDS = 10.0
MAX_REPORT_BYTES = 8 * 1024 * 1024
LOAD_PATH = "/v1/load"


@dataclass
class _Received:
    report: LoadReport
    at: float  # time.monotonic() on receipt


@dataclass
class LoadBoard:
    """The operator's side: the latest report of every gateway."""

    on_demand: Callable[[str], None] = lambda key: None  # a model with held requests
    on_adapters: Callable[[str], None] = lambda key: None  # a model whose adapters' failures moved
    clock: Callable[[], float] = time.monotonic
    _reports: dict[str, _Received] = field(default_factory=dict)

    def record(self, report: LoadReport) -> None:
        before = self._reports.get(report.gateway)
        self._reports[report.gateway] = _Received(report, self.clock())
        for key, load in report.models.items():
            if load.held:
                self.on_demand(key)
        for key in _failures_moved(before.report if before else None, report):
            self.on_adapters(key)

    def _fresh(self) -> list[_Received]:
        now = self.clock()
        for name in [n for n, r in self._reports.items() if now - r.at > STALE_SECONDS]:
            del self._reports[name]
        return list(self._reports.values())

    def known(self) -> bool:
        """Whether any gateway reports: without one, no demand is not the same as idle."""
        return bool(self._fresh())

    def in_flight(self, key: str, revision: str) -> int:
        found = (r.report.models.get(key) for r in self._fresh())
        return sum(load.in_flight.get(revision, 0) for load in found if load is not None)

    def held(self, key: str) -> int:
        return sum(load.held for r in self._fresh() if (load := r.report.models.get(key)))

    def idle_seconds(self, key: str) -> float | None:
        """Seconds since any gateway last saw a request for ``key``; None if none has."""
        now = self.clock()
        found = [
            load.idle_seconds + (now - r.at)
            for r in self._fresh()
            if (load := r.report.models.get(key)) is not None and load.idle_seconds is not None
        ]
        return min(found) if found else None

    def failed_adapters(self, key: str) -> dict[str, str]:
        """Why ``key``'s adapters failed, as any gateway saw; gateways in name order, so that
        the same reports always give the same message."""
        found: dict[str, str] = {}
        for received in sorted(self._fresh(), key=lambda r: r.report.gateway):
            load = received.report.models.get(key)
            if load is not None:
                found.update(load.failed_adapters)
        return found

    async def receive(self, request: Request) -> Response:
        """``POST /v1/load``: a gateway's report."""
        declared = request.headers.get("content-length", "")
        if not declared.isdigit() or int(declared) > MAX_REPORT_BYTES:
            return JSONResponse(
                {"message": f"a load report needs a Content-Length of at most {MAX_REPORT_BYTES}"},
                status_code=413 if declared.isdigit() else 411,
            )
        body = await request.body()
        if len(body) > MAX_REPORT_BYTES:
            return JSONResponse({"message": "load report too large"}, status_code=413)
        try:
            self.record(LoadReport.model_validate_json(body))
        except ValidationError as exc:
            return JSONResponse({"message": f"invalid load report: {exc}"}, status_code=422)
        return Response(status_code=204)


def _failures_moved(before: LoadReport | None, after: LoadReport) -> set[str]:
    """The models whose failed adapters differ between a gateway's two reports."""
    was = {key: load.failed_adapters for key, load in (before.models if before else {}).items()}
    now = {key: load.failed_adapters for key, load in after.models.items()}
    return {key for key in was.keys() | now.keys() if was.get(key, {}) != now.get(key, {})}


@dataclass
class LoadReporter:
    """The gateway's side: post the load to the operator every second, and on demand."""

    load: Callable[[str], LoadReport]  # this gateway's load, by its name
    url: str  # the operator's load endpoint
    name: str  # this gateway, as the operator tells gateways apart
    _poked: asyncio.Event = field(default_factory=asyncio.Event)

    def poke(self) -> None:
        self._poked.set()

    async def run(self) -> None:
        failing = False
        async with httpx.AsyncClient(timeout=REPORT_EVERY * 2) as client:
            while True:
                self._poked.clear()
                report = self.load(self.name)
                # Defaults left out: an operator older than a field (failedAdapters) still
                # takes the report while gateways are upgraded first.
                sent = report.model_dump_json(by_alias=True, exclude_defaults=True)
                try:
                    reply = await client.post(
                        self.url,
                        content=sent,
                        headers={"content-type": "application/json"},
                    )
                    reply.raise_for_status()
                    if failing:
                        log.info("load reports reach %s again", self.url)
                    failing = False
                except httpx.HTTPError as exc:
                    if not failing:  # once per outage, not once a second
                        log.warning("load report to %s failed: %s", self.url, exc)
                    failing = True
                await asyncio.sleep(MIN_GAP)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poked.wait(), REPORT_EVERY - MIN_GAP)
