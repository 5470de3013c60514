"""The replica cap of a namespace (``maxReplicas`` of its quota), shared out among its Models.

One rule for both modes: Models created earlier take their share first. Each Model gets what
it wants while the older ones leave room, judged by what each older Model last wanted (or, before
it was first planned, the replicas it runs). An older Model never depends on a younger one, so
Models planned side by side (operator workers, or one pass after another) converge, where "what
the others run now" would have two Models take turns shrinking. What a tenant sees is stable:
adding a Model never takes replicas from one that was there first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from modelplane.control.rollout import Event


@dataclass(frozen=True, order=True)
class Claim:
    """What one Model of the namespace claims: the replicas it last wanted (or runs)."""

    created: datetime
    key: str
    replicas: int


@dataclass(frozen=True)
class ReplicaCap:
    """A namespace's cap and its Models' claims, as a backend observed them."""

    limit: int
    claims: tuple[Claim, ...]


def room(cap: ReplicaCap, key: str) -> tuple[int, int]:
    """The replicas ``key`` may run under ``cap`` and how many the Models created before it
    take: each older Model takes what it claims, as far as the cap reaches."""
    taken = 0
    for claim in sorted(cap.claims):
        if claim.key == key:
            break
        taken += min(claim.replicas, max(0, cap.limit - taken))
    return max(0, cap.limit - taken), taken


def within_cap(
    namespace: str, key: str, wanted: int, cap: ReplicaCap | None, said: bool
) -> tuple[int, Event | None]:
    """``wanted``, or as many as the cap leaves; with a ``ReplicaQuotaReached`` event the first
    time (``said``: the event was given for this episode already)."""
    if cap is None:
        return wanted, None
    allowed, taken = room(cap, key)
    if wanted <= allowed:
        return wanted, None
    if said:
        return allowed, None
    message = (
        f"{wanted} replicas wanted, {allowed} allowed: namespace {namespace!r} may run "
        f"{cap.limit} in all and Models created before it take {taken}"
    )
    return allowed, Event("Warning", "ReplicaQuotaReached", message)


def claims_from(
    models: Sequence[tuple[datetime, str, int]], wanted: dict[str, int]
) -> tuple[Claim, ...]:
    """Claims of a namespace's Models, each (created, key, replicas running), from what each
    last wanted where known."""
    return tuple(Claim(created, key, wanted.get(key, running)) for created, key, running in models)
