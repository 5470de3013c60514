"""Scorers modelplane ships for the evaluation gate's ``metric: scorer``: each judges one
generated answer against what was expected and returns a number in [0, 1]. Name them in a
Model as ``modelplane.scoring:contains`` or ``modelplane.scoring:token_f1``.

``expected`` is the text a good answer holds, or a list of acceptable texts (the best of them
counts), as many reference answers as a question has. These are plain functions with no
imports of ours, the shape a team's own scorer takes.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def contains(answer: str, expected: object) -> float:
    """1 when an expected text appears in the answer, ignoring case and how words are spaced
    (for answers that are right but say more than the reference: "The capital is Paris.")."""
    said = _spaced(answer)
    return 1.0 if any(_spaced(text) in said for text in _references(expected)) else 0.0


def token_f1(answer: str, expected: object) -> float:
    """The F1 of the words the answer and an expected text share, SQuAD style: lower case,
    without punctuation and articles; partial credit for a partly right answer."""
    said = _words(answer)
    return max(_f1(said, _words(text)) for text in _references(expected))


def _references(expected: object) -> list[str]:
    if isinstance(expected, list) and expected:
        return [str(text) for text in expected]
    return [str(expected)]


def _spaced(text: str) -> str:
    return " ".join(text.casefold().split())


def _words(text: str) -> list[str]:
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split()


def _f1(said: list[str], reference: list[str]) -> float:
    if not said or not reference:
        return 1.0 if said == reference else 0.0
    shared = sum((Counter(said) & Counter(reference)).values())
    if not shared:
        return 0.0
    precision, recall = shared / len(said), shared / len(reference)
    return 2 * precision * recall / (precision + recall)
