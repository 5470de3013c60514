"""Tracing hooks. Spans go to the process's configured TracerProvider; with none configured,
components get no tracer at all and skip span bookkeeping on their hot paths."""

from __future__ import annotations

from opentelemetry import trace

INSTRUMENTATION = "modelplane"


def tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer | None:
    """The modelplane tracer, or None when no SDK provider is configured (tracing is off)."""
    chosen = provider or trace.get_tracer_provider()
    if isinstance(chosen, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return chosen.get_tracer(INSTRUMENTATION)
