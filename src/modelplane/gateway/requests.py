"""A model request as the gateway carries it from admission to forwarding: one value instead of
parameter lists, built once its body has been read (the OpenAI API names the model inside)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.types import Scope

from modelplane.api.priority import DEFAULT_PRIORITY, Priority
from modelplane.gateway import paths

# Client headers a replica gets: content negotiation and the trace context.
FORWARDED = (b"content-type", b"inference-header-content-length", b"traceparent", b"tracestate")


@dataclass(frozen=True, slots=True)
class ProxyRequest:
    target: paths.ModelPath
    method: str  # as asked of a replica (HEAD as GET)
    headers: dict[str, str]  # forwarded to the replica
    body: bytes
    streaming: bool = False  # the client asked for server-sent events
    reserve: int | None = None  # tokens held from the namespace's budget until answered
    priority: Priority = DEFAULT_PRIORITY  # while it waits for a saturated model
    tenant: str = ""  # the namespace it waits as (its model's, unless the client names one)
    started: float = field(default_factory=time.perf_counter)

    @property
    def openai(self) -> bool:
        return self.target.action == paths.OPENAI


def proxy_request(
    scope: Scope,
    target: paths.ModelPath,
    body: bytes,
    streaming: bool = False,
    reserve: int | None = None,
    priority: Priority = DEFAULT_PRIORITY,
    tenant: str = "",
) -> ProxyRequest:
    headers = {k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in FORWARDED}
    method = upstream_method(scope["method"])
    tenant = tenant or target.namespace
    return ProxyRequest(target, method, headers, body, streaming, reserve, priority, tenant)


def upstream_method(method: str) -> str:
    """HEAD is asked of a replica as GET: the server drops the body on the client's side, while
    an answer to a proxied HEAD would declare a body that never comes."""
    return "GET" if method == "HEAD" else method
