"""The prompt prefix of a generative request: what prefix-aware balancing hashes.

A conversation's next turn repeats its history and adds to the end, so its start names the
conversation and the KV cache it warmed. For chat, the start is the head of every message up to
and including the first user message: the system prompt alone would send every conversation that
shares it to one replica, while with the first question conversations spread and each stays put
(a replica's prompt cache still shares a system prompt between the conversations it holds). For
completions it is the first ``PREFIX_CHARS`` characters of the prompt. A prompt shorter than
``MIN_CHARS`` has nothing worth caching and is balanced by load alone.
"""

from __future__ import annotations

from typing import Any

PREFIX_CHARS = 1024
HEAD_CHARS = 256  # of each message up to the first user message
MIN_CHARS = 32
_ROLE, _END = "\x1f", "\x1e"  # separators no client text contains in practice


def prompt_prefix(path: str, document: dict[str, Any]) -> bytes | None:
    """The prefix of a chat or completion request's prompt, or None if it has none worth it."""
    if path == "/v1/chat/completions":
        text = _conversation(document.get("messages"))
    elif path == "/v1/completions":
        prompt = document.get("prompt")
        if isinstance(prompt, list) and prompt:
            prompt = prompt[0]
        text = prompt if isinstance(prompt, str) else ""
    else:
        return None
    if len(text) < MIN_CHARS:
        return None
    return text[:PREFIX_CHARS].encode()


def _conversation(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    parts: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        parts.append(f"{role}{_ROLE}{_content(message.get('content'))[:HEAD_CHARS]}{_END}")
        if role == "user":
            break
    return "".join(parts)


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        texts = (p.get("text") for p in content if isinstance(p, dict))
        return "".join(t for t in texts if isinstance(t, str))  # the runtime judges the rest
    return ""
