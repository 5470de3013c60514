"""Saved KV states of llama.cpp sequences, kept in memory up to a budget, so that a prompt that
starts like one (the next turn of a conversation, a shared system prompt) reads only the rest,
even after the slot that held it was given to another request. Used by ``llamacpp_slots.py``.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def shared_prefix(first: Sequence[int], second: Sequence[int]) -> int:
    """How many tokens ``first`` and ``second`` share from their start."""
    count = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        count += 1
    return count


@dataclass(frozen=True)
class Found:
    tokens: tuple[int, ...]  # the sequence the state holds
    state: Any  # a ctypes byte array, as llama.cpp wrote it
    shared: int  # tokens of the prompt it holds


class SavedStates:
    """States by the tokens they hold, least recently used first out once over ``capacity``
    bytes."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._states: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._size = 0

    def longest(self, prompt: Sequence[int]) -> Found | None:
        """The state that holds the longest start of ``prompt``, if any holds some."""
        best: Found | None = None
        for tokens, state in self._states.items():
            shared = shared_prefix(tokens, prompt)
            if shared and (best is None or shared > best.shared):
                best = Found(tokens, state, shared)
        if best is not None:
            self._states.move_to_end(best.tokens)
        return best

    def put(self, tokens: Sequence[int], state: Any) -> None:
        key = tuple(tokens)
        # A state whose tokens start the new one's is worth no more than it: drop it.
        for held in [k for k in self._states if shared_prefix(k, key) == len(k)]:
            self._size -= ctypes.sizeof(self._states.pop(held))
        size = ctypes.sizeof(state)
        if size > self.capacity:
            return
        self._states[key] = state
        self._size += size
        while self._size > self.capacity:
            _, oldest = self._states.popitem(last=False)
            self._size -= ctypes.sizeof(oldest)
