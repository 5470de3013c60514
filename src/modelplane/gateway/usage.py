"""How many model tokens an OpenAI API answer used, read from the answer as it passes, for the
tokens-per-minute quota.

A whole reply carries a ``usage`` object. A stream from modelplane's runtime ends with a
``: usage {...}`` line, an SSE comment, which clients ignore; engines that do not send it may send
``usage`` in a data event (``stream_options.include_usage``); with neither, each data event
counts as one token, the least it can have cost.
"""

from __future__ import annotations

from typing import Any

import orjson

USAGE_COMMENT = b": usage "
_USAGE_FIELDS = (b'"usage":{', b'"usage": {')


def reply_tokens(body: bytes) -> int:
    """Tokens a whole (non-streamed) reply says it used; 0 if it does not say."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0
    return _total(document.get("usage")) if isinstance(document, dict) else 0


def _total(usage: Any) -> int:
    if not isinstance(usage, dict):
        return 0
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    parts = (usage.get("prompt_tokens"), usage.get("completion_tokens"))
    return sum(p for p in parts if isinstance(p, int))


class StreamTokens:
    """Fed a stream's bytes as they pass; ``total`` is what the stream says it used."""

    def __init__(self) -> None:
        self._partial = b""  # a line not yet ended
        self._reported: int | None = None
        self._events = 0

    def feed(self, chunk: bytes) -> None:
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if line.startswith(USAGE_COMMENT):
                self._reported = _total(_json(line[len(USAGE_COMMENT) :]))
            elif line.startswith(b"data: {"):
                self._events += 1
                if any(f in line for f in _USAGE_FIELDS):
                    found = _json(line[len(b"data: ") :])
                    if isinstance(found, dict) and found.get("usage"):
                        self._reported = _total(found["usage"])

    @property
    def total(self) -> int:
        return self._reported if self._reported is not None else self._events


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
