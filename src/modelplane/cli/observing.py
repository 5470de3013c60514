"""Logging and tracing for the server commands, set up one way for all of them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import typer

from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.telemetry import logs, otlp_metrics, tracing

LogFormat = Annotated[str, typer.Option(help="json (one object per line, with trace ids) or text.")]


@contextlib.contextmanager
def observed(service: str, level: str, log_format: str) -> Iterator[None]:
    """Logs in ``log_format``; traces and OTLP metrics as the OTEL_* environment asks
    (``service`` unless OTEL_SERVICE_NAME names one), flushed on the way out."""
    try:
        logs.configure(level, log_format)
    except ValueError as exc:
        raise CliError(f"--log-format: {exc}", exit_code=EXIT_USAGE) from exc
    provider = tracing.configure(service)
    try:
        metrics = otlp_metrics.start(service)
    except Exception:
        if provider is not None:
            provider.shutdown()
        raise
    try:
        yield
    finally:
        if metrics is not None:
            metrics.stop()
        if provider is not None:
            provider.shutdown()
