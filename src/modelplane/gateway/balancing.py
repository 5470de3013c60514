"""Choosing where a request goes: a revision by traffic weight, then a replica by load.

Replicas are chosen by the power of two choices over outstanding requests: two random healthy
candidates, the less busy one wins. It balances nearly as well as scanning for the least busy, in
constant time, and avoids herding on one replica when load reports lag.
"""

from __future__ import annotations

import random

from modelplane.gateway.routing import Endpoint, RevisionRoute


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


def pick_endpoint(
    endpoints: list[Endpoint],
    now: float,
    rng: random.Random,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> Endpoint | None:
    healthy = [e for e in endpoints if e.id not in exclude and e.ejected_until <= now]
    if not healthy:
        # Every replica is ejected: trying one beats refusing outright.
        healthy = [e for e in endpoints if e.id not in exclude]
    if len(healthy) <= 1:
        return healthy[0] if healthy else None
    first, second = rng.sample(healthy, 2)
    return first if first.outstanding <= second.outstanding else second
