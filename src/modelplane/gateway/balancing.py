"""Choosing where a request goes: a revision by traffic weight, then a replica.

Replicas are chosen by the power of two choices over outstanding requests: two random healthy
candidates, the less busy one wins. It balances nearly as well as scanning for the least busy, in
constant time, and avoids herding on one replica when load reports lag.

Generative requests with a prompt prefix worth caching are placed by consistent hashing with
bounded loads (Mirrokni, Thorup and Zadimoghaddam): the prefix hashes to a point on a ring of
replicas, and the request goes to the first replica clockwise whose outstanding requests stay
within ``load_factor`` times the average. A conversation (or a shared system prompt) keeps landing
where its KV cache is warm, yet no replica takes more than its bounded share; replicas joining or
leaving move only the prefixes next to them on the ring.

A request that names a LoRA adapter goes among the replicas that hold it loaded (as they report
on their answers) while one of them is within that bound, so an adapter is not loaded on every
replica by turns; past the bound, among all.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import random
from enum import StrEnum

from modelplane.gateway.routing import Endpoint, RevisionRoute

VIRTUAL_NODES = 64  # points per replica on the ring: enough to even out the arcs
LOAD_FACTOR = 1.25  # a replica takes at most this times the average outstanding


class Balancing(StrEnum):
    """How a gateway spreads generative requests over a revision's replicas."""

    ENGINE = "engine"  # scored on the prompt blocks each engine holds and its load (scoring.py)
    PREFIX = "prefix"  # consistent hashing with bounded loads over the prompt prefix
    LEAST_OUTSTANDING = "least-outstanding"  # power of two choices
    ROUND_ROBIN = "round-robin"


def pick_revision(revisions: list[RevisionRoute], rng: random.Random) -> RevisionRoute | None:
    weighted = [r for r in revisions if r.weight > 0]
    if not weighted:
        return None
    if len(weighted) == 1:
        return weighted[0]
    point = rng.uniform(0, sum(r.weight for r in weighted))
    for revision in weighted:
        point -= revision.weight
        if point <= 0:
            return revision
    return weighted[-1]


def healthy(
    endpoints: list[Endpoint], now: float, exclude: set[str] | frozenset[str]
) -> list[Endpoint]:
    """The replicas not left out nor ejected; all those not left out if every one is ejected."""
    found = [e for e in endpoints if e.id not in exclude and e.ejected_until <= now]
    if not found:
        # Every replica is ejected: trying one beats refusing outright.
        found = [e for e in endpoints if e.id not in exclude]
    return found


def prefer_holding(
    endpoints: list[Endpoint],
    adapter: str,
    now: float,
    exclude: set[str] | frozenset[str] = frozenset(),
    load_factor: float = LOAD_FACTOR,
) -> list[Endpoint]:
    """The replicas to choose among for a request of LoRA ``adapter``: those that reported it
    loaded and are within the load bound, else all of them (loading it on another replica
    beats queueing behind the ones that hold it)."""
    candidates = healthy(endpoints, now, exclude)
    holding = [e for e in candidates if adapter in e.adapters]
    if not holding:
        return endpoints
    bound = _load_bound(candidates, load_factor)
    return [e for e in holding if e.outstanding + 1 <= bound] or endpoints


def pick_endpoint(
    endpoints: list[Endpoint],
    now: float,
    rng: random.Random,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> Endpoint | None:
    candidates = healthy(endpoints, now, exclude)
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    first, second = rng.sample(candidates, 2)
    return first if first.outstanding <= second.outstanding else second


def pick_in_turn(
    endpoints: list[Endpoint],
    now: float,
    turn: int,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> Endpoint | None:
    """Round robin: the ``turn``-th healthy replica, whatever its load."""
    candidates = healthy(endpoints, now, exclude)
    return candidates[turn % len(candidates)] if candidates else None


def pick_by_prefix(
    endpoints: list[Endpoint],
    now: float,
    prefix: bytes,
    exclude: set[str] | frozenset[str] = frozenset(),
    load_factor: float = LOAD_FACTOR,
) -> Endpoint | None:
    """The replica that owns ``prefix`` on the ring, or the next one within the load bound."""
    candidates = healthy(endpoints, now, exclude)
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    bound = _load_bound(candidates, load_factor)
    for endpoint in ring_order(candidates, prefix):
        if endpoint.outstanding + 1 <= bound:
            return endpoint
    return min(candidates, key=lambda e: e.outstanding)  # unreachable while the bound holds


def ring_order(endpoints: list[Endpoint], prefix: bytes) -> list[Endpoint]:
    """``endpoints`` in the order the ring meets them, clockwise from ``prefix``'s point."""
    by_id = {e.id: e for e in endpoints}
    points, owners = _ring(tuple(sorted(by_id)))
    start = bisect.bisect(points, _hash(prefix))
    order: dict[str, Endpoint] = {}
    for step in range(len(points)):
        owner = owners[(start + step) % len(points)]
        if owner not in order:
            order[owner] = by_id[owner]
            if len(order) == len(by_id):
                break
    return list(order.values())


def _load_bound(healthy: list[Endpoint], load_factor: float) -> float:
    """The most outstanding requests a replica may have with the new one: ``load_factor`` times
    the average, counting the new request; at least one, so that a second request goes to an
    idle replica rather than queue behind the first."""
    return max(1.0, load_factor * (sum(e.outstanding for e in healthy) + 1) / len(healthy))


def _hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


@functools.lru_cache(maxsize=1024)
def _ring(ids: tuple[str, ...]) -> tuple[list[int], list[str]]:
    """Sorted points and their owners: ``VIRTUAL_NODES`` per replica id."""
    placed = sorted(
        (_hash(f"{replica}#{i}".encode()), replica) for replica in ids for i in range(VIRTUAL_NODES)
    )
    return [p for p, _ in placed], [r for _, r in placed]
