"""Per-tenant (per-namespace) limits the gateway enforces before a request reaches a replica:
requests per second (a token bucket holding one second of burst), concurrent requests and, for
the OpenAI API, model tokens per minute. Over a limit the request is refused at once, with how
long to wait: one tenant's flood queues nowhere that another tenant's requests wait too. (The cap
on replicas is kept here too, for the controller, which enforces it.)

Tokens are known only once a model has answered. So a request is admitted while the namespace's
token budget (a minute's worth, refilled continuously) is not spent, and at once reserves what
it may use (its prompt's bytes / 4 and its ``max_tokens``); when it ends, the reservation is
settled to what the answer says it used. Requests sent together each reserve before any answers,
so they cannot together run far past the budget; a stream cut short keeps its reservation. The
debt a budget can carry is one minute's worth."""

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
    tokens_per_minute: int | None = None  # prompt and completion tokens, OpenAI API requests


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


@dataclass
class _TokenBudget:
    per_minute: int
    left: float
    updated: float

    def refill(self, now: float) -> float:
        self.left = min(self.per_minute, self.left + (now - self.updated) * self.per_minute / 60)
        self.updated = now
        return self.left

    def take(self, tokens: float, now: float) -> None:
        self.refill(now)
        self.left = max(-self.per_minute, self.left - tokens)  # at most a minute of debt

    def wait(self, now: float) -> float:
        """Seconds until the budget is positive again (0: it is)."""
        left = self.refill(now)
        return 0.0 if left > 0 else (1 - left) * 60 / self.per_minute


@dataclass(frozen=True)
class OverQuota:
    message: str
    retry_after: int  # whole seconds, as the Retry-After header says it


@dataclass
class Quotas:
    clock: Callable[[], float] = time.monotonic
    _limits: dict[str, Quota] = field(default_factory=dict)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _budgets: dict[str, _TokenBudget] = field(default_factory=dict)
    _in_flight: dict[str, int] = field(default_factory=dict)

    def set(self, namespace: str, quota: Quota | None) -> None:
        """Set (or with None, lift) a namespace's limits; a changed rate starts a full bucket,
        and a changed token budget a full one (an unchanged one keeps its debt)."""
        before = self._limits.get(namespace)
        self._buckets.pop(namespace, None)
        if quota is None or before is None or quota.tokens_per_minute != before.tokens_per_minute:
            self._budgets.pop(namespace, None)
        if quota is None:
            self._limits.pop(namespace, None)
        else:
            self._limits[namespace] = quota

    def max_replicas(self, namespace: str) -> int | None:
        quota = self._limits.get(namespace)
        return quota.max_replicas if quota is not None else None

    def counts_tokens(self, namespace: str) -> bool:
        quota = self._limits.get(namespace)
        return quota is not None and quota.tokens_per_minute is not None

    def charge(self, namespace: str, tokens: float) -> None:
        """Take tokens from the namespace's budget, if it has one (a negative count gives back
        what a reservation held beyond what the answer used)."""
        budget = self._token_budget(namespace)
        if budget is not None:
            budget.take(tokens, self.clock())

    def _token_budget(self, namespace: str) -> _TokenBudget | None:
        quota = self._limits.get(namespace)
        if quota is None or quota.tokens_per_minute is None:
            return None
        budget = self._budgets.get(namespace)
        if budget is None:
            per_minute = quota.tokens_per_minute
            budget = self._budgets[namespace] = _TokenBudget(per_minute, per_minute, self.clock())
        return budget

    def admit(self, namespace: str, reserve: float | None = None) -> OverQuota | None:
        """Count a request in, or say why not; every admitted request is ``release``d.
        ``reserve``: the tokens a request of the OpenAI API may use, held from the budget until
        it is ``charge``d what it used less this."""
        quota = self._limits.get(namespace)
        running = self._in_flight.get(namespace, 0)
        if quota is not None:
            over = (
                self._over_concurrency(namespace, quota, running)
                or (self._over_tokens(namespace) if reserve is not None else None)
                or self._over_rate(namespace, quota)
            )
            if over is not None:
                return over
            if reserve is not None:
                self.charge(namespace, reserve)
        self._in_flight[namespace] = running + 1
        return None

    @staticmethod
    def _over_concurrency(namespace: str, quota: Quota, running: int) -> OverQuota | None:
        if quota.concurrent_requests is None or running < quota.concurrent_requests:
            return None
        message = (
            f"namespace {namespace!r} has {running} requests in flight, its quota of "
            f"concurrent requests"
        )
        return OverQuota(message, 1)

    def _over_rate(self, namespace: str, quota: Quota) -> OverQuota | None:
        rate = quota.requests_per_second
        if rate is None:
            return None
        now = self.clock()
        bucket = self._buckets.get(namespace)
        if bucket is None:
            bucket = self._buckets[namespace] = _Bucket(rate, max(1.0, rate), now)
        wait = bucket.take(now)
        if wait <= 0:
            return None
        message = f"namespace {namespace!r} is over its quota of {rate:g} requests per second"
        return OverQuota(message, max(1, math.ceil(wait)))

    def _over_tokens(self, namespace: str) -> OverQuota | None:
        budget = self._token_budget(namespace)
        if budget is None or (wait := budget.wait(self.clock())) <= 0:
            return None
        message = (
            f"namespace {namespace!r} is over its quota of {budget.per_minute} tokens per minute"
        )
        return OverQuota(message, max(1, math.ceil(wait)))

    def release(self, namespace: str) -> None:
        left = self._in_flight.get(namespace, 0) - 1
        if left > 0:
            self._in_flight[namespace] = left
        else:
            self._in_flight.pop(namespace, None)
