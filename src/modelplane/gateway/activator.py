"""The replica for each proxied request, and the activator that holds requests while their
model has no ready replica (starting, or scaled to zero).

A held request waits, up to a bounded number per model and a deadline, while the control plane
is told of the demand; over either bound it is refused with 503 and ``Retry-After`` at once. The
proxy calls :meth:`Activator.choose` for every attempt, retries included.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from opentelemetry import trace

from modelplane.errors import ModelNotFoundError, ModelNotReadyError
from modelplane.gateway import paths
from modelplane.gateway.balancing import (
    Balancing,
    pick_by_prefix,
    pick_endpoint,
    pick_in_turn,
    pick_revision,
    prefer_holding,
)
from modelplane.gateway.routing import Endpoint, RevisionRoute, RoutingTable
from modelplane.gateway.scoring import EngineWeights, has_room, pick_by_engine
from modelplane.telemetry import names
from modelplane.telemetry.gateway_metrics import GatewayMetrics


class Activator:
    def __init__(
        self,
        table: RoutingTable,
        metrics: GatewayMetrics,
        hold_timeout: float,  # the longest a request is held
        max_held: int,  # held requests per model before refusing
        balancing: Balancing,
        rng: random.Random,
        on_demand: Callable[[str], None],
        traced: bool,
        weights: EngineWeights,
    ) -> None:
        self.table, self.metrics, self.balancing, self._rng = table, metrics, balancing, rng
        self.weights = weights
        self.hold_timeout, self.max_held = hold_timeout, max_held
        self.on_demand, self.traced = on_demand, traced
        self.held: dict[str, int] = {}  # requests held now, per model
        self._turns: dict[str, int] = {}  # round robin, per revision

    async def choose(
        self, target: paths.ModelPath, tried: set[str], avoid: str | None = None
    ) -> Endpoint:
        """A replica for the request, holding it while the model has none ready; ``avoid``: a
        revision to leave out if the model has another (a canary that just failed)."""
        deadline = time.monotonic() + self.hold_timeout
        holding = False
        held_since = 0.0
        try:
            while True:
                endpoint = self._pick(target, self._revision(target, avoid), tried)
                if endpoint is not None:
                    if holding and self.traced:
                        waited = time.monotonic() - held_since
                        trace.get_current_span().set_attribute(names.ATTR_HELD_SECONDS, waited)
                    return endpoint
                if tried:  # a retry with every replica tried: no point holding
                    raise ModelNotReadyError(f"no other replica of {target.key!r} to retry on")
                if not holding:
                    holding, held_since = self._hold(target.key), time.monotonic()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ModelNotReadyError(
                        f"no ready replica of {target.key!r} within {self.hold_timeout:.0f}s"
                    )
                self.on_demand(target.key)
                await self.table.wait_changed(min(remaining, 1.0))
        finally:
            if holding:
                self.held[target.key] -= 1
                self.metrics.held.labels(target.key).set(self.held[target.key])

    def has_room(self, endpoint: Endpoint) -> bool:
        """Whether ``endpoint`` takes another request now without it waiting there, by what its
        engine last reported."""
        return has_room(endpoint, time.monotonic(), self.weights)

    def _revision(self, target: paths.ModelPath, avoid: str | None) -> RevisionRoute:
        route = self.table.lookup(target.key)
        if route is None:
            raise ModelNotFoundError(f"model {target.key!r} is not served by this gateway")
        if target.version is not None:
            named = route.revision(target.version)
            if named is None:
                raise ModelNotFoundError(f"model {target.key!r} has no revision {target.version!r}")
            return named
        others = [r for r in route.revisions if r.name != avoid]
        revision = pick_revision(others or route.revisions, self._rng)
        if revision is None:
            raise ModelNotReadyError(f"model {target.key!r} has no revision taking traffic")
        return revision

    def _pick(
        self, target: paths.ModelPath, revision: RevisionRoute, tried: set[str]
    ) -> Endpoint | None:
        now, balancing, endpoints = time.monotonic(), self.balancing, revision.endpoints
        if target.adapter is not None:
            endpoints = prefer_holding(endpoints, target.adapter, now, tried)
        if target.action != paths.OPENAI or balancing is Balancing.LEAST_OUTSTANDING:
            return pick_endpoint(endpoints, now, self._rng, tried)
        if balancing is Balancing.ROUND_ROBIN:
            turn = self._turns[revision.name] = self._turns.get(revision.name, -1) + 1
            return pick_in_turn(endpoints, now, turn, tried)
        if balancing is Balancing.ENGINE:
            chosen = pick_by_engine(
                endpoints,
                now,
                self._rng,
                target.blocks,
                target.prefix,
                self.weights,
                tried,
            )
            if chosen is not None:
                chosen.engine.hold(target.blocks)  # where the prompt's cache will be
            return chosen
        if target.prefix is None:  # nothing worth caching: by load alone
            return pick_endpoint(endpoints, now, self._rng, tried)
        return pick_by_prefix(endpoints, now, target.prefix, tried)

    def _hold(self, key: str) -> bool:
        if self.held.get(key, 0) >= self.max_held:
            raise ModelNotReadyError(f"too many requests waiting for {key!r} to start")
        self.held[key] = self.held.get(key, 0) + 1
        self.metrics.held.labels(key).set(self.held[key])
        self.on_demand(key)
        return True
