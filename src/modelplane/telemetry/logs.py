"""Process logging: JSON lines for machines (the default of the server commands), or text for
people. A JSON line logged while a span is current carries its ``trace_id`` and ``span_id``, so
a log line leads to its trace and back. A record may carry ``fields`` (``extra={"fields": …}``,
as access lines do): keys of their own in JSON, ``key=value`` after the message in text; ids
among them win over the current span's."""

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
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


class TextFormatter(logging.Formatter):
    """For people: a record's fields follow its message as ``key=value``, so an access line
    reads the same in both formats."""

    def __init__(self) -> None:
        super().__init__(TEXT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if not fields:
            return text
        return text + "".join(f" {key}={value}" for key, value in fields.items())


def configure(level: str, log_format: str) -> None:
    """Root logging to stderr at ``level`` in ``log_format`` (json or text); every library
    logger (uvicorn's included, given ``log_config=None``) goes through it."""
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r}: choose json or text")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def logger_of(line: str) -> str:
    """The logger that wrote a log line, JSON or text; '' for a line no logger wrote."""
    if line.startswith("{"):
        try:
            found = orjson.loads(line)
        except orjson.JSONDecodeError:
            return ""
        name = found.get("logger") if isinstance(found, dict) else None
        return name if isinstance(name, str) else ""
    parts = line.split(" ", 4)  # date time,ms LEVEL name: message
    return parts[3].removesuffix(":") if len(parts) == 5 and parts[3].endswith(":") else ""


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
