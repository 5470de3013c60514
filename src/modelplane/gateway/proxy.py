"""The gateway: a plain ASGI app that dispatches each request. Its own paths (health, metrics,
its description, 405) are answered by :mod:`~modelplane.gateway.own_routes`; a model request is
read into a :class:`~modelplane.gateway.requests.ProxyRequest`, admitted
(:mod:`~modelplane.gateway.admission`: who, may they, within quota) and forwarded
(:mod:`~modelplane.gateway.forwarding`: replicas, retries, accounting). Refusals are domain
errors until this module answers them, in one place (:func:`~modelplane.gateway.replies.refuse`),
in the client's protocol.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import orjson
from opentelemetry import trace
from starlette.types import Receive, Scope, Send

from modelplane.api.counters import RequestCounts, RevisionCounts
from modelplane.api.load import LoadReport, ModelLoad
from modelplane.api.meta import DNS_LABEL
from modelplane.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    ModelplaneError,
    ReplicaFailedError,
)
from modelplane.gateway import openapi, paths, replies
from modelplane.gateway.activator import Activator
from modelplane.gateway.admission import Admission
from modelplane.gateway.attempts import Attempts
from modelplane.gateway.balancing import Balancing
from modelplane.gateway.engine_polling import EnginePolling
from modelplane.gateway.flow_control import FlowControl, FlowOptions
from modelplane.gateway.forwarding import Forwarding
from modelplane.gateway.mirroring import Mirroring
from modelplane.gateway.own_routes import OwnRoutes, not_allowed
from modelplane.gateway.prefix import prompt_blocks, prompt_prefix
from modelplane.gateway.quotas import Quotas
from modelplane.gateway.requests import ProxyRequest, proxy_request
from modelplane.gateway.routing import RoutingTable
from modelplane.gateway.scoring import EngineWeights, has_room, room_left
from modelplane.gateway.stats import RevisionStats, ServedStats
from modelplane.gateway.upstream import UpstreamPool
from modelplane.gateway.usage import (
    NO_TOKENS,
    Answered,
    GenerationClock,
    answer_tokens,
    reservation,
)
from modelplane.processes import cancel_all
from modelplane.security.authn import Authenticator
from modelplane.security.roles import Principal
from modelplane.telemetry import access, names, tracing
from modelplane.telemetry.gateway_metrics import GatewayMetrics

log = logging.getLogger(__name__)

TENANT_HEADER = b"x-modelplane-tenant"
_NAMESPACE = re.compile(DNS_LABEL)


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
    balancing: Balancing = Balancing.ENGINE  # for chat and completion requests
    engine_weights: EngineWeights = field(default_factory=EngineWeights)  # engine balancing's
    flow: FlowOptions = field(default_factory=FlowOptions)  # waiting for a saturated model


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
        self.admission = Admission(self.authenticator, self.quotas, metrics)
        self._tracer = tracer or tracing.tracer()  # None: tracing off, no span work at all
        self.options = options = options or GatewayOptions()
        self.on_demand = on_demand
        # Told of every request a revision answered (or failed), with its tokens: the usage record.
        self.on_answered: Answered = lambda key, revision, status, prompt, completion: None
        self.is_ready: Callable[[], bool] = lambda: True  # routes known: worth sending to
        self._rng = rng or random.Random()  # noqa: S311 - load balancing, not secrets
        self._upstream = UpstreamPool(options.request_timeout)
        self._stats: dict[tuple[str, str], RevisionStats] = {}
        self._activator = Activator(
            table, metrics, options.hold_timeout, options.max_held, options.balancing, self._rng,
            lambda key: self.on_demand(key), traced=self._tracer is not None,
            weights=options.engine_weights,
        )  # fmt: skip
        self._polling: asyncio.Task[None] | None = None  # engine states, under engine balancing
        self.flow = FlowControl(options.flow, metrics, self._has_room)
        attempts = Attempts(
            self._upstream, metrics, self._tracer, options.eject_after, options.eject_seconds
        )
        self.forwarding = Forwarding(
            table, self._activator, attempts, metrics, self._revision_stats,
            options.max_attempts, options.retry_ratio, traced=self._tracer is not None,
            answered=lambda *finished: self.on_answered(*finished), flow=self.flow,
        )  # fmt: skip
        self.last_request = self.forwarding.last_request
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

    def served(self, key: str) -> RequestCounts:
        """Cumulative counts of one Model's requests as its clients saw them, for its SLO."""
        return self.forwarding.served.setdefault(key, ServedStats()).reading()

    def _revision_stats(self, key: str, revision: str) -> RevisionStats:
        stats = self._stats.get((key, revision))
        if stats is None:
            stats = self._stats[(key, revision)] = RevisionStats(self.metrics, key, revision)
        return stats

    def held(self, key: str) -> int:
        """Requests held for the model: for a cold start, or waiting while it is saturated
        (demand the autoscaler counts as in flight)."""
        return self._activator.held.get(key, 0) + self.flow.waiting(key)

    def load(self, name: str) -> LoadReport:
        """This gateway's load on every model it routes, as ``name`` reports it."""
        now = time.monotonic()
        models = {}
        for route in self.table.routes():
            last = self.last_request.get(route.key)
            models[route.key] = ModelLoad(
                held=self.held(route.key),
                idle_seconds=max(now - last, 0.0) if last is not None else None,
                in_flight={
                    r.name: sum(e.outstanding for e in r.endpoints) for r in route.revisions
                },
                failed_adapters=self.failed_adapters(route.key),
            )
        return LoadReport(gateway=name, models=models)

    def failed_adapters(self, key: str) -> dict[str, str]:
        """Why the LoRA adapters of ``key`` that its replicas could not load failed, as they
        last reported; adapters no longer listed are left out."""
        route = self.table.lookup(key)
        if route is None:
            return {}
        return {
            name: why
            for revision in route.revisions
            for endpoint in revision.endpoints
            for name, why in endpoint.failed_adapters.items()
            if name in route.adapters
        }

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
            try:
                await self._model_path(path, scope, receive, send)
            except ModelplaneError as refused:  # before any replica: answered here, in one place
                await replies.refuse(send, refused, path.startswith("/v1/"))

    async def _model_path(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        principal = self.admission.principal(replies.header(scope, b"authorization"))
        if path == paths.MODELS or path.startswith(paths.MODELS + "/"):
            await self._own.models(path, send, principal)
            return
        if path in paths.OPENAI_PATHS:
            request = await self._openai_request(path, scope, receive, principal)
            namespace, reserve = request.target.namespace, request.reserve
            async with self.admission.within_quota(
                namespace, send, reserve, request.streaming
            ) as replying:
                await self._traced(request, scope, receive, replying)
            return
        target = paths.parse(path)
        if target is None:
            await replies.reply(send, 404, replies.error_shape(f"no route for {path}"))
            return
        access.note(scope, target.key)
        self.admission.authorize(principal, target.key)
        async with self.admission.within_quota(target.namespace, send) as replying:
            body = await replies.read_body(scope, receive, self.options.max_request_bytes)
            await self._traced(proxy_request(scope, target, body), scope, receive, replying)

    async def _openai_request(
        self, path: str, scope: Scope, receive: Receive, principal: Principal
    ) -> ProxyRequest:
        """The request, with its model found in the body."""
        body = await replies.read_body(scope, receive, self.options.max_request_bytes)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequestError(f"request body is not valid JSON: {exc}") from exc
        model = document.get("model") if isinstance(document, dict) else None
        if not isinstance(model, str) or not model:
            raise InvalidRequestError("model: a model name is required, as a string", "model")
        blocks = prompt_blocks(path, document) if self._engine_aware else ()
        target = paths.openai(path, model, prompt_prefix(path, document), blocks)
        route = self.table.lookup(target.key)
        parent = self.table.adapter_parent(target.key) if route is None else None
        if parent is not None:  # a LoRA adapter: its Model's replicas serve it
            target = replace(target, key=parent.key, name=parent.name, adapter=target.name)
            route = parent
        access.note(scope, target.key)
        self.admission.authorize(principal, target.key)
        if route is None:
            raise ModelNotFoundError(self._own.not_served(model, target.namespace))
        if not route.openai:  # not among the API's models, as /v1/models
            raise ModelNotFoundError(
                f"model {model!r} does not speak the OpenAI API; "
                f"use /v2/models/{model}/infer (Open Inference Protocol v2)"
            )
        counting = self.quotas.counts_tokens(target.namespace)
        reserve = reservation(path, body, document) if counting else None
        tenant = self._tenant(scope, principal) or target.namespace
        priority = principal.priority or self.quotas.priority(tenant)
        streaming = document.get("stream") is True
        return proxy_request(scope, target, body, streaming, reserve, priority, tenant)

    def _tenant(self, scope: Scope, principal: Principal) -> str | None:
        """The namespace a client says it sends for (``X-Modelplane-Tenant``), one it may read:
        its requests wait as that namespace's, with its priority, for a model of another."""
        named = replies.header(scope, TENANT_HEADER)
        if named is None:
            return None
        if len(named) > 63 or not _NAMESPACE.fullmatch(named):
            raise InvalidRequestError(
                f"X-Modelplane-Tenant: {named!r} is not a namespace name (lowercase letters, "
                "digits and '-', at most 63)"
            )
        self.admission.authorize(principal, f"{named}/")
        return named

    async def _traced(
        self, request: ProxyRequest, scope: Scope, receive: Receive, send: Send
    ) -> None:
        handle = self._stream if request.streaming else self._whole
        if self._tracer is None:
            await handle(request, scope, receive, send)
            return
        span, token = tracing.start_server_span(
            self._tracer, scope["method"], scope["path"], scope["headers"]
        )
        try:
            span.set_attribute(names.ATTR_MODEL, request.target.key)
            if request.openai and span.is_recording():
                span.set_attribute(names.GEN_AI_REQUEST_MODEL, request.target.key)
            await handle(request, scope, receive, send)
        finally:
            tracing.end_span(span, token)

    async def _whole(
        self, request: ProxyRequest, scope: Scope, receive: Receive, send: Send
    ) -> None:
        revision = "-"
        try:
            (status, headers, content), revision = await self.forwarding.whole(request, receive)
        except Exception as exc:  # a bug here must cost one request, never the gateway
            if not isinstance(exc, ModelplaneError):
                log.exception("proxying to %s failed", request.target.key)
            if isinstance(exc, ReplicaFailedError):
                revision = exc.revision
            status, content, headers = replies.refusal(exc, request.openai)
        tokens = answer_tokens(content) if status == 200 and request.openai else NO_TOKENS
        self.forwarding.account(scope, request, revision, status, tokens)
        if status == 200 and request.target.action in ("infer", paths.OPENAI):
            self.forwarding.generated_whole(request, revision, tokens[1])
            self._mirroring.offer(request.target, revision, scope["method"], request.body, content)
        await replies.reply(send, status, content, headers=headers)

    async def _stream(
        self, request: ProxyRequest, scope: Scope, receive: Receive, send: Send
    ) -> None:
        clock = GenerationClock(request.started)
        status, revision = 502, "-"
        try:
            status, revision = await self.forwarding.stream(request, receive, clock.watching(send))
        except ModelplaneError as refused:
            if isinstance(refused, ReplicaFailedError):
                revision = refused.revision
            status, content, headers = replies.refusal(refused, request.openai)
            await replies.reply(send, status, content, headers=headers)
        finally:
            self.forwarding.account(scope, request, revision, status, clock.used())
            if status == 200:
                self.forwarding.generated_stream(request, revision, clock)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @property
    def _engine_aware(self) -> bool:
        return self.options.balancing is Balancing.ENGINE

    def start(self) -> None:
        """Start what runs beside the requests: under engine balancing, the engine poller."""
        if self._engine_aware and self._polling is None:
            polling = EnginePolling(self.table, self._upstream, on_polled=self._polled)
            self._polling = asyncio.get_running_loop().create_task(polling.run(), name="poll")

    def _has_room(self, key: str) -> bool:
        """Whether a replica of the model ``key`` may take a request now, by its report (or
        for want of a fresh one)."""
        route = self.table.lookup(key)
        if route is None:
            return True  # gone: the request learns so when it tries
        now, weights = time.monotonic(), self.options.engine_weights
        endpoints = route.endpoints()
        return not endpoints or any(has_room(e, now, weights) for e in endpoints)

    def _polled(self) -> None:
        """Replicas just reported: let as many waiting requests through as they have room."""
        now, weights = time.monotonic(), self.options.engine_weights
        for key in list(self.flow.rooms):
            route = self.table.lookup(key)
            if route is None:
                continue
            endpoints = route.endpoints()
            free = sum(room_left(endpoint, now, weights) for endpoint in endpoints)
            free -= self.flow.passing(key)
            if free > 0:
                self.flow.release(key, free)

    async def close(self) -> None:
        self._mirroring.cancel()
        if self._polling is not None:
            await cancel_all([self._polling])
            self._polling = None
        await self._upstream.close()
