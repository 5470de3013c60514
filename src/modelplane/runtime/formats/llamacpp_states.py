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
    """States by the adapter they were made with and the tokens they hold, least recently used
    first out once over ``capacity`` bytes. A state made with one LoRA adapter (or none) is
    worth nothing to a prompt of another: its keys and values differ."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._states: OrderedDict[tuple[str, tuple[int, ...]], Any] = OrderedDict()
        self._size = 0

    def longest(self, prompt: Sequence[int], adapter: str = "") -> Found | None:
        """The state that holds the longest start of ``prompt``, if any holds some."""
        best: Found | None = None
        for (made_with, tokens), state in self._states.items():
            shared = shared_prefix(tokens, prompt) if made_with == adapter else 0
            if shared and (best is None or shared > best.shared):
                best = Found(tokens, state, shared)
        if best is not None:
            self._states.move_to_end((adapter, best.tokens))
        return best

    def put(self, tokens: Sequence[int], state: Any, adapter: str = "") -> None:
        key = (adapter, tuple(tokens))
        # A state whose tokens start the new one's is worth no more than it: drop it.
        for held in [
            k for k in self._states if k[0] == adapter and shared_prefix(k[1], key[1]) == len(k[1])
        ]:
            self._size -= ctypes.sizeof(self._states.pop(held))
        size = ctypes.sizeof(state)
        if size > self.capacity:
            return
        self._states[key] = state
        self._size += size
        while self._size > self.capacity:
            _, oldest = self._states.popitem(last=False)
            self._size -= ctypes.sizeof(oldest)
