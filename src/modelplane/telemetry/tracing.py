"""Tracing: configured by the standard ``OTEL_*`` variables, free when they ask for nothing.

``configure`` builds an SDK TracerProvider when the environment asks for traces
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_TRACES_EXPORTER``), exporting over OTLP by ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``
(``http/protobuf``, the default, or ``grpc``); the resource comes from ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES``, the sampler from ``OTEL_TRACES_SAMPLER[_ARG]``. With none of them
set, components get no tracer at all and skip span bookkeeping on their hot paths.

Spans follow the HTTP semantic conventions; ``server_span`` and ``client_span`` are the two
shapes the gateway and the runtime share, W3C trace context in and out.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelplane.errors import ModelplaneError
from modelplane.telemetry import names

INSTRUMENTATION = "modelplane"
PROTOCOLS = ("http/protobuf", "grpc")


class TracingConfigError(ModelplaneError):
    """The OTEL_* environment asks for something modelplane cannot do."""


def tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer | None:
    """The modelplane tracer, or None when no SDK provider is configured (tracing is off)."""
    chosen = provider or trace.get_tracer_provider()
    if isinstance(chosen, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return chosen.get_tracer(INSTRUMENTATION)


def configure(service_name: str) -> Any:
    """Set the global TracerProvider from the environment; the provider (to shut down at
    exit, which flushes), or None when the environment asks for no traces."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    chosen = env.get("OTEL_TRACES_EXPORTER")
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if chosen is None and not endpoint:
        return None
    exporters = [e.strip() for e in (chosen or "otlp").split(",") if e.strip()]
    if exporters in ([], ["none"]):
        return None

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    # The sampler comes from OTEL_TRACES_SAMPLER.
    provider = TracerProvider(resource=resource(service_name))
    for name in exporters:
        if name == "otlp":
            exporter: Any = _otlp_exporter()
        elif name == "console":
            exporter = ConsoleSpanExporter()
        else:
            raise TracingConfigError(
                f"OTEL_TRACES_EXPORTER={chosen!r}: modelplane exports traces with otlp, "
                "console or none"
            )
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def resource(service_name: str) -> Any:
    """The OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES resource; ``service_name`` where
    neither names the service."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    env = os.environ
    named = "OTEL_SERVICE_NAME" in env or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    return Resource.create({} if named else {SERVICE_NAME: service_name})


def otlp_protocol(signal: str) -> str:
    """``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL``, else ``OTEL_EXPORTER_OTLP_PROTOCOL``, else
    ``http/protobuf``; one modelplane can export with, or a clear error."""
    env = os.environ
    protocol = (
        env.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol not in PROTOCOLS:
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: supported are {', '.join(PROTOCOLS)}"
        )
    return protocol


def _otlp_exporter() -> Any:
    if otlp_protocol("TRACES") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter()


# -- span shapes -------------------------------------------------------------------------------

_MODELS = "/v2/models/"
_ACTIONS = ("ready", "infer")
_OPENAI = frozenset({"/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings"})
_FIXED = frozenset({"/v2", "/openapi.json"})


def v2_route(path: str) -> str:
    """The low-cardinality ``http.route`` of a path: v2 names and versions as templates, the
    OpenAI API's paths as they are (they name no model)."""
    if path.startswith("/v1/"):
        if path.startswith("/v1/models/"):
            return "/v1/models/{model}"
        return path if path in _OPENAI else "other"
    if not path.startswith(_MODELS):
        fixed = path.startswith(("/v2/health", "/metrics")) or path in _FIXED
        return path if fixed else "other"
    parts = [p for p in path[len(_MODELS) :].split("/") if p]
    action = f"/{parts.pop()}" if parts and parts[-1] in _ACTIONS else ""
    version = ""
    if len(parts) >= 3 and parts[-2] == "versions":  # [namespace/]name/versions/v
        version, parts = "/versions/{version}", parts[:-2]
    if not 1 <= len(parts) <= 2:  # name, or namespace/name
        return "other"
    return "/v2/models/{model}" + version + action


_CONTEXT_HEADERS = (b"traceparent", b"tracestate", b"baggage")


def _context_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Only the headers the propagators read: most requests carry none of them."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in raw if k in _CONTEXT_HEADERS}


def recording() -> bool:
    """Whether the current span is sampled: child spans of an unsampled request are not made
    at all (they would not be sampled either, and each costs tens of microseconds)."""
    return trace.get_current_span().is_recording()


def start_server_span(
    tracer: trace.Tracer, method: str, path: str, headers: Iterable[tuple[bytes, bytes]]
) -> tuple[Span, object]:
    """A SERVER span for one HTTP request, continuing the caller's trace (``traceparent``),
    made current; end it with ``end_span``. Not a context manager: on a request of a few
    hundred microseconds the generator machinery of one is measurable."""
    route = v2_route(path)
    carrier = _context_headers(headers)
    attributes = {
        names.HTTP_REQUEST_METHOD: method,
        names.HTTP_ROUTE: route,
        names.URL_PATH: path,
    }
    span = tracer.start_span(
        f"{method} {route}", context=propagate.extract(carrier) if carrier else None,
        kind=SpanKind.SERVER, attributes=attributes, record_exception=False,
        set_status_on_exception=False,
    )  # fmt: skip
    return span, otel_context.attach(trace.set_span_in_context(span))


def end_span(span: Span, token: object) -> None:
    otel_context.detach(token)  # type: ignore[arg-type]
    span.end()


def finish(span: Span, status: int, error: str | None = None) -> None:
    """Record the response on a server or client span: 5xx (and a failed attempt) is an error."""
    if not span.is_recording():
        return
    span.set_attribute(names.HTTP_RESPONSE_STATUS_CODE, status)
    if status >= 500 or error is not None:
        span.set_attribute(names.ERROR_TYPE, error or str(status))
        span.set_status(Status(StatusCode.ERROR))


@contextmanager
def client_span(
    tracer: trace.Tracer,
    method: str,
    url: str,
    headers: MutableMapping[str, str],
    attributes: dict[str, Any],
) -> Iterator[Span]:
    """A CLIENT span for one outgoing request; ``headers`` gain its trace context."""
    parts = urlsplit(url)  # IPv6 hosts come bracketed: [fd00::1]:8080
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with tracer.start_as_current_span(
        method, kind=SpanKind.CLIENT, record_exception=False, set_status_on_exception=False,
        attributes={
            names.HTTP_REQUEST_METHOD: method, names.SERVER_ADDRESS: parts.hostname or "",
            names.SERVER_PORT: port, **attributes,
        },
    ) as span:  # fmt: skip
        propagate.inject(headers)
        yield span


# Probes and scrapes: machine-made, many times a minute per replica, and no one's request; a
# span for each would bury the requests in a tracing backend.
UNTRACED_PATHS = ("/v2/health/", "/metrics")


class TracingMiddleware:
    """ASGI middleware: a SERVER span for every HTTP request to ``app`` but probes and scrapes
    (``UNTRACED_PATHS``)."""

    def __init__(self, app: ASGIApp, tracer: trace.Tracer) -> None:
        self.app, self.tracer = app, tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNTRACED_PATHS):
            await self.app(scope, receive, send)
            return
        status = 500  # unless the app answers

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        span, token = start_server_span(
            self.tracer, scope["method"], scope["path"], scope["headers"]
        )
        try:
            await self.app(scope, receive, sending)
        finally:
            finish(span, status)
            end_span(span, token)
