"""How many model tokens an OpenAI API request may use, and how many its answer says it used
(read from the answer as it passes to the client), for the tokens-per-minute quota and the
platform's usage record; and how fast a generated answer came, for the rollout analysis.

A whole reply carries a ``usage`` object. A stream from modelplane's runtime ends with a
``: usage {...}`` line, an SSE comment, which clients ignore; engines that do not send it may send
``usage`` in a data event (``stream_options.include_usage``); with neither, each data event
counts as one token, the least it can have cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import Message, Send

USAGE_COMMENT = b": usage "
_USAGE_FIELDS = (b'"usage":{', b'"usage": {')
BYTES_PER_TOKEN = 4  # a prompt's size in tokens, from above, without the model's tokenizer
UNSTATED_MAX_TOKENS = 256  # reserved for an answer whose request names no max_tokens
NO_TOKENS = (0, 0)
# A finished request, as the platform's usage record takes it: the model's key, the revision
# that answered (or failed), the status, and the prompt and completion tokens the answer used.
Answered = Callable[[str, str, int, int, int], None]


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


def answer_tokens(body: bytes) -> tuple[int, int]:
    """Prompt and completion tokens a whole reply says it used (0 for what it does not say)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return NO_TOKENS
    usage = document.get("usage") if isinstance(document, dict) else None
    return _count(usage, "prompt_tokens") or 0, _count(usage, "completion_tokens") or 0


def _count(usage: Any, name: str) -> int | None:
    found = usage.get(name) if isinstance(usage, dict) else None
    return found if isinstance(found, int) else None


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
        self.prompt: int | None = None  # input tokens, as the stream says
        self.completion: int | None = None  # output tokens, as the stream says
        self._events = 0

    def feed(self, chunk: bytes) -> None:
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if line.startswith(USAGE_COMMENT):
                self._said(_json(line[len(USAGE_COMMENT) :]))
            elif line.startswith(b"data: {"):
                self._events += 1
                if any(f in line for f in _USAGE_FIELDS):
                    found = _json(line[len(b"data: ") :])
                    if isinstance(found, dict) and found.get("usage"):
                        self._said(found["usage"])

    def _said(self, usage: Any) -> None:
        self._reported = _total(usage)
        self.prompt = _count(usage, "prompt_tokens")
        self.completion = _count(usage, "completion_tokens")

    @property
    def reported(self) -> int | None:
        """What the stream said it used, if it said so."""
        return self._reported

    @property
    def total(self) -> int:
        return self._reported if self._reported is not None else self._events

    def used(self) -> tuple[int, int]:
        """Prompt and completion tokens: as said, else none read and one per data event."""
        if self.completion is None:
            return self.prompt or 0, self._events
        return self.prompt or 0, self.completion


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


class GenerationClock:
    """Watches a streamed generation pass to the client: when its first token came (the runtime
    sends nothing before it has one), and, from the usage it ends with, the time per output
    token after the first."""

    def __init__(self, started: float) -> None:
        self._started = started  # time.perf_counter() when the request came
        self._first: float | None = None
        self._tokens = StreamTokens()

    def watching(self, send: Send) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                if self._first is None:
                    self._first = time.perf_counter()
                self._tokens.feed(message["body"])
            await send(message)

        return sending

    def used(self) -> tuple[int, int]:
        """The prompt and completion tokens of the stream watched."""
        return self._tokens.used()

    def timings(self) -> tuple[float | None, float | None]:
        """Seconds to the first token, and per output token after it (None: not known)."""
        if self._first is None:
            return None, None
        made = self._tokens.completion
        per_token = (time.perf_counter() - self._first) / (made - 1) if made and made > 1 else None
        return self._first - self._started, per_token


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
