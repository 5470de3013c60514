"""Shadow traffic: how far a canary's answers are from the stable revision's, on the same input.

A share of the stable revision's requests is mirrored to the canary after the client has its
answer; the two v2 responses are compared by task, each comparison giving a disagreement between
0 (same answer) and 1 (different): label mismatch rate for classification, relative error for
regression, cosine distance for embeddings.
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


def disagreement(task: str, stable: bytes, canary: bytes) -> float | None:
    """0..1, or None when the answers cannot be compared (no JSON data, different shapes)."""
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
