"""Process logging: JSON lines for machines (the default of the server commands), or text for
people. A JSON line logged while a span is current carries its ``trace_id`` and ``span_id``, so
a log line leads to its trace and back."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry import trace

FORMATS = ("json", "text")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            line["trace_id"] = format(context.trace_id, "032x")
            line["span_id"] = format(context.span_id, "016x")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure(level: str, log_format: str) -> None:
    """Root logging to stderr at ``level`` in ``log_format`` (json or text); every library
    logger (uvicorn's included, given ``log_config=None``) goes through it."""
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r}: choose json or text")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def message_of(line: str) -> str:
    """The message of a log line, JSON or text."""
    if line.startswith("{"):
        try:
            found = orjson.loads(line)
        except orjson.JSONDecodeError:
            return line
        message = found.get("message") if isinstance(found, dict) else None
        if isinstance(message, str):
            return message
    return line
