"""Logging, access logs and tracing for the server commands, set up one way for all of them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import typer

from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.telemetry import access, logs, otlp_metrics, tracing
from modelplane.telemetry.access import AccessLogSettings

LogFormat = Annotated[str, typer.Option(help="json (one object per line, with trace ids) or text.")]
AccessLogOption = Annotated[
    bool,
    typer.Option(
        "--access-log/--no-access-log",
        help="A line per request answered (logger modelplane.access), whatever the log level.",
    ),
]
AccessLogSampleOption = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="The fraction of requests answered below 500 that get an access line; every 5xx "
        "gets one.",
    ),
]


@contextlib.contextmanager
def observed(
    service: str, level: str, log_format: str, access_log: AccessLogSettings | None = None
) -> Iterator[None]:
    """Logs in ``log_format``, access lines too if ``access_log`` is on; traces and OTLP
    metrics as the OTEL_* environment asks (``service`` unless OTEL_SERVICE_NAME names one),
    flushed on the way out."""
    try:
        logs.configure(level, log_format)
    except ValueError as exc:
        raise CliError(f"--log-format: {exc}", exit_code=EXIT_USAGE) from exc
    if access_log is not None and access_log.enabled:
        access.enable()
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
