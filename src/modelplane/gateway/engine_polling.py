"""Keeping each replica's engine state fresh for engine-aware balancing.

A replica reports its engine's load on every chat and completion answer
(``api/engine_load.py``); :func:`observe` takes it from the answer's head as
:mod:`~modelplane.gateway.attempts` reads it, so a busy replica is known at every answer at no
cost. An idle one, or one whose only requests are long streams, says nothing for a while: the
poller asks ``GET /engine/load`` of every replica of an OpenAI API model not heard from within
``POLL_SECONDS``, so that no state the scoring reads is older than about that. The gateway runs
the poller only under engine-aware balancing, from its start to its close.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from modelplane.api.engine_load import HEADER, LOAD_PATH, decode
from modelplane.gateway.routing import Endpoint, RoutingTable
from modelplane.gateway.upstream import UpstreamError, UpstreamPool

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # well within the two seconds after which a state is stale


def observe(endpoint: Endpoint, headers: Mapping[str, str]) -> None:
    """Note the load a replica's answer reported, if it did (and sensibly)."""
    value = headers.get(HEADER)
    if value is None:
        return
    try:
        endpoint.engine.note(decode(value), time.monotonic(), endpoint.outstanding)
    except ValueError as exc:  # a replica of another version: balanced as if silent
        log.debug("replica %s: %s", endpoint.id, exc)


class EnginePolling:
    def __init__(
        self,
        table: RoutingTable,
        upstream: UpstreamPool,
        interval: float = POLL_SECONDS,
        on_polled: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_polled``: told after each round of answers (room may have freed)."""
        self.table, self.upstream, self.interval = table, upstream, interval
        self.on_polled = on_polled

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            await self.poll(time.monotonic())

    async def poll(self, now: float) -> None:
        """Ask every replica not heard from since ``interval`` before ``now``."""
        due = [
            endpoint
            for route in self.table.routes()
            if route.openai
            for revision in route.revisions
            for endpoint in revision.endpoints
            if now - endpoint.engine.seen >= self.interval
        ]
        if due:
            await asyncio.gather(*(self._ask(endpoint) for endpoint in due))
            self.on_polled()

    async def _ask(self, endpoint: Endpoint) -> None:
        try:
            reply = await asyncio.wait_for(
                self.upstream.request(endpoint.url, "GET", LOAD_PATH, {}, b""), self.interval * 2
            )
        except (UpstreamError, TimeoutError):
            return  # the replica's own requests decide whether it is ejected
        if reply.status == 200:
            observe(endpoint, reply.headers)
