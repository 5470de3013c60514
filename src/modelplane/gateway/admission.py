"""Admission: whether a request may reach a replica at all. Who sends it (API key or OIDC
token), whether they may read its model's namespace, and whether the namespace is within its
quota (requests per second, concurrency, and for the OpenAI API a token reservation settled to
what the answer used). Each refusal is a domain error, counted by reason; the proxy answers it.
"""

from __future__ import annotations

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

    def within_quota(
        self, namespace: str, send: Send, reserve: int | None = None, streaming: bool = False
    ) -> _Place:
        """Hold a request's place in ``namespace``'s quota while it runs (from before its body
        is read: a slow upload holds its place too); QuotaExceededError, with when to retry, if
        there is none. ``reserve``: the tokens it may use. Entered, it gives the ``send`` to
        answer through, which meters the answer's tokens where the namespace counts them. A
        class, not a generator: it runs on every request."""
        return _Place(self, namespace, send, reserve, streaming)


class _Place:
    __slots__ = ("admission", "meter", "namespace", "reserve", "send", "streaming")

    def __init__(
        self, admission: Admission, namespace: str, send: Send, reserve: int | None, streaming: bool
    ) -> None:
        self.admission, self.namespace, self.send = admission, namespace, send
        self.reserve, self.streaming = reserve, streaming
        self.meter: TokenMeter | None = None

    async def __aenter__(self) -> Send:
        admission, namespace = self.admission, self.namespace
        over = admission.quotas.admit(namespace, self.reserve)
        if over is not None:
            admission.metrics.refused.labels(namespace, "quota").inc()
            raise QuotaExceededError(over.message, over.retry_after)
        if self.reserve is None:
            return self.send
        self.meter = TokenMeter(self.streaming)
        return self.meter.watching(self.send)

    async def __aexit__(self, *_: object) -> None:
        quotas = self.admission.quotas
        quotas.release(self.namespace)
        if self.meter is not None and self.reserve is not None:
            quotas.charge(self.namespace, self.meter.used(self.reserve) - self.reserve)
