"""The source a new revision records: the spec's moving reference (an OCI tag, an MLflow alias,
a hub branch) resolved once, when the revision is made, never again while it lives.

Resolving asks the store, so it belongs to observing: both backends ask :class:`SourcePins`
before they plan, and ``control.plan`` records what it found (or, when the store cannot say,
makes no revision and reports ``ArtifactUnavailable`` while the previous revision serves).
A failure is asked again with backoff, not at every pass.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from modelplane.api import Model, Source, revision_digest
from modelplane.artifacts import Limits, default_cache_dir
from modelplane.artifacts.credentials import credentials_env
from modelplane.artifacts.isolated import fetch_in_child
from modelplane.artifacts.references import moving
from modelplane.control.revisions import RevisionRef, select_revision
from modelplane.errors import ArtifactError

FIRST_RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 300.0

Resolve = Callable[[Model], Awaitable[str]]  # the immutable URI, or an ArtifactError


@dataclass(frozen=True)
class Pin:
    source: Source | None  # resolved; None while it cannot be
    why: str = ""  # why not
    retry_at: float = 0.0
    backoff: float = FIRST_RETRY_SECONDS


class SourcePins:
    def __init__(self, resolve: Resolve, clock: Callable[[], float] = time.monotonic) -> None:
        self._resolve, self._clock = resolve, clock
        self._pins: dict[tuple[str, str], Pin] = {}

    async def observe(
        self, model: Model, stored: Sequence[RevisionRef]
    ) -> tuple[Source | None, str]:
        """What a new revision of ``model`` would record, or why it cannot be made yet; nothing
        when ``model`` makes no new revision or names no moving reference."""
        if not moving(model.spec.source.uri) or not select_revision(model, stored)[1]:
            return None, ""
        key = (model.key, revision_digest(model.spec))
        pin = self._pins.get(key)
        if pin is None or (pin.source is None and self._clock() >= pin.retry_at):
            pin = self._pins[key] = await self._pin(model, pin)
        return pin.source, pin.why

    def retry_in(self, model: Model) -> float | None:
        """Seconds until an unresolved source of ``model`` is asked again; None: nothing waits."""
        waiting = [
            p.retry_at for (k, _), p in self._pins.items() if k == model.key and p.source is None
        ]
        return max(0.0, min(waiting) - self._clock()) if waiting else None

    def forget(self, key: str) -> None:
        for pinned in [k for k in self._pins if k[0] == key]:
            del self._pins[pinned]

    async def _pin(self, model: Model, before: Pin | None) -> Pin:
        source = model.spec.source
        try:
            uri = await self._resolve(model)
        except ArtifactError as exc:
            backoff = before.backoff * 2 if before else FIRST_RETRY_SECONDS
            backoff = min(backoff, MAX_RETRY_SECONDS)
            return Pin(None, str(exc), self._clock() + backoff, backoff)
        return Pin(source.model_copy(update={"uri": uri}))


Credentials = Callable[[Model], AbstractAsyncContextManager[dict[str, str]]]


def resolver(credentials: Credentials) -> Resolve:
    """Resolve with ``modelplane fetch --resolve`` in a child given the variables
    ``credentials`` finds for a Model (a Secret on a cluster, a credentials file embedded), for
    as long as the child runs."""

    async def resolve(model: Model) -> str:
        async with credentials(model) as env:
            found = await asyncio.to_thread(
                fetch_in_child, model, env, default_cache_dir(), Path.cwd(), Limits(), True
            )
        return found.source

    return resolve


@asynccontextmanager
async def embedded_credentials(model: Model) -> AsyncIterator[dict[str, str]]:
    yield credentials_env(model.spec.source)


resolve_embedded = resolver(embedded_credentials)
