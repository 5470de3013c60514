"""Keeping a cache of one kind of object current: list, then watch from the list's version.
The cluster gateway follows Models, EndpointSlices, Namespaces (their quotas) and its own peers
this way; the operator, Namespaces (their replica caps)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient

from modelplane.backends.kubernetes.observed import Body, as_dict

log = logging.getLogger(__name__)

RELIST_SECONDS = 2.0
WATCH_SECONDS = 300


async def follow(
    client: AsyncClient,
    resource: Any,
    namespace: str | None,  # "*": every namespace; None for a cluster-wide kind
    labels: dict[str, Any] | None,
    replace: Callable[[str, list[Body]], None],
    event: Callable[[str, Body], None],
    listed: asyncio.Event,
) -> None:
    """``replace`` the cache with a list, then hand it each watch ``event``; on any error, list
    again: a fresh list is the only way to learn what was deleted while the watch was down.
    ``listed`` is set once the first list is in."""
    while True:
        try:
            found = client.list(resource, namespace=namespace, labels=labels)
            replace(namespace or "*", [as_dict(item) async for item in found])
            listed.set()
            async for event_type, item in client.watch(
                resource,
                namespace=namespace,
                labels=labels,
                resource_version=found.resourceVersion,
                server_timeout=WATCH_SECONDS,
            ):
                event(event_type, as_dict(item))
        except (ApiError, httpx2.HTTPError) as exc:
            log.warning("watching %s: %s; listing again", resource.__name__, exc)
            await asyncio.sleep(RELIST_SECONDS)
        except Exception:  # a broken line, a bug: the cache must not freeze for good
            log.exception("following %s failed; listing again", resource.__name__)
            await asyncio.sleep(RELIST_SECONDS)
