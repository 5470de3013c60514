"""The prompt prefix of a generative request: what prefix-aware balancing hashes.

A conversation's next turn repeats its history and adds to the end, so its start names the
conversation and the KV cache it warmed. For chat, the start is the head of every message up to
and including the first user message: the system prompt alone would send every conversation that
shares it to one replica, while with the first question conversations spread and each stays put
(a replica's prompt cache still shares a system prompt between the conversations it holds). For
completions it is the first ``PREFIX_CHARS`` characters of the prompt. A prompt shorter than
``MIN_CHARS`` has nothing worth caching and is balanced by load alone.

Engine-aware balancing looks further: :func:`prompt_blocks` cuts the whole prompt into blocks of
``BLOCK_CHARS`` characters and chains their hashes (each block's hash covers every block before
it), so two prompts share their first n hashes exactly when they share their first n blocks,
whichever conversation they belong to: a shared system prompt, a conversation's earlier turns.
"""

from __future__ import annotations

import hashlib
from typing import Any

from modelplane.gateway.engine_state import BLOCK_CHARS

PREFIX_CHARS = 1024
HEAD_CHARS = 256  # of each message up to the first user message
MIN_CHARS = 32
_ROLE, _END = "\x1f", "\x1e"  # separators no client text contains in practice


def prompt_prefix(path: str, document: dict[str, Any]) -> bytes | None:
    """The prefix of a chat or completion request's prompt, or None if it has none worth it."""
    if path == "/v1/chat/completions":
        text = _conversation(document.get("messages"))
    elif path == "/v1/completions":
        text = _prompt(document.get("prompt"))
    else:
        return None
    if len(text) < MIN_CHARS:
        return None
    return text[:PREFIX_CHARS].encode()


def prompt_blocks(path: str, document: dict[str, Any]) -> tuple[bytes, ...]:
    """The chained hashes of the whole blocks of a chat or completion request's prompt."""
    if path == "/v1/chat/completions":
        text = _conversation(document.get("messages"), whole=True)
    elif path == "/v1/completions":
        text = _prompt(document.get("prompt"))
    else:
        return ()
    hashes: list[bytes] = []
    chained = b""
    for start in range(0, len(text) - BLOCK_CHARS + 1, BLOCK_CHARS):
        block = text[start : start + BLOCK_CHARS].encode()
        chained = hashlib.blake2b(chained + block, digest_size=8).digest()
        hashes.append(chained)
    return tuple(hashes)


def _prompt(prompt: Any) -> str:
    if isinstance(prompt, list) and prompt:
        prompt = prompt[0]
    return prompt if isinstance(prompt, str) else ""


def _conversation(messages: Any, *, whole: bool = False) -> str:
    if not isinstance(messages, list):
        return ""
    parts: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role, content = message.get("role"), _content(message.get("content"))
        parts.append(f"{role}{_ROLE}{content if whole else content[:HEAD_CHARS]}{_END}")
        if role == "user" and not whole:
            break
    return "".join(parts)


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        texts = (p.get("text") for p in content if isinstance(p, dict))
        return "".join(t for t in texts if isinstance(t, str))  # the runtime judges the rest
    return ""
