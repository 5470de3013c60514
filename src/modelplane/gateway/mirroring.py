"""Shadow traffic: a share of the requests another revision answered, sent again to the shadow
revision off the client's path, the two answers compared by the model's task.

The proxy offers every answered inference (v2, and OpenAI API requests answered whole); the
disagreement scores feed the shadow revision's analysis counters (through ``compare``), which a
rollout reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable

from opentelemetry import trace

from modelplane.gateway import paths
from modelplane.gateway.balancing import pick_endpoint
from modelplane.gateway.routing import RoutingTable, Shadow
from modelplane.gateway.shadowing import compare
from modelplane.gateway.upstream import UpstreamError, UpstreamPool
from modelplane.telemetry import names, tracing

MAX_MIRRORS = 64  # shadow requests in flight at once; beyond, mirroring skips a request


class Mirroring:
    def __init__(
        self,
        table: RoutingTable,
        upstream: UpstreamPool,
        rng: random.Random,
        tracer: trace.Tracer | None,
        compare: Callable[[str, str, float, str], None],  # model, revision, score, measure
    ) -> None:
        self.table, self._upstream, self._rng, self._tracer = table, upstream, rng, tracer
        self._compare = compare
        self._mirrors: set[asyncio.Task[None]] = set()

    def offer(
        self, target: paths.ModelPath, served_by: str, method: str, body: bytes, answer: bytes
    ) -> None:
        """Mirror a share of answered requests to the shadow revision, off the client's path."""
        route = self.table.lookup(target.key)
        shadow = route.shadow if route else None
        if shadow is None or served_by == shadow.revision or len(self._mirrors) >= MAX_MIRRORS:
            return
        if self._rng.random() * 100 >= shadow.percent:
            return
        mirror = asyncio.get_running_loop().create_task(
            self._mirror(target, shadow, method, body, answer)
        )
        self._mirrors.add(mirror)
        mirror.add_done_callback(self._mirrors.discard)

    def cancel(self) -> None:
        for mirror in list(self._mirrors):
            mirror.cancel()

    async def _mirror(
        self, target: paths.ModelPath, shadow: Shadow, method: str, body: bytes, answer: bytes
    ) -> None:
        route = self.table.lookup(target.key)
        revision = route.revision(shadow.revision) if route else None
        endpoint = (
            pick_endpoint(revision.endpoints, time.monotonic(), self._rng) if revision else None
        )
        if endpoint is None:
            return
        headers = {"content-type": "application/json"}
        with contextlib.ExitStack() as spans:
            if self._tracer is not None and tracing.recording():
                attributes = {
                    names.ATTR_REVISION: shadow.revision,
                    names.ATTR_REPLICA: endpoint.id,
                    names.ATTR_SHADOW: True,
                }
                spans.enter_context(
                    tracing.client_span(self._tracer, method, endpoint.url, headers, attributes)
                )
            try:
                reply = await self._upstream.request(
                    endpoint.url, method, target.upstream(), headers, body
                )
            except (UpstreamError, TimeoutError):
                return  # a failing canary shows in its own error rate, not here
        if reply.status == 200:
            found = compare(target.path, body, shadow.task, answer, reply.body)
            if found is not None:
                self._compare(target.key, shadow.revision, *found)
