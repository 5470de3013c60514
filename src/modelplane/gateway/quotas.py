"""Per-tenant (per-namespace) limits the gateway enforces before a request reaches a replica:
requests per second (a token bucket holding one second of burst) and concurrent requests. Over a
limit the request is refused at once, with how long to wait: one tenant's flood queues nowhere
that another tenant's requests wait too. (The cap on replicas is kept here too, for the
controller, which enforces it.)"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Quota:
    requests_per_second: float | None = None
    concurrent_requests: int | None = None
    max_replicas: int | None = None  # across the namespace; the controller enforces it


@dataclass
class _Bucket:
    rate: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take one token: 0 if there was one, else the seconds until there will be."""
        capacity = max(1.0, self.rate)
        self.tokens = min(capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass(frozen=True)
class OverQuota:
    message: str
    retry_after: int  # whole seconds, as the Retry-After header says it


@dataclass
class Quotas:
    clock: Callable[[], float] = time.monotonic
    _limits: dict[str, Quota] = field(default_factory=dict)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _in_flight: dict[str, int] = field(default_factory=dict)

    def set(self, namespace: str, quota: Quota | None) -> None:
        """Set (or with None, lift) a namespace's limits; a changed rate starts a full bucket."""
        self._buckets.pop(namespace, None)
        if quota is None:
            self._limits.pop(namespace, None)
        else:
            self._limits[namespace] = quota

    def max_replicas(self, namespace: str) -> int | None:
        quota = self._limits.get(namespace)
        return quota.max_replicas if quota is not None else None

    def admit(self, namespace: str) -> OverQuota | None:
        """Count a request in, or say why not; every admitted request is ``release``d."""
        quota = self._limits.get(namespace)
        if quota is None:
            self._in_flight[namespace] = self._in_flight.get(namespace, 0) + 1
            return None
        running = self._in_flight.get(namespace, 0)
        if quota.concurrent_requests is not None and running >= quota.concurrent_requests:
            return OverQuota(
                f"namespace {namespace!r} has {running} requests in flight, its quota of "
                f"concurrent requests",
                1,
            )
        rate = quota.requests_per_second
        if rate is not None:
            now = self.clock()
            bucket = self._buckets.get(namespace)
            if bucket is None:
                bucket = self._buckets[namespace] = _Bucket(rate, max(1.0, rate), now)
            wait = bucket.take(now)
            if wait > 0:
                return OverQuota(
                    f"namespace {namespace!r} is over its quota of {rate:g} requests per second",
                    max(1, math.ceil(wait)),
                )
        self._in_flight[namespace] = running + 1
        return None

    def release(self, namespace: str) -> None:
        left = self._in_flight.get(namespace, 0) - 1
        if left > 0:
            self._in_flight[namespace] = left
        else:
            self._in_flight.pop(namespace, None)
