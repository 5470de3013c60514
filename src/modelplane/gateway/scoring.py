"""Engine-aware balancing: each replica of the chosen revision scored on what its engine holds
and how busy it is, from the state its engine reports (``engine_state.py``).

A replica's score is ``prefix * hit - queue * queued / slots - kv * kv_usage``: ``hit`` the share
of the prompt's blocks it likely holds (read from its cache instead of computed), ``queued`` the
requests it has (this gateway's in flight there, and the others' as it last reported them),
``kv_usage`` the share of its KV cache in use. The weights are the gateway's
options. Load is bounded: a replica whose waiting list would grow past ``max_waiting`` is passed
over while another has room, however much of the prompt it holds.

When a replica's report is older than ``stale_after`` (its reports stopped: the replica or the
network is in trouble), the revision is balanced by least outstanding requests until reports are
fresh again. A replica that has never reported (an engine's own server, which has no report to
give) is balanced as the ``prefix`` policy does, by consistent hashing of the prompt's start.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from modelplane.api.engine_load import EngineLoad
from modelplane.gateway.balancing import healthy, pick_by_prefix, pick_endpoint, ring_order
from modelplane.gateway.routing import Endpoint

STALE_SECONDS = 2.0


@dataclass(frozen=True)
class EngineWeights:
    prefix: float = 1.0  # per share of the prompt held
    queue: float = 1.0  # per request queued, per slot
    kv: float = 0.25  # per share of the KV cache in use
    max_waiting: int = 0  # requests a replica may be sent to wait while another has room
    stale_after: float = STALE_SECONDS

    @classmethod
    def parse(cls, text: str) -> EngineWeights:
        """``prefix=1,queue=0.5,kv=0.25,max-waiting=1`` (any of them; the rest default)."""
        given: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, _, value = item.partition("=")
            name = key.strip().replace("-", "_")
            if name not in WEIGHT_NAMES:
                raise ValueError(f"{key.strip()!r} is not one of {', '.join(WEIGHT_NAMES)}")
            try:
                given[name] = float(value)
            except ValueError:
                raise ValueError(f"{key.strip()}={value!r} is not a number") from None
            if given[name] < 0:
                raise ValueError(f"{key.strip()}={value} must be 0 or more")
        defaults = cls()
        return cls(
            prefix=given.get("prefix", defaults.prefix),
            queue=given.get("queue", defaults.queue),
            kv=given.get("kv", defaults.kv),
            max_waiting=int(given.get("max_waiting", defaults.max_waiting)),
        )


WEIGHT_NAMES = ("prefix", "queue", "kv", "max_waiting")


@dataclass(frozen=True, slots=True)
class Scored:
    endpoint: Endpoint
    score: float
    room: bool  # a request sent there waits at most max_waiting behind the others


def score(
    endpoint: Endpoint, load: EngineLoad, blocks: Sequence[bytes], weights: EngineWeights
) -> Scored:
    queued = endpoint.engine.queued(load, endpoint.outstanding)
    hit = endpoint.engine.holding(blocks) / len(blocks) if blocks else 0.0
    value = weights.prefix * hit - weights.queue * queued / load.slots - weights.kv * load.kv_usage
    return Scored(endpoint, value, queued < load.slots + weights.max_waiting)


def has_room(endpoint: Endpoint, now: float, weights: EngineWeights) -> bool:
    """Whether a request sent to ``endpoint`` now would find a slot (or wait behind at most
    ``max_waiting``), by its engine's fresh report; with none, it may have."""
    load = endpoint.engine.fresh(now, weights.stale_after)
    if load is None:
        return True
    return endpoint.engine.queued(load, endpoint.outstanding) < load.slots + weights.max_waiting


def room_left(endpoint: Endpoint, now: float, weights: EngineWeights) -> int:
    """How many more requests ``endpoint`` takes before it has no room, by its fresh report."""
    load = endpoint.engine.fresh(now, weights.stale_after)
    if load is None:
        return 0
    queued = endpoint.engine.queued(load, endpoint.outstanding)
    return max(0, load.slots + weights.max_waiting - queued)


def pick_by_engine(
    endpoints: list[Endpoint],
    now: float,
    rng: random.Random,
    blocks: Sequence[bytes],
    prefix: bytes | None,
    weights: EngineWeights,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> Endpoint | None:
    """The replica with the best score among those with room (all, if none has)."""
    candidates = healthy(endpoints, now, exclude)
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    if any(e.engine.load is None for e in candidates):
        if prefix is None:
            return pick_endpoint(candidates, now, rng)
        return pick_by_prefix(candidates, now, prefix)
    scored: list[Scored] = []
    for endpoint in candidates:
        load = endpoint.engine.fresh(now, weights.stale_after)
        if load is None:
            return pick_endpoint(candidates, now, rng)
        scored.append(score(endpoint, load, blocks, weights))
    roomy = [s for s in scored if s.room] or scored
    # Ties (nothing held, equally idle) go as the prefix ring orders the replicas, so that a
    # conversation too short for a block keeps its replica and new ones spread; else at random.
    if prefix is None:
        return max(roomy, key=lambda s: (s.score, rng.random())).endpoint
    rank = {e.id: n for n, e in enumerate(ring_order(candidates, prefix))}
    return max(roomy, key=lambda s: (s.score, -rank[s.endpoint.id])).endpoint
