"""Forwarding: one loop of attempts for whole and streamed answers. Each attempt goes to a
replica the activator picks (holding the request while the model has none ready); a replica
that does not answer (or answers 503) is worth another, before any byte went to the client and
within the retry budget; a canary that fails is counted against the canary and the request
answered by the stable revision, without spending the budget (the canary's weight bounds it).
A replica whose engine is full (429) is worth another too, without spending the budget (a
refusal costs the replica next to nothing).

A request of the OpenAI API for a saturated model waits in the gateway (``flow_control.py``):
saturated means the replica chosen for it has no room by its engine's fresh report (every slot
taken, and as many waiting there as engine balancing's ``max-waiting``; the balancer prefers a
replica with room, so the chosen one lacking it means all do), or every replica asked answered
429. A request arriving while others wait takes its place behind them. With flow control off,
the last refusal, with its ``Retry-After``, is the answer.

Every finished request is accounted once here: the gateway's metrics, the revision's analysis
counters (with the time to the first token and per output token of generated text), its span,
its access line and, with its tokens, the platform's usage record.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from opentelemetry import propagate, trace
from starlette.types import Receive, Scope, Send

from modelplane.errors import ModelNotReadyError, ReplicaFailedError
from modelplane.gateway import paths, replies
from modelplane.gateway.activator import Activator
from modelplane.gateway.attempts import BUSY, REVISION_HEADER, Answer, Attempts
from modelplane.gateway.flow_control import FlowControl
from modelplane.gateway.requests import ProxyRequest
from modelplane.gateway.routing import Endpoint, RoutingTable
from modelplane.gateway.stats import RevisionStats, ServedStats
from modelplane.gateway.usage import NO_TOKENS, Answered, GenerationClock
from modelplane.gateway.waiting_room import Waiter
from modelplane.telemetry import access, names, tracing
from modelplane.telemetry.gateway_metrics import GatewayMetrics

T = TypeVar("T")


class RetryBudget:
    """Retries may add at most ``ratio`` of the request rate, plus a small floor."""

    def __init__(self, ratio: float, floor: float = 10.0) -> None:
        self.ratio, self.tokens, self.floor = ratio, floor, floor

    def request(self) -> None:
        self.tokens = min(self.tokens + self.ratio, self.floor + 100 * self.ratio)

    def try_retry(self) -> bool:
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass(frozen=True, slots=True)
class Tried(Generic[T]):
    """One attempt's outcome: ``result`` None when the replica did not answer; ``retry`` when
    another replica is worth asking (no answer, or 503); ``committed`` once the client has bytes
    of it, after which nothing is tried again."""

    result: T | None
    status: int
    retry: bool
    committed: bool = False


class Forwarding:
    def __init__(
        self,
        table: RoutingTable,
        activator: Activator,
        attempts: Attempts,
        metrics: GatewayMetrics,
        stats: Callable[[str, str], RevisionStats],
        max_attempts: int,
        retry_ratio: float,
        traced: bool,
        answered: Answered,
        flow: FlowControl,
    ) -> None:
        self.table, self.activator, self.attempts, self.flow = table, activator, attempts, flow
        self.answered = answered
        self.metrics, self.stats, self.max_attempts = metrics, stats, max_attempts
        self.budget = RetryBudget(retry_ratio)
        self.traced = traced
        self.last_request: dict[str, float] = {}  # time.monotonic() of each model's latest
        self.served: dict[str, ServedStats] = {}  # by model, as its clients saw it

    async def whole(
        self, request: ProxyRequest, receive: Receive | None = None
    ) -> tuple[Answer, str]:
        """The answer to ``request`` and the revision that gave it; ``receive``: the client's
        messages, watched for its leaving while the request waits for a saturated model."""

        async def attempt(endpoint: Endpoint, number: int) -> Tried[Answer]:
            answer = await self.attempts.whole(
                endpoint, request.target, request.method, request.body, request.headers, number
            )
            status = answer[0] if answer is not None else 502
            return Tried(answer, status, retry=answer is None or status == 503)

        answer, endpoint = await self._tries(request, attempt, receive)
        answer[1][REVISION_HEADER] = endpoint.revision
        return answer, endpoint.revision

    async def stream(self, request: ProxyRequest, receive: Receive, send: Send) -> tuple[int, str]:
        """Relay the streamed answer to ``request`` as it comes: its status and revision. A
        client that leaves closes the replica's stream, which stops the generation there."""
        headers = dict(request.headers)
        if self.traced:
            propagate.inject(headers)

        async def attempt(endpoint: Endpoint, number: int) -> Tried[int | Answer]:
            relayed = await self.attempts.relay(
                endpoint, request.target, request.body, headers, receive, send
            )
            if isinstance(relayed, tuple):  # a busy engine's refusal, not sent yet
                return Tried(relayed, relayed[0], retry=False)
            return Tried(relayed, relayed or 502, relayed is None, committed=relayed is not None)

        relayed, endpoint = await self._tries(request, attempt, receive)
        if isinstance(relayed, tuple):  # every replica tried was busy
            status, returned, content = relayed
            returned[REVISION_HEADER] = endpoint.revision
            await replies.reply(send, status, content, headers=returned)
            return status, endpoint.revision
        return relayed, endpoint.revision

    async def _tries(
        self,
        request: ProxyRequest,
        attempt: Callable[[Endpoint, int], Awaitable[Tried[T]]],
        receive: Receive | None,
    ) -> tuple[T, Endpoint]:
        target = request.target
        self.last_request[target.key] = time.monotonic()
        self.budget.request()
        flow = self.flow if request.openai and self.flow.enabled else None
        if flow is None:
            answered = await self._round(request, attempt, None)
            assert answered is not None  # without flow control a round always answers
            return answered
        waiter: Waiter | None = None
        if target.key in flow.rooms:  # others wait already: no overtaking them
            waiter = await flow.hold(target.key, request.tenant, request.priority, receive)
        while True:
            answered = await self._round(request, attempt, flow, check_room=waiter is None)
            if answered is not None:
                return answered
            waiter = await flow.hold(target.key, request.tenant, request.priority, receive, waiter)

    async def _round(
        self,
        request: ProxyRequest,
        attempt: Callable[[Endpoint, int], Awaitable[Tried[T]]],
        flow: FlowControl | None,
        check_room: bool = False,
    ) -> tuple[T, Endpoint] | None:
        """One round of attempts: the answer and who gave it; None when the model is saturated
        and, with ``flow`` control, the request may wait for room (``check_room``: before
        sending it, by what the chosen replica last reported)."""
        target = request.target
        tried: set[str] = set()
        avoid: str | None = None
        busy: tuple[T, Endpoint] | None = None  # the last refusal of a full engine
        for number in range(1, self.max_attempts + 1):
            try:
                endpoint = await self.activator.choose(target, tried, avoid)
            except ModelNotReadyError:
                if busy is None:
                    raise
                return None if flow is not None else busy  # no other replica to ask
            if check_room and number == 1 and not self.activator.has_room(endpoint):
                return None
            tried.add(endpoint.id)
            on_trial = self._is_canary(target, endpoint.revision)  # as routed, not as answered
            started = time.perf_counter()
            outcome = await attempt(endpoint, number)
            if outcome.status >= 500 and on_trial and not outcome.committed:
                # A failing canary must not fail the client: count it against the canary, whose
                # analysis rolls it back, and answer from the stable revision instead.
                elapsed = time.perf_counter() - started
                self.stats(target.key, endpoint.revision).record(elapsed, failed=True)
                avoid = endpoint.revision
            fallback = avoid == endpoint.revision
            full = outcome.status == BUSY and not outcome.committed and outcome.result is not None
            if not full and flow is not None:
                flow.freed(target.key)  # its slot is free for a waiting request
            again = not outcome.committed and (fallback or full or outcome.retry)
            free = fallback or full  # retries the budget does not pay for
            if again and number < self.max_attempts and (free or self.budget.try_retry()):
                if full:
                    assert outcome.result is not None
                    busy = outcome.result, endpoint
                self._retried(target, number)
                continue
            if outcome.result is None:
                message = f"replica {endpoint.id} of {target.key} failed to answer"
                raise ReplicaFailedError(message, endpoint.revision)
            if full and flow is not None:
                return None
            return outcome.result, endpoint
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _retried(self, target: paths.ModelPath, number: int) -> None:
        self.metrics.retries.labels(target.key).inc()
        if self.traced:
            trace.get_current_span().set_attribute(names.ATTR_RETRIES, number)

    def _is_canary(self, target: paths.ModelPath, revision: str) -> bool:
        route = self.table.lookup(target.key)
        return target.version is None and route is not None and route.canary == revision

    def account(
        self,
        scope: Scope,
        request: ProxyRequest,
        revision: str,
        status: int,
        tokens: tuple[int, int] = NO_TOKENS,
    ) -> None:
        """A finished request in the metrics, the revision's analysis counters, its span, its
        access line and the usage record (with the prompt and completion ``tokens`` it used)."""
        model = request.target.key
        if self.traced:
            span = trace.get_current_span()
            tracing.finish(span, status)
            if revision != "-" and span.is_recording():
                span.set_attribute(names.ATTR_REVISION, revision)
        outcome = "success" if status < 400 else ("client_error" if status < 500 else "error")
        elapsed = time.perf_counter() - request.started
        self.metrics.requests.labels(model, revision, outcome).inc()
        self.metrics.duration.labels(model, revision).observe(elapsed)
        self.served.setdefault(model, ServedStats()).record(elapsed, failed=status >= 500)
        if revision != "-":
            self.stats(model, revision).record(elapsed, failed=status >= 500)
            access.note(scope, model, revision)
            self.answered(model, revision, status, *tokens)

    def generated_whole(self, request: ProxyRequest, revision: str, made: int) -> None:
        """A whole generated answer's time per output token (``made`` of them), for the
        analysis."""
        if made and paths.generates(request.target):
            per_token = (time.perf_counter() - request.started) / made
            self.stats(request.target.key, revision).generated(None, per_token)

    def generated_stream(
        self, request: ProxyRequest, revision: str, clock: GenerationClock
    ) -> None:
        self.stats(request.target.key, revision).generated(*clock.timings())
