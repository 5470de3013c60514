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
debt a budget can carry is one minute's worth.

Several gateways in front of the same replicas (a cluster's gateway Deployment) each hold an
equal share of every limit but the replica cap (``set_peers``): traffic spread over them is
held to the namespace's quota, not to a multiple of it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from modelplane.api.priority import DEFAULT_PRIORITY, Priority
from modelplane.api.quotas import Quota


@dataclass
class _Bucket:
    rate: float
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        self.tokens = min(max(1.0, self.rate), self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def rescale(self, rate: float, now: float) -> None:
        """The same fill, at another rate: what was left is left in proportion."""
        self.refill(now)
        self.tokens, self.rate = self.tokens * rate / self.rate, rate

    def take(self, now: float) -> float:
        """Take one token: 0 if there was one, else the seconds until there will be."""
        self.refill(now)
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

    def rescale(self, per_minute: int, now: float) -> None:
        """The same fill (or debt), at another budget: kept in proportion."""
        self.refill(now)
        self.left, self.per_minute = self.left * per_minute / self.per_minute, per_minute

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
    _given: dict[str, Quota] = field(default_factory=dict)  # as set, for the whole namespace
    _limits: dict[str, Quota] = field(default_factory=dict)  # this gateway's share of each
    _peers: int = 1
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _budgets: dict[str, _TokenBudget] = field(default_factory=dict)
    _in_flight: dict[str, int] = field(default_factory=dict)

    def set(self, namespace: str, quota: Quota | None) -> None:
        """Set (or with None, lift) a namespace's limits; a changed rate starts a full bucket,
        and a changed token budget a full one (an unchanged one keeps its debt)."""
        before = self._given.get(namespace)
        self._buckets.pop(namespace, None)
        if quota is None or before is None or quota.tokens_per_minute != before.tokens_per_minute:
            self._budgets.pop(namespace, None)
        if quota is None:
            self._given.pop(namespace, None)
            self._limits.pop(namespace, None)
        else:
            self._given[namespace] = quota
            self._limits[namespace] = _share(quota, self._peers)

    def given(self, namespace: str) -> Quota | None:
        """A namespace's quota as set (not this gateway's share of it)."""
        return self._given.get(namespace)

    def set_peers(self, peers: int) -> None:
        """Enforce a ``peers``-th of each limit (this gateway among ``peers`` that share the
        traffic; below 1 counts as 1). Buckets and budgets keep what they hold, in proportion:
        a gateway joining or leaving (every rolling update) neither refills nor forgives."""
        peers = max(1, peers)
        if peers == self._peers:
            return
        self._peers = peers
        self._limits = {ns: _share(quota, peers) for ns, quota in self._given.items()}
        now = self.clock()
        for namespace, bucket in self._buckets.items():
            rate = self._limits[namespace].requests_per_second
            assert rate is not None  # a bucket exists only for a rate
            bucket.rescale(rate, now)
        for namespace, budget in self._budgets.items():
            per_minute = self._limits[namespace].tokens_per_minute
            assert per_minute is not None  # a budget exists only for a token quota
            budget.rescale(per_minute, now)

    def priority(self, namespace: str) -> Priority:
        """The priority a namespace's requests wait with (an API key's own comes first)."""
        quota = self._given.get(namespace)
        return quota.priority if quota is not None and quota.priority else DEFAULT_PRIORITY

    def max_replicas(self, namespace: str) -> int | None:
        quota = self._given.get(namespace)
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

    def _over_concurrency(self, namespace: str, quota: Quota, running: int) -> OverQuota | None:
        if quota.concurrent_requests is None or running < quota.concurrent_requests:
            return None
        given = self._given[namespace].concurrent_requests
        return OverQuota(self._over(namespace, f"{given} concurrent requests"), 1)

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
        given = self._given[namespace].requests_per_second
        message = self._over(namespace, f"{given:g} requests per second")
        return OverQuota(message, max(1, math.ceil(wait)))

    def _over_tokens(self, namespace: str) -> OverQuota | None:
        budget = self._token_budget(namespace)
        if budget is None or (wait := budget.wait(self.clock())) <= 0:
            return None
        given = self._given[namespace].tokens_per_minute
        message = self._over(namespace, f"{given} tokens per minute")
        return OverQuota(message, max(1, math.ceil(wait)))

    def _over(self, namespace: str, quota: str) -> str:
        shared = f" (shared by {self._peers} gateways)" if self._peers > 1 else ""
        return f"namespace {namespace!r} is over its quota of {quota}{shared}"

    def release(self, namespace: str) -> None:
        left = self._in_flight.get(namespace, 0) - 1
        if left > 0:
            self._in_flight[namespace] = left
        else:
            self._in_flight.pop(namespace, None)


def _share(quota: Quota, peers: int) -> Quota:
    """One gateway's part of ``quota`` when ``peers`` gateways share the traffic."""
    if peers == 1:
        return quota
    rate, concurrent, tokens = (
        quota.requests_per_second, quota.concurrent_requests, quota.tokens_per_minute
    )  # fmt: skip
    return Quota(
        rate / peers if rate is not None else None,
        math.ceil(concurrent / peers) if concurrent is not None else None,
        quota.max_replicas,
        math.ceil(tokens / peers) if tokens is not None else None,
        quota.priority,
    )
