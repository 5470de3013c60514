"""Admission: whether a request may reach a replica at all. Who sends it (API key or OIDC
token), whether they may read its model's namespace, and whether the namespace is within its
quota (requests per second, concurrency, and for the OpenAI API a token reservation settled to
what the answer used). Each refusal is a domain error, counted by reason; the proxy answers it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.types import Send

from modelplane.errors import AuthError, ForbiddenError, QuotaExceededError
from modelplane.gateway.quotas import Quotas
from modelplane.gateway.usage import TokenMeter
from modelplane.security.authn import Authenticator, require
from modelplane.security.roles import ANYONE, Action, Principal
from modelplane.telemetry.gateway_metrics import GatewayMetrics


class Admission:
    def __init__(
        self, authenticator: Authenticator, quotas: Quotas, metrics: GatewayMetrics
    ) -> None:
        self.authenticator, self.quotas, self.metrics = authenticator, quotas, metrics

    def principal(self, authorization: str | None) -> Principal:
        """Who sends the request (anyone, with authentication off)."""
        if not self.authenticator.enabled:
            return ANYONE
        try:
            return self.authenticator.principal(authorization)
        except AuthError:
            self.metrics.refused.labels("", "unauthenticated").inc()
            raise

    def authorize(self, principal: Principal, key: str) -> None:
        """ForbiddenError unless ``principal`` may send requests to the model ``key``."""
        namespace = key.split("/", 1)[0]
        try:
            require(principal, Action.READ, namespace)
        except ForbiddenError:
            self.metrics.refused.labels(namespace, "forbidden").inc()
            raise

    @asynccontextmanager
    async def within_quota(
        self, namespace: str, send: Send, reserve: int | None = None, streaming: bool = False
    ) -> AsyncIterator[Send]:
        """Hold a request's place in ``namespace``'s quota while it runs (from before its body
        is read: a slow upload holds its place too); QuotaExceededError, with when to retry, if
        there is none. ``reserve``: the tokens it may use. Yields the ``send`` to answer
        through, which meters the answer's tokens where the namespace counts them."""
        over = self.quotas.admit(namespace, reserve)
        if over is not None:
            self.metrics.refused.labels(namespace, "quota").inc()
            raise QuotaExceededError(over.message, over.retry_after)
        meter = TokenMeter(streaming) if reserve is not None else None
        try:
            yield meter.watching(send) if meter is not None else send
        finally:
            self.quotas.release(namespace)
            if meter is not None and reserve is not None:
                self.quotas.charge(namespace, meter.used(reserve) - reserve)
