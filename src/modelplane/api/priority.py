"""A request's priority in a gateway's waiting room, set per API key or per namespace (its
quota): ``interactive`` (the default) is served before ``batch`` and shed after it. Shared by
the quota and key stores that keep it and the gateway that orders by it."""

from __future__ import annotations

from enum import StrEnum


class Priority(StrEnum):
    INTERACTIVE = "interactive"
    BATCH = "batch"

    @property
    def rank(self) -> int:
        """Higher is served first and shed last."""
        return _RANKS[self]

    @classmethod
    def named(cls, name: str) -> Priority:
        """The priority called ``name``; ValueError naming the known ones otherwise."""
        try:
            return cls(name.strip().lower())
        except ValueError:
            known = ", ".join(p.value for p in cls)
            raise ValueError(f"unknown priority {name!r}; priorities are {known}") from None


_RANKS = {Priority.INTERACTIVE: 1, Priority.BATCH: 0}
DEFAULT_PRIORITY = Priority.INTERACTIVE
