"""The gateway's proxy: a plain ASGI app that routes model requests to runtime replicas.

For each request: find the model's route, pick a revision by traffic weight (or the one named as
the version), pick a replica (:mod:`~modelplane.gateway.activator`, which holds the request while
the model has no ready replica), and forward. Failed attempts (connection errors, 503) are
retried on another replica, only before any response byte went to the client and within a retry
budget; a replica that keeps failing is ejected for a while. What the gateway answers without a
replica (health, metrics, its description, 405) is in :mod:`~modelplane.gateway.own_routes`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from opentelemetry import propagate, trace
from starlette.types import Receive, Scope, Send

from modelplane.api.counters import RevisionCounts
from modelplane.api.load import LoadReport, ModelLoad
from modelplane.errors import AuthError, ForbiddenError
from modelplane.gateway import openapi, paths, replies
from modelplane.gateway.activator import Activator
from modelplane.gateway.attempts import REVISION_HEADER, Attempts
from modelplane.gateway.balancing import Balancing
from modelplane.gateway.mirroring import Mirroring
from modelplane.gateway.own_routes import OwnRoutes, not_allowed
from modelplane.gateway.prefix import prompt_prefix
from modelplane.gateway.quotas import Quotas
from modelplane.gateway.replies import RefusalError
from modelplane.gateway.routing import RoutingTable
from modelplane.gateway.stats import RevisionStats
from modelplane.gateway.upstream import UpstreamPool
from modelplane.gateway.usage import GenerationClock, TokenMeter, completion_tokens, reservation
from modelplane.security.authn import Authenticator, require
from modelplane.security.roles import ANYONE, Action, Principal
from modelplane.telemetry import access, names, tracing
from modelplane.telemetry.gateway_metrics import GatewayMetrics

log = logging.getLogger(__name__)

_FORWARDED = (b"content-type", b"inference-header-content-length", b"traceparent", b"tracestate")


@dataclass(frozen=True)
class GatewayOptions:
    request_timeout: float = 60.0
    hold_timeout: float = 60.0  # the longest a request waits for a cold start
    max_held: int = 1000  # held requests per model before refusing
    max_attempts: int = 3
    retry_ratio: float = 0.2  # retries allowed per request, on average
    eject_after: int = 3  # consecutive failures
    eject_seconds: float = 10.0
    max_request_bytes: int = 64 * 1024 * 1024
    balancing: Balancing = Balancing.PREFIX  # for generative requests with a prompt prefix


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


class Gateway:
    def __init__(
        self,
        table: RoutingTable,
        metrics: GatewayMetrics,
        options: GatewayOptions | None = None,
        on_demand: Callable[[str], None] = lambda key: None,
        rng: random.Random | None = None,
        tracer: trace.Tracer | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.table, self.metrics = table, metrics
        self.authenticator = authenticator or Authenticator(None)  # None: auth off
        self.quotas = Quotas()
        self._tracer = tracer or tracing.tracer()  # None: tracing off, no span work at all
        self.options = options = options or GatewayOptions()
        self.on_demand = on_demand
        self.is_ready: Callable[[], bool] = lambda: True  # routes known: worth sending to
        self._rng = rng or random.Random()  # noqa: S311 - load balancing, not secrets
        self._budget = RetryBudget(options.retry_ratio)
        self._upstream = UpstreamPool(options.request_timeout)
        self.last_request: dict[str, float] = {}
        self._stats: dict[tuple[str, str], RevisionStats] = {}
        self._activator = Activator(
            table, metrics, options.hold_timeout, options.max_held, options.balancing, self._rng,
            lambda key: self.on_demand(key), traced=self._tracer is not None,
        )  # fmt: skip
        self._attempts = Attempts(
            self._upstream, metrics, self._tracer, options.eject_after, options.eject_seconds
        )
        self._mirroring = Mirroring(
            table, self._upstream, self._rng, self._tracer,
            lambda key, revision, score, measure: self._revision_stats(key, revision).compare(
                score, measure
            ),
        )  # fmt: skip
        described = openapi.document(self.authenticator.enabled, options.max_request_bytes)
        self._own = OwnRoutes(
            table, metrics, orjson.dumps(described), lambda: self.is_ready(), self._revision_stats
        )

    def reading(self, key: str, revision: str) -> RevisionCounts:
        """Cumulative counters of one revision, for the rollout analysis."""
        return self._revision_stats(key, revision).reading()

    def _revision_stats(self, key: str, revision: str) -> RevisionStats:
        stats = self._stats.get((key, revision))
        if stats is None:
            stats = self._stats[(key, revision)] = RevisionStats(self.metrics, key, revision)
        return stats

    def held(self, key: str) -> int:
        return self._activator.held.get(key, 0)

    def load(self, name: str) -> LoadReport:
        """This gateway's load on every model it routes, as ``name`` reports it."""
        now = time.monotonic()
        models = {}
        for route in self.table.routes():
            last = self.last_request.get(route.key)
            models[route.key] = ModelLoad(
                held=self._activator.held.get(route.key, 0),
                idle_seconds=max(now - last, 0.0) if last is not None else None,
                in_flight={
                    r.name: sum(e.outstanding for e in r.endpoints) for r in route.revisions
                },
            )
        return LoadReport(gateway=name, models=models)

    def in_flight(self, key: str, revision: str) -> int:
        route = self.table.lookup(key)
        found = route.revision(revision) if route else None
        return sum(e.outstanding for e in found.endpoints) if found else 0

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        allowed = paths.methods(path)
        if allowed is not None and method not in allowed:
            await not_allowed(send, path, method, allowed)
        elif path in paths.OWN_PATHS:
            await self._own.answer(path, send)
        else:
            await self._served(path, scope, receive, send)

    async def _served(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Model requests, each from a caller who may read its model's namespace."""
        openai = path.startswith("/v1/")
        principal = ANYONE
        if self.authenticator.enabled:
            try:
                principal = self.authenticator.principal(replies.header(scope, b"authorization"))
            except AuthError as exc:
                self.metrics.refused.labels("", "unauthenticated").inc()
                await replies.refuse(send, exc, openai)
                return
        if path == paths.MODELS or path.startswith(paths.MODELS + "/"):
            await self._own.models(path, send, principal)
        elif path in paths.OPENAI_PATHS:
            await self._openai_request(path, scope, receive, send, principal)
        else:
            target = paths.parse(path)
            if target is None:
                await replies.reply(send, 404, replies.error(f"no route for {path}"))
                return
            access.note(scope, target.key)
            if await self._allowed(send, principal, target.key, openai=False):
                await self._within_quota(target, scope, receive, send)

    async def _allowed(self, send: Send, principal: Principal, key: str, *, openai: bool) -> bool:
        """Whether ``principal`` may send requests to the model ``key``; if not, say so."""
        namespace = key.split("/", 1)[0]
        try:
            require(principal, Action.READ, namespace)
        except ForbiddenError as exc:
            self.metrics.refused.labels(namespace, "forbidden").inc()
            await replies.refuse(send, exc, openai)
            return False
        return True

    async def _within_quota(
        self,
        target: paths.ModelPath,
        scope: Scope,
        receive: Receive,
        send: Send,
        body: bytes | None = None,
        streaming: bool = False,
        reserve: int | None = None,
    ) -> None:
        """Serve the request if its namespace is within its quota; else 429 with Retry-After.
        ``reserve``: the tokens it may use, held until its answer says what it used."""
        namespace = target.namespace
        over = self.quotas.admit(namespace, reserve)
        if over is not None:
            self.metrics.refused.labels(namespace, "quota").inc()
            openai = target.action == paths.OPENAI
            content = (
                replies.openai_error(over.message, 429) if openai else replies.error(over.message)
            )
            await replies.reply(send, 429, content, headers={"retry-after": str(over.retry_after)})
            return
        meter = TokenMeter(streaming) if reserve is not None else None
        try:
            replying = meter.watching(send) if meter is not None else send
            await self._traced(target, scope, receive, replying, body, streaming)
        finally:
            self.quotas.release(namespace)
            if meter is not None and reserve is not None:
                self.quotas.charge(namespace, meter.used(reserve) - reserve)

    async def _traced(
        self,
        target: paths.ModelPath,
        scope: Scope,
        receive: Receive,
        send: Send,
        body: bytes | None = None,
        streaming: bool = False,
    ) -> None:
        handle = self._stream_request if streaming else self._model_request
        if self._tracer is None:
            await handle(target, scope, receive, send, body)
            return
        method, headers = scope["method"], scope["headers"]
        span, token = tracing.start_server_span(self._tracer, method, scope["path"], headers)
        try:
            span.set_attribute(names.ATTR_MODEL, target.key)
            if target.action == paths.OPENAI and span.is_recording():
                span.set_attribute(names.GEN_AI_REQUEST_MODEL, target.key)
            await handle(target, scope, receive, send, body)
        finally:
            tracing.end_span(span, token)

    # -- the OpenAI API --------------------------------------------------------------------------

    async def _openai_request(
        self, path: str, scope: Scope, receive: Receive, send: Send, principal: Principal
    ) -> None:
        """Find the model in the body; stream the answer if the client asked for a stream."""
        try:
            body = await replies.read_body(receive, self.options.max_request_bytes)
            document = orjson.loads(body)
        except RefusalError as refused:
            await replies.reply(
                send, refused.status, replies.openai_error(str(refused), refused.status)
            )
            return
        except orjson.JSONDecodeError as exc:
            message = f"request body is not valid JSON: {exc}"
            await replies.reply(send, 400, replies.openai_error(message, 400))
            return
        model = document.get("model") if isinstance(document, dict) else None
        if not isinstance(model, str) or not model:
            message = "model: a model name is required, as a string"
            await replies.reply(send, 400, replies.openai_error(message, 400, "model"))
            return
        target = paths.openai(path, model, prompt_prefix(path, document))
        access.note(scope, target.key)
        if not await self._allowed(send, principal, target.key, openai=True):
            return
        route = self.table.lookup(target.key)
        if route is not None and not route.openai:  # not among the API's models, as /v1/models
            message = (
                f"model {model!r} does not speak the OpenAI API; "
                f"use /v2/models/{model}/infer (Open Inference Protocol v2)"
            )
            await replies.reply(send, 404, replies.openai_error(message, 404, "model"))
            return
        streaming = document.get("stream") is True
        counting = self.quotas.counts_tokens(target.namespace)
        reserve = reservation(path, body, document) if counting else None
        await self._within_quota(target, scope, receive, send, body, streaming, reserve)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def close(self) -> None:
        self._mirroring.cancel()
        await self._upstream.close()

    # -- proxying ----------------------------------------------------------------------------

    async def _model_request(
        self,
        target: paths.ModelPath,
        scope: Scope,
        receive: Receive,
        send: Send,
        body: bytes | None = None,
    ) -> None:
        started = time.perf_counter()
        revision_name = "-"
        try:
            if body is None:
                body = await replies.read_body(receive, self.options.max_request_bytes)
            self.last_request[target.key] = time.monotonic()
            self._budget.request()
            headers = {
                k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in _FORWARDED
            }
            status, reply_headers, content, revision_name = await self._forward(
                target, _upstream_method(scope["method"]), body, headers
            )
        except RefusalError as refused:
            revision_name = refused.revision
            status, content, reply_headers = replies.refusal(refused, target)
        except Exception as exc:  # a bug here must cost one request, never the gateway
            log.exception("proxying to %s failed", target.key)
            status, content, reply_headers = replies.refusal(
                RefusalError(502, f"gateway error: {exc!r}"), target
            )
        self._account(scope, target, revision_name, status, started)
        if status == 200 and body is not None:
            if paths.generates(target) and (made := completion_tokens(content)):
                per_token = (time.perf_counter() - started) / made
                self._revision_stats(target.key, revision_name).generated(None, per_token)
            if target.action in ("infer", paths.OPENAI):
                self._mirroring.offer(target, revision_name, scope["method"], body, content)
        await replies.reply(send, status, content, headers=reply_headers)

    def _account(
        self, scope: Scope, target: paths.ModelPath, revision: str, status: int, started: float
    ) -> None:
        """A finished request in the metrics, the revision's analysis counters, its span and
        its access line."""
        model = target.key
        if self._tracer is not None:
            span = trace.get_current_span()
            tracing.finish(span, status)
            if revision != "-" and span.is_recording():
                span.set_attribute(names.ATTR_REVISION, revision)
        outcome = "success" if status < 400 else ("client_error" if status < 500 else "error")
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels(model, revision, outcome).inc()
        self.metrics.duration.labels(model, revision).observe(elapsed)
        if revision != "-":
            self._revision_stats(model, revision).record(elapsed, failed=status >= 500)
            access.note(scope, model, revision)

    async def _stream_request(
        self,
        target: paths.ModelPath,
        scope: Scope,
        receive: Receive,
        send: Send,
        body: bytes | None = None,
    ) -> None:
        """Relay a streamed answer (server-sent events) as it comes. Retries happen only before
        the replica answered; a client that leaves closes the replica connection, which stops
        the generation there."""
        assert body is not None  # read to find the model
        started = time.perf_counter()
        clock = GenerationClock(started)
        send = clock.watching(send)
        self.last_request[target.key] = time.monotonic()
        self._budget.request()
        headers = {k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in _FORWARDED}
        if self._tracer is not None:
            propagate.inject(headers)
        tried: set[str] = set()
        status, revision = 502, "-"
        try:
            for attempt in range(1, self.options.max_attempts + 1):
                endpoint = await self._activator.choose(target, tried)
                tried.add(endpoint.id)
                revision = endpoint.revision
                relayed = await self._attempts.relay(endpoint, target, body, headers, receive, send)
                if relayed is not None:
                    status = relayed
                    return
                if attempt == self.options.max_attempts or not self._budget.try_retry():
                    message = f"replica {endpoint.id} of {target.key} failed to answer"
                    raise RefusalError(502, message, revision=revision)
                self.metrics.retries.labels(target.key).inc()
        except RefusalError as refused:
            status, content, reply_headers = replies.refusal(refused, target)
            await replies.reply(send, status, content, headers=reply_headers)
        finally:
            self._account(scope, target, revision, status, started)
            if status == 200:
                self._revision_stats(target.key, revision).generated(*clock.timings())

    async def _forward(
        self, target: paths.ModelPath, method: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes, str]:
        tried: set[str] = set()
        avoid: str | None = None
        attempt = 0
        while True:
            attempt += 1
            endpoint = await self._activator.choose(target, tried, avoid)
            tried.add(endpoint.id)
            on_trial = self._is_canary(target, endpoint.revision)  # as routed, not as answered
            started = time.perf_counter()
            result = await self._attempts.whole(endpoint, target, method, body, headers, attempt)
            failed = result is None or result[0] >= 500
            if failed and on_trial:
                # A failing canary must not fail the client: count it against the canary, whose
                # analysis rolls it back, and answer from the stable revision instead.
                elapsed = time.perf_counter() - started
                self._revision_stats(target.key, endpoint.revision).record(elapsed, failed=True)
                avoid = endpoint.revision
            # Falling back from a canary needs no budget: the canary's weight already bounds it.
            fallback = avoid == endpoint.revision
            retry = fallback or result is None or result[0] == 503
            if (
                retry
                and attempt < self.options.max_attempts
                and (fallback or self._budget.try_retry())
            ):
                self.metrics.retries.labels(target.key).inc()
                if self._tracer is not None:
                    trace.get_current_span().set_attribute(names.ATTR_RETRIES, attempt)
                continue
            if result is None:
                message = f"replica {endpoint.id} of {target.key} failed to answer"
                raise RefusalError(502, message, revision=endpoint.revision)
            status, reply_headers, content = result
            reply_headers[REVISION_HEADER] = endpoint.revision
            return status, reply_headers, content, endpoint.revision

    def _is_canary(self, target: paths.ModelPath, revision: str) -> bool:
        route = self.table.lookup(target.key)
        return target.version is None and route is not None and route.canary == revision


def _upstream_method(method: str) -> str:
    """HEAD is asked of a replica as GET: the server drops the body on the client's side, while
    an answer to a proxied HEAD would declare a body that never comes."""
    return "GET" if method == "HEAD" else method
