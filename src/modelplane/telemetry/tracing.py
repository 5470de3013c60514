"""Tracing hooks. Spans go to whatever TracerProvider the process configured; with none, the
OpenTelemetry API's no-op tracer makes them free."""

from __future__ import annotations

from opentelemetry import trace

INSTRUMENTATION = "modelplane"


def tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    return trace.get_tracer(INSTRUMENTATION, tracer_provider=provider)
