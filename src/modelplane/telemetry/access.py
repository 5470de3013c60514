"""Access logging: one line per HTTP request answered, written once the answer is complete.

The runtime and the gateway wrap their ASGI app with :func:`logged`, as their command's
``--access-log`` and ``--access-log-sample`` say. Lines go to the ``modelplane.access`` logger,
so they can be filtered or routed apart, at INFO whatever the process's log level (:func:`enable`):
they are a record of traffic, not a diagnostic. Each carries method, route (the template, as on
spans: ``/v2/models/{model}/infer``), status, duration_ms, bytes (of the response body), model
and revision where known, and trace_id and span_id where the request has a trace. The ids are
read while the request's span is current, or from its ``traceparent`` when tracing is off, and
passed as fields: when the line is written, the span has ended.

Probes and scrapes get no line, as they get no span. Of the answers below 500 a ``sample``
fraction is written; a 5xx always is. A line's fields are built only when it is written.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelplane.telemetry.tracing import UNTRACED_PATHS, v2_route

LOGGER = "modelplane.access"
SERVED = "modelplane.served"  # the scope key of a request's Served, for the app to fill in
CLIENT_GONE = 499  # nginx's status for a request whose client left before the answer

log = logging.getLogger(LOGGER)


@dataclass(frozen=True)
class AccessLogSettings:
    enabled: bool = True
    sample: float = 1.0  # the fraction of answers below 500 written; every 5xx is


@dataclass
class Served:
    """What served one request, as the app learns it: the gateway names the model and the
    revision it routed to; the runtime's are known from the start."""

    model: str = ""
    revision: str = ""


def note(scope: Scope, model: str, revision: str = "") -> None:
    """Name the model (and the revision) a request went to, for its access line; nothing when
    access logging is off."""
    served = scope.get(SERVED)
    if served is not None:
        served.model = model
        if revision:
            served.revision = revision


def enable() -> None:
    """Let access lines through whatever the log level: ``modelplane up`` logs at warning."""
    log.setLevel(logging.INFO)


def logged(
    app: ASGIApp, settings: AccessLogSettings, model: str = "", revision: str = ""
) -> ASGIApp:
    """``app`` writing an access line per request, or ``app`` itself when the log is off."""
    if not settings.enabled:
        return app
    return AccessLog(app, settings.sample, Served(model, revision))


class _Answer:
    """One request's answer as it goes out: its status, body size, whether its line is written
    and the trace ids that line carries."""

    __slots__ = ("ids", "size", "status", "written")

    def __init__(self) -> None:
        self.status, self.size, self.written = 0, 0, False
        self.ids: tuple[str, str] | None = None


class AccessLog:
    """ASGI middleware writing the access line of every HTTP request but probes and scrapes."""

    def __init__(self, app: ASGIApp, sample: float, served: Served) -> None:
        self.app, self.sample, self.served = app, sample, served
        self._chance: Callable[[], float] = random.Random().random  # noqa: S311 - sampling

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNTRACED_PATHS):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        served = scope[SERVED] = Served(self.served.model, self.served.revision)
        answer = _Answer()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.body":
                answer.size += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                self._answered(answer, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if not answer.status:
                self._answered(answer, 500)
            raise
        finally:
            if not answer.status:  # the client left first
                self._answered(answer, CLIENT_GONE)
            if answer.written:
                _write(scope, served, answer, time.perf_counter() - started)

    def _answered(self, answer: _Answer, status: int) -> None:
        """Decide on the line when the status is known, and take the span's ids while it is
        current."""
        answer.status = status
        sampled = status >= 500 or self.sample >= 1.0 or self._chance() < self.sample
        answer.written = sampled and log.isEnabledFor(logging.INFO)
        if answer.written:
            answer.ids = _current_ids()


def _write(scope: Scope, served: Served, answer: _Answer, seconds: float) -> None:
    method, route = scope["method"], v2_route(scope["path"])
    fields: dict[str, Any] = {
        "method": method,
        "route": route,
        "status": answer.status,
        "duration_ms": round(seconds * 1000, 3),
        "bytes": answer.size,
    }
    if served.model:
        fields["model"] = served.model
    if served.revision:
        fields["revision"] = served.revision
    ids = answer.ids or _caller_ids(scope)
    if ids is not None:
        fields["trace_id"], fields["span_id"] = ids
    log.info("%s %s %d", method, route, answer.status, extra={"fields": fields})


def _current_ids() -> tuple[str, str] | None:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _caller_ids(scope: Scope) -> tuple[str, str] | None:
    """The trace and span of the caller's ``traceparent`` (``00-<trace>-<span>-<flags>``), for
    a server that makes no span of its own."""
    for key, value in scope["headers"]:
        if key == b"traceparent":
            parts = value.decode("latin-1").split("-")
            valid = len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16
            if valid and _hex(parts[1]) and _hex(parts[2]):
                return parts[1].lower(), parts[2].lower()
            return None
    return None


def _hex(text: str) -> bool:
    """Hex digits, not all zero (the W3C format's invalid value)."""
    return all(c in _HEX for c in text) and text.strip("0") != ""


_HEX = frozenset("0123456789abcdefABCDEF")
