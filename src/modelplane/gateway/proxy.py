"""The gateway's proxy: a plain ASGI app that routes v2 requests to runtime replicas.

For each request: find the model's route, pick a revision by traffic weight (or the one named as
the version), pick a replica by the power of two choices, and forward. A model with no ready
replica (starting, or scaled to zero) has its requests *held* — up to a bounded number and a
deadline — while the control plane is told of the demand; over either bound the answer is 503
with ``Retry-After`` at once. Failed attempts (connection errors, 503) are retried on another
replica, only before any response byte went to the client and within a retry budget; a replica
that keeps failing is ejected for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from opentelemetry import propagate, trace
from starlette.types import Message, Receive, Scope, Send

from modelplane import __version__
from modelplane.errors import AuthError, ForbiddenError, UnauthenticatedError
from modelplane.gateway import paths, routing
from modelplane.gateway.balancing import (
    Balancing,
    pick_by_prefix,
    pick_endpoint,
    pick_in_turn,
    pick_revision,
)
from modelplane.gateway.load import LoadReport, ModelLoad
from modelplane.gateway.prefix import prompt_prefix
from modelplane.gateway.quotas import Quotas
from modelplane.gateway.routing import Endpoint, RevisionRoute, RoutingTable, Shadow
from modelplane.gateway.shadowing import disagreement
from modelplane.gateway.stats import Reading, RevisionStats
from modelplane.gateway.upstream import UpstreamError, UpstreamPool
from modelplane.gateway.usage import TokenMeter, reservation
from modelplane.security.authn import Authenticator, require
from modelplane.security.roles import ANYONE, Action, Principal
from modelplane.telemetry import names, tracing
from modelplane.telemetry.gateway_metrics import GatewayMetrics

log = logging.getLogger(__name__)

MAX_MIRRORS = 64  # shadow requests in flight at once; beyond, mirroring skips a request

_FORWARDED = (b"content-type", b"inference-header-content-length", b"traceparent", b"tracestate")
_RETURNED = {
    "content-type": "Content-Type",
    "inference-header-content-length": "Inference-Header-Content-Length",
}


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


class RefusalError(Exception):
    """A request the gateway answers itself, with this status and message."""

    def __init__(
        self, status: int, message: str, retry_after: int | None = None, revision: str = "-"
    ) -> None:
        super().__init__(message)
        self.status, self.retry_after, self.revision = status, retry_after, revision


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
        self.options = options or GatewayOptions()
        self.on_demand = on_demand
        self.is_ready: Callable[[], bool] = lambda: True  # routes known: worth sending to
        self._rng = rng or random.Random()  # noqa: S311 - load balancing, not secrets
        self._held: dict[str, int] = {}
        self._budget = RetryBudget(self.options.retry_ratio)
        self._upstream = UpstreamPool(self.options.request_timeout)
        self.last_request: dict[str, float] = {}
        self._stats: dict[tuple[str, str], RevisionStats] = {}
        self._mirrors: set[asyncio.Task[None]] = set()
        self._turns: dict[str, int] = {}  # round robin, per revision

    def reading(self, key: str, revision: str) -> Reading:
        """Cumulative counters of one revision, for the rollout analysis."""
        return self._revision_stats(key, revision).reading()

    def _revision_stats(self, key: str, revision: str) -> RevisionStats:
        stats = self._stats.get((key, revision))
        if stats is None:
            stats = self._stats[(key, revision)] = RevisionStats(self.metrics, key, revision)
        return stats

    def held(self, key: str) -> int:
        return self._held.get(key, 0)

    def load(self, name: str) -> LoadReport:
        """This gateway's load on every model it routes, as ``name`` reports it."""
        now = time.monotonic()
        models = {}
        for route in self.table.routes():
            last = self.last_request.get(route.key)
            models[route.key] = ModelLoad(
                held=self._held.get(route.key, 0),
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
        path = scope["path"]
        if path == "/v2/health/live":
            await _reply(send, 200, orjson.dumps({"live": True}))
        elif path == "/v2/health/ready":
            ready = self.is_ready()
            await _reply(send, 200 if ready else 503, orjson.dumps({"ready": ready}))
        elif path == "/v2":
            document = {"name": "modelplane-gateway", "version": __version__, "extensions": []}
            await _reply(send, 200, orjson.dumps(document))
        elif path == "/metrics":
            for route in self.table.routes():  # a revision's series exist before its traffic
                for revision in route.revisions:
                    self._revision_stats(route.key, revision.name)
            await _reply(send, 200, self.metrics.exposition(), b"text/plain; version=0.0.4")
        else:
            await self._served(path, scope, receive, send)

    async def _served(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Model requests, each from a caller who may read its model's namespace."""
        openai = path.startswith("/v1/")
        principal = ANYONE
        if self.authenticator.enabled:
            try:
                principal = self.authenticator.principal(_header(scope, b"authorization"))
            except AuthError as exc:
                self.metrics.refused.labels("", "unauthenticated").inc()
                await _refuse(send, exc, openai)
                return
        if path == "/v1/models" or path.startswith("/v1/models/"):
            await self._openai_models(path, send, principal)
        elif path in paths.OPENAI_PATHS and scope["method"] == "POST":
            await self._openai_request(path, scope, receive, send, principal)
        else:
            target = paths.parse(path)
            if target is None:
                await _reply(send, 404, _error(f"no route for {path}"))
            elif await self._allowed(send, principal, target.key, openai=False):
                await self._within_quota(target, scope, receive, send)

    async def _allowed(self, send: Send, principal: Principal, key: str, *, openai: bool) -> bool:
        """Whether ``principal`` may send requests to the model ``key``; if not, say so."""
        namespace = key.split("/", 1)[0]
        try:
            require(principal, Action.READ, namespace)
        except ForbiddenError as exc:
            self.metrics.refused.labels(namespace, "forbidden").inc()
            await _refuse(send, exc, openai)
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
            content = _openai_error(over.message, 429) if openai else _error(over.message)
            await _reply(send, 429, content, headers={"retry-after": str(over.retry_after)})
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

    async def _openai_models(self, path: str, send: Send, principal: Principal) -> None:
        """Every OpenAI model this gateway routes that the caller may use, named as clients
        address them."""
        models = {
            _openai_id(route.key): {
                "id": _openai_id(route.key),
                "object": "model",
                "created": 0,
                "owned_by": route.key.split("/", 1)[0],
            }
            for route in self.table.routes()
            if route.openai and principal.may(Action.READ, route.key.split("/", 1)[0])
        }
        if path == "/v1/models":
            listing = {"object": "list", "data": [models[k] for k in sorted(models)]}
            await _reply(send, 200, orjson.dumps(listing))
            return
        wanted = path.removeprefix("/v1/models/")
        found = models.get(_openai_id(routing.model_key(wanted)))
        if found is None:
            message = f"model {wanted!r} is not served by this gateway"
            await _reply(send, 404, _openai_error(message, 404, "model"))
        else:
            await _reply(send, 200, orjson.dumps(found))

    async def _openai_request(
        self, path: str, scope: Scope, receive: Receive, send: Send, principal: Principal
    ) -> None:
        """Find the model in the body; stream the answer if the client asked for a stream."""
        try:
            body = await _read_body(receive, self.options.max_request_bytes)
            document = orjson.loads(body)
        except RefusalError as refused:
            await _reply(send, refused.status, _openai_error(str(refused), refused.status))
            return
        except orjson.JSONDecodeError as exc:
            message = f"request body is not valid JSON: {exc}"
            await _reply(send, 400, _openai_error(message, 400))
            return
        model = document.get("model") if isinstance(document, dict) else None
        if not isinstance(model, str) or not model:
            message = "model: a model name is required, as a string"
            await _reply(send, 400, _openai_error(message, 400, "model"))
            return
        target = paths.openai(path, model, prompt_prefix(path, document))
        if not await self._allowed(send, principal, target.key, openai=True):
            return
        route = self.table.lookup(target.key)
        if route is not None and not route.openai:
            message = (
                f"model {model!r} does not speak the OpenAI API; "
                f"use /v2/models/{model}/infer (Open Inference Protocol v2)"
            )
            await _reply(send, 400, _openai_error(message, 400, "model"))
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
        for mirror in list(self._mirrors):
            mirror.cancel()
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
                body = await _read_body(receive, self.options.max_request_bytes)
            self.last_request[target.key] = time.monotonic()
            self._budget.request()
            headers = {
                k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in _FORWARDED
            }
            status, reply_headers, content, revision_name = await self._forward(
                target, scope["method"], body, headers
            )
        except RefusalError as refused:
            revision_name = refused.revision
            status, content, reply_headers = _refusal(refused, target)
        except Exception as exc:  # a bug here must cost one request, never the gateway
            log.exception("proxying to %s failed", target.key)
            status, content, reply_headers = _refusal(
                RefusalError(502, f"gateway error: {exc!r}"), target
            )
        self._account(target, revision_name, status, started)
        if status == 200 and target.action == "infer" and body is not None:
            self._maybe_mirror(target, revision_name, scope["method"], body, content)
        await _reply(send, status, content, headers=reply_headers)

    def _account(self, target: paths.ModelPath, revision: str, status: int, started: float) -> None:
        """A finished request in the metrics, the revision's analysis counters and its span."""
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
        self.last_request[target.key] = time.monotonic()
        self._budget.request()
        headers = {k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in _FORWARDED}
        if self._tracer is not None:
            propagate.inject(headers)
        tried: set[str] = set()
        status, revision = 502, "-"
        try:
            for attempt in range(1, self.options.max_attempts + 1):
                endpoint = await self._choose(target, tried)
                tried.add(endpoint.id)
                revision = endpoint.revision
                relayed = await self._relay(endpoint, target, body, headers, receive, send)
                if relayed is not None:
                    status = relayed
                    return
                if attempt == self.options.max_attempts or not self._budget.try_retry():
                    message = f"replica {endpoint.id} of {target.key} failed to answer"
                    raise RefusalError(502, message, revision=revision)
                self.metrics.retries.labels(target.key).inc()
        except RefusalError as refused:
            status, content, reply_headers = _refusal(refused, target)
            await _reply(send, status, content, headers=reply_headers)
        finally:
            self._account(target, revision, status, started)

    async def _relay(
        self,
        endpoint: Endpoint,
        target: paths.ModelPath,
        body: bytes,
        headers: dict[str, str],
        receive: Receive,
        send: Send,
    ) -> int | None:
        """One attempt: the status sent to the client, or None if the replica never answered
        (or answered 503) and another may be tried."""
        gone = asyncio.ensure_future(_disconnected(receive))
        answering = False  # once the status line went out, there is no retrying
        try:
            with self._outstanding(endpoint, target):
                async with self._upstream.stream(
                    endpoint.url, "POST", target.upstream(), headers, body
                ) as reply:
                    self._answered(endpoint, reply.status)
                    if reply.status == 503:
                        return None
                    returned = {_RETURNED[k]: v for k, v in reply.headers.items() if k in _RETURNED}
                    returned["X-Modelplane-Revision"] = endpoint.revision
                    raw = [(k.lower().encode(), v.encode("latin-1")) for k, v in returned.items()]
                    start = {"type": "http.response.start", "status": reply.status, "headers": raw}
                    await send(start)
                    answering = True
                    # The client leaving closes the replica stream, which stops the work there.
                    finished = await _relay_body(reply.chunks, gone, send)
                    return int(reply.status) if finished else 499
        except (UpstreamError, TimeoutError) as exc:
            log.info("replica %s failed: %r", endpoint.id, exc)
            self._failed(endpoint)
            if not answering:
                return None
            # Mid-stream: end it with an error event, as the runtime does, not a hung stream.
            message = f"replica {endpoint.id} of {target.key} failed mid-stream: {exc!r}"
            event = b"data: " + _openai_error(message, 502) + b"\n\n"
            await send({"type": "http.response.body", "body": event})
            return 502
        finally:
            gone.cancel()

    @contextlib.contextmanager
    def _outstanding(self, endpoint: Endpoint, target: paths.ModelPath) -> Iterator[None]:
        """An attempt in flight at a replica: counted for balancing and in the metrics."""
        in_flight = self.metrics.in_flight.labels(target.key, endpoint.revision)
        endpoint.outstanding += 1
        in_flight.inc()
        try:
            yield
        finally:
            endpoint.outstanding -= 1
            in_flight.dec()

    def _answered(self, endpoint: Endpoint, status: int) -> None:
        """A replica answered: 503 counts towards ejecting it, anything else clears its record."""
        if status == 503:
            self._failed(endpoint)
        else:
            endpoint.consecutive_failures = 0

    async def _forward(
        self, target: paths.ModelPath, method: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes, str]:
        tried: set[str] = set()
        avoid: str | None = None
        attempt = 0
        while True:
            attempt += 1
            endpoint = await self._choose(target, tried, avoid)
            tried.add(endpoint.id)
            on_trial = self._is_canary(target, endpoint.revision)  # as routed, not as answered
            started = time.perf_counter()
            if self._tracer is None:
                result = await self._attempt(endpoint, target, method, body, headers)
            else:
                result = await self._traced_attempt(
                    endpoint, target, method, body, headers, attempt
                )
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
            reply_headers["X-Modelplane-Revision"] = endpoint.revision
            return status, reply_headers, content, endpoint.revision

    async def _traced_attempt(
        self,
        endpoint: Endpoint,
        target: paths.ModelPath,
        method: str,
        body: bytes,
        headers: dict[str, str],
        attempt: int,
    ) -> tuple[int, dict[str, str], bytes] | None:
        assert self._tracer is not None
        sent = dict(headers)  # the client's trace context is replaced by this request's
        if not tracing.recording():  # unsampled: pass the decision on, make no span
            propagate.inject(sent)
            return await self._attempt(endpoint, target, method, body, sent)
        attributes = {
            names.ATTR_REVISION: endpoint.revision,
            names.ATTR_REPLICA: endpoint.id,
            names.ATTR_ATTEMPT: attempt,
        }
        with tracing.client_span(self._tracer, method, endpoint.url, sent, attributes) as span:
            result = await self._attempt(endpoint, target, method, body, sent)
            tracing.finish(span, result[0] if result else 502, None if result else "connection")
        return result

    def _is_canary(self, target: paths.ModelPath, revision: str) -> bool:
        route = self.table.lookup(target.key)
        return target.version is None and route is not None and route.canary == revision

    async def _choose(
        self, target: paths.ModelPath, tried: set[str], avoid: str | None = None
    ) -> Endpoint:
        """A replica for the request, holding it while the model has none ready."""
        deadline = time.monotonic() + self.options.hold_timeout
        holding = False
        held_since = 0.0
        try:
            while True:
                route = self.table.lookup(target.key)
                if route is None:
                    raise RefusalError(404, f"model {target.key!r} is not served by this gateway")
                if target.version is not None:
                    revision = route.revision(target.version)
                    if revision is None:
                        raise RefusalError(
                            404, f"model {target.key!r} has no revision {target.version!r}"
                        )
                else:
                    others = [r for r in route.revisions if r.name != avoid]
                    revision = pick_revision(others or route.revisions, self._rng)
                    if revision is None:
                        raise RefusalError(
                            503, f"model {target.key!r} has no revision taking traffic", 1
                        )
                endpoint = self._pick(target, revision, tried)
                if endpoint is not None:
                    if holding and self._tracer is not None:
                        waited = time.monotonic() - held_since
                        trace.get_current_span().set_attribute(names.ATTR_HELD_SECONDS, waited)
                    return endpoint
                if tried:  # a retry with every replica tried: no point holding
                    raise RefusalError(503, f"no other replica of {target.key!r} to retry on", 1)
                if not holding:
                    holding, held_since = self._hold(target.key), time.monotonic()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RefusalError(
                        503,
                        f"no ready replica of {target.key!r} within "
                        f"{self.options.hold_timeout:.0f}s",
                        1,
                    )
                self.on_demand(target.key)
                await self.table.wait_changed(min(remaining, 1.0))
        finally:
            if holding:
                self._held[target.key] -= 1
                self.metrics.held.labels(target.key).set(self._held[target.key])

    def _pick(
        self, target: paths.ModelPath, revision: RevisionRoute, tried: set[str]
    ) -> Endpoint | None:
        now, balancing = time.monotonic(), self.options.balancing
        if target.action != paths.OPENAI or balancing is Balancing.LEAST_OUTSTANDING:
            return pick_endpoint(revision.endpoints, now, self._rng, tried)
        if balancing is Balancing.ROUND_ROBIN:
            turn = self._turns[revision.name] = self._turns.get(revision.name, -1) + 1
            return pick_in_turn(revision.endpoints, now, turn, tried)
        if target.prefix is None:  # nothing worth caching: by load alone
            return pick_endpoint(revision.endpoints, now, self._rng, tried)
        return pick_by_prefix(revision.endpoints, now, target.prefix, tried)

    def _maybe_mirror(
        self, target: paths.ModelPath, served_by: str, method: str, body: bytes, answer: bytes
    ) -> None:
        """Mirror a share of answered requests to the canary, off the client's path."""
        route = self.table.lookup(target.key)
        shadow = route.shadow if route else None
        if shadow is None or served_by == shadow.revision or len(self._mirrors) >= MAX_MIRRORS:
            return
        if self._rng.random() * 100 >= shadow.percent:
            return
        mirror = asyncio.get_running_loop().create_task(
            self._mirror(target, shadow, method, body, answer)
        )
        self._mirrors.add(mirror)
        mirror.add_done_callback(self._mirrors.discard)

    async def _mirror(
        self, target: paths.ModelPath, shadow: Shadow, method: str, body: bytes, answer: bytes
    ) -> None:
        route = self.table.lookup(target.key)
        revision = route.revision(shadow.revision) if route else None
        endpoint = (
            pick_endpoint(revision.endpoints, time.monotonic(), self._rng) if revision else None
        )
        if endpoint is None:
            return
        headers = {"content-type": "application/json"}
        with contextlib.ExitStack() as spans:
            if self._tracer is not None and tracing.recording():
                attributes = {
                    names.ATTR_REVISION: shadow.revision,
                    names.ATTR_REPLICA: endpoint.id,
                    names.ATTR_SHADOW: True,
                }
                spans.enter_context(
                    tracing.client_span(self._tracer, method, endpoint.url, headers, attributes)
                )
            try:
                reply = await self._upstream.request(
                    endpoint.url, method, target.upstream(), headers, body
                )
            except (UpstreamError, TimeoutError):
                return  # a failing canary shows in its own error rate, not here
        if reply.status == 200:
            score = disagreement(shadow.task, answer, reply.body)
            if score is not None:
                self._revision_stats(target.key, shadow.revision).compare(score)

    def _hold(self, key: str) -> bool:
        if self._held.get(key, 0) >= self.options.max_held:
            raise RefusalError(503, f"too many requests waiting for {key!r} to start", 1)
        self._held[key] = self._held.get(key, 0) + 1
        self.metrics.held.labels(key).set(self._held[key])
        self.on_demand(key)
        return True

    async def _attempt(
        self,
        endpoint: Endpoint,
        target: paths.ModelPath,
        method: str,
        body: bytes,
        headers: dict[str, str],
    ) -> tuple[int, dict[str, str], bytes] | None:
        try:
            with self._outstanding(endpoint, target):
                reply = await self._upstream.request(
                    endpoint.url, method, target.upstream(), headers, body
                )
        except (UpstreamError, TimeoutError) as exc:
            log.info("replica %s failed: %r", endpoint.id, exc)
            self._failed(endpoint)
            return None
        self._answered(endpoint, reply.status)
        returned = {_RETURNED[k]: v for k, v in reply.headers.items() if k in _RETURNED}
        return reply.status, returned, reply.body

    def _failed(self, endpoint: Endpoint) -> None:
        endpoint.consecutive_failures += 1
        if endpoint.consecutive_failures >= self.options.eject_after:
            endpoint.ejected_until = time.monotonic() + self.options.eject_seconds


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise RefusalError(499, "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RefusalError(413, f"request body exceeds the gateway's limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _relay_body(chunks: AsyncIterator[bytes], gone: asyncio.Future[None], send: Send) -> bool:
    """Pass a streamed body on as it arrives; False if the client left before its end."""
    pending = aiter(chunks)
    while True:
        chunk: asyncio.Future[bytes | None] = asyncio.ensure_future(anext(pending, None))
        either: set[asyncio.Future[Any]] = {chunk, gone}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not chunk.done():
            chunk.cancel()
            return False
        data = chunk.result()
        if data is None:
            await send({"type": "http.response.body", "body": b""})
            return True
        await send({"type": "http.response.body", "body": data, "more_body": True})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _error(message: str) -> bytes:
    return orjson.dumps({"error": message})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _refuse(send: Send, error: AuthError, openai: bool) -> None:
    """401 (with the challenge) or 403, in the shape the client's protocol expects."""
    status = 401 if isinstance(error, UnauthenticatedError) else 403
    body = _openai_error(str(error), status) if openai else _error(str(error))
    challenge = {"www-authenticate": 'Bearer realm="modelplane"'} if status == 401 else None
    await _reply(send, status, body, headers=challenge)


_OPENAI_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_exceeded",
    400: "invalid_request_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
}


def _openai_error(message: str, status: int, param: str | None = None) -> bytes:
    """The OpenAI API's error object, which its clients raise as their own exceptions."""
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    code = "model_not_found" if status == 404 else None
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def _openai_id(key: str) -> str:
    """How a client names a model: bare in the default namespace, else ``namespace/name``."""
    namespace, name = key.split("/", 1)
    return name if namespace == routing.DEFAULT_NAMESPACE else key


def _refusal(refused: RefusalError, target: paths.ModelPath) -> tuple[int, bytes, dict[str, str]]:
    status = refused.status
    if target.action == paths.OPENAI:
        content = _openai_error(str(refused), status, "model" if status == 404 else None)
    else:
        content = _error(str(refused))
    headers = {"Content-Type": "application/json"}
    if refused.retry_after is not None:
        headers["Retry-After"] = str(refused.retry_after)
    return status, content, headers


async def _reply(
    send: Send,
    status: int,
    content: bytes,
    content_type: bytes = b"application/json",
    headers: dict[str, str] | None = None,
) -> None:
    raw = [(b"content-length", str(len(content)).encode())]
    if headers:
        raw += [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]
    if not headers or "Content-Type" not in headers:
        raw.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": content})
