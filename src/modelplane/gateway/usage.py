"""How many model tokens an OpenAI API request may use, and how many its answer says it used
(read from the answer as it passes to the client), for the tokens-per-minute quota.

A whole reply carries a ``usage`` object. A stream from modelplane's runtime ends with a
``: usage {...}`` line, an SSE comment, which clients ignore; engines that do not send it may send
``usage`` in a data event (``stream_options.include_usage``); with neither, each data event
counts as one token, the least it can have cost.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import Message, Send

USAGE_COMMENT = b": usage "
_USAGE_FIELDS = (b'"usage":{', b'"usage": {')
BYTES_PER_TOKEN = 4  # a prompt's size in tokens, from above, without the model's tokenizer
UNSTATED_MAX_TOKENS = 256  # reserved for an answer whose request names no max_tokens


def reservation(path: str, body: bytes, document: dict[str, Any]) -> int:
    """The tokens a request may use: its body's bytes / 4 for the prompt, and its max_tokens."""
    prompt = len(body) // BYTES_PER_TOKEN
    if path.endswith("/embeddings"):
        return prompt
    stated = document.get("max_tokens", document.get("max_completion_tokens"))
    most = stated if isinstance(stated, int) and stated > 0 else UNSTATED_MAX_TOKENS
    return prompt + most


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
    def reported(self) -> int | None:
        """What the stream said it used, if it said so."""
        return self._reported

    @property
    def total(self) -> int:
        return self._reported if self._reported is not None else self._events


class TokenMeter:
    """Watches what is sent to the client and says what the answer used."""

    def __init__(self, streaming: bool) -> None:
        self._stream = StreamTokens() if streaming else None
        self._whole = bytearray()

    def watching(self, send: Send) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                if self._stream is not None:
                    self._stream.feed(chunk)
                else:
                    self._whole += chunk
            await send(message)

        return sending

    def used(self, reserved: int) -> int:
        """The tokens used; a stream that ended before saying (a client that left) is held to
        its reservation, or to its events if it sent more."""
        if self._stream is None:
            return reply_tokens(bytes(self._whole))
        if self._stream.reported is not None:
            return self._stream.reported
        return max(reserved, self._stream.total)


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
