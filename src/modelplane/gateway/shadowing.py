"""Shadow traffic: how far a canary's answers are from the stable revision's, on the same input.

A share of the stable revision's requests is mirrored to the canary after the client has its
answer; the two answers are compared, each comparison giving a disagreement between 0 (same
answer) and 1 (different) and the name of its measure. Open Inference Protocol v2 answers by
task: label mismatch rate for classification, relative error for regression, cosine distance
for embeddings. OpenAI API answers: cosine distance for embeddings; for generated text, exact
match where the request is greedy with a seed (temperature 0 and a seed: the same revision would
say the same again), else what sampled text can be compared on: whether both stopped for the
same reason, and how close their lengths are (half each).
"""

from __future__ import annotations

import math
from typing import Any

import orjson


def first_output(body: bytes) -> list[float] | None:
    """The first output tensor's flat data of a JSON v2 response, or None if there is none."""
    try:
        document: Any = orjson.loads(body)
        data = document["outputs"][0]["data"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return None
    return data if isinstance(data, list) else None


EXACT = "exact match"
SAMPLED = "finish reason and length ratio"
COSINE = "cosine distance"
BY_TASK = {"classification": "label mismatch", "regression": "relative error", "embedding": COSINE}


def compare(
    path: str, request: bytes, task: str, stable: bytes, canary: bytes
) -> tuple[float, str] | None:
    """(disagreement 0..1, its measure), or None when the answers cannot be compared. ``path``:
    an OpenAI API path, or "" for a v2 inference."""
    if not path:
        score = disagreement(task, stable, canary)
        return (score, BY_TASK[task]) if score is not None else None
    a, b = _json(stable), _json(canary)
    if path.endswith("/embeddings"):
        return _embeddings(a, b)
    return _generated(_json(request), a, b)


def _embeddings(a: Any, b: Any) -> tuple[float, str] | None:
    try:
        pairs = list(zip(a["data"], b["data"], strict=True))
        distances = [_cosine_distance(x["embedding"], y["embedding"]) for x, y in pairs]
    except (KeyError, TypeError, ValueError):
        return None
    return (sum(distances) / len(distances), COSINE) if distances else None


def _generated(request: Any, a: Any, b: Any) -> tuple[float, str] | None:
    try:
        first, second = a["choices"][0], b["choices"][0]
        said, other = _text(first), _text(second)
    except (KeyError, IndexError, TypeError):
        return None
    if said is None or other is None:
        return None
    texts = (said, other)
    if (
        isinstance(request, dict)
        and request.get("temperature") == 0
        and isinstance(request.get("seed"), int)
    ):
        return (0.0 if texts[0] == texts[1] else 1.0), EXACT
    lengths = [_length(answer, text) for answer, text in zip((a, b), texts, strict=True)]
    ratio = min(lengths) / max(lengths) if max(lengths) else 1.0
    stopped_alike = first.get("finish_reason") == second.get("finish_reason")
    return 0.5 * (not stopped_alike) + 0.5 * (1 - ratio), SAMPLED


def _text(choice: Any) -> str | None:
    message = choice.get("message")
    text = message.get("content") if isinstance(message, dict) else choice.get("text")
    return text if isinstance(text, str) else None


def _length(answer: Any, text: str) -> int:
    """Output tokens where the answer says, else characters."""
    usage = answer.get("usage")
    made = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return made if isinstance(made, int) else len(text)


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def disagreement(task: str, stable: bytes, canary: bytes) -> float | None:
    """0..1 between two v2 answers, or None when they cannot be compared (no JSON data,
    different shapes)."""
    a, b = first_output(stable), first_output(canary)
    if a is None or b is None or len(a) != len(b) or not a:
        return None
    try:
        if task == "classification":
            return sum(x != y for x, y in zip(a, b, strict=True)) / len(a)
        if task == "regression":
            errors = [min(1.0, abs(x - y) / max(abs(x), 1e-9)) for x, y in zip(a, b, strict=True)]
            return sum(errors) / len(errors)
        if task == "embedding":
            return _cosine_distance(a, b)
    except TypeError:
        return None
    return None


def _cosine_distance(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    if norms == 0:
        return 0.0 if a == b else 1.0
    return max(0.0, min(1.0, 1 - dot / norms))
