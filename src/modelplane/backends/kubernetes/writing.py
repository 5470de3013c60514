"""Every call the operator makes to the Kubernetes API, through one boundary: server-side apply
with the ``modelplane`` field manager, creates (revisions, events), deletes and lists; each write
counted in the operator's metrics; lightkube's ``ApiError`` turned into the error tree, so the
reconciler decides by an error's permanence, never by a status code.

409 (a conflict, or an object made by a pass that crashed before its watch event), 429 and 5xx
pass: they come back with ``retry_after``. Any other refusal is permanent for the same request:
the Model asks for something the server will not take.

With leader election on, every write first asks the ``Leading`` guard (an in-memory timestamp,
no call), so a process whose lease went stale writes nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.codecs import from_dict
from lightkube.types import PatchType

from modelplane.api import API_VERSION, KIND, Model, ObjectMeta
from modelplane.backends.kubernetes.children import MANAGER
from modelplane.backends.kubernetes.observed import Body, as_dict
from modelplane.control.rollout import Event
from modelplane.errors import KubernetesError, NotFoundError
from modelplane.telemetry.operator_metrics import OperatorMetrics

log = logging.getLogger(__name__)

PASSING = frozenset({409, 429, 500, 502, 503, 504})
RETRY_SECONDS = 2.0
LIST_ATTEMPTS = 10


def kubernetes_error(exc: ApiError, doing: str) -> KubernetesError | NotFoundError:
    """``exc`` in the error tree; ``doing``: what was asked, for the message."""
    code = int(exc.status.code or 0)
    message = f"{doing}: {exc.status.message or exc}"
    if code == 404:
        return NotFoundError(message)
    return KubernetesError(message, code, RETRY_SECONDS if code in PASSING else None)


@asynccontextmanager
async def translated(doing: str) -> AsyncIterator[None]:
    """Raise the API server's refusals, and a server that does not answer, as the tree's."""
    try:
        yield
    except ApiError as exc:
        raise kubernetes_error(exc, doing) from exc
    except httpx2.TransportError as exc:  # lightkube's transport, not the gateway's httpx
        raise KubernetesError(f"{doing}: {exc!r}", 0, RETRY_SECONDS) from exc


class Leading(Protocol):
    def check(self) -> None:
        """Raise (a retryable ``KubernetesError``) unless this process may write now."""


class ClusterWrites:
    def __init__(
        self, client: AsyncClient, telemetry: OperatorMetrics, leading: Leading | None = None
    ) -> None:
        self.client, self.telemetry, self.leading = client, telemetry, leading
        self.made = 0  # writes that reached the server, for a deposed leader's last word

    async def apply(self, resource: Any, manifest: Body, namespace: str) -> Body:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        self._may_write()
        async with translated(f"applying {kind} {namespace}/{name}"):
            applied = await self.client.patch(
                resource, name, manifest, namespace=namespace,
                patch_type=PatchType.APPLY, field_manager=MANAGER, force=True,
            )  # fmt: skip
        self._wrote("apply", kind)
        return as_dict(applied)

    async def apply_status(self, resource: Any, meta: ObjectMeta, status: dict[str, Any]) -> Body:
        patch = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": meta.name, "namespace": meta.namespace},
            "status": status,
        }
        self._may_write()
        async with translated(f"writing the status of {meta.namespace}/{meta.name}"):
            applied = await self.client.patch(
                resource, meta.name, patch, namespace=meta.namespace,
                patch_type=PatchType.APPLY, field_manager=MANAGER, force=True,
            )  # fmt: skip
        self._wrote("apply", "Model/status")
        return as_dict(applied)

    async def annotate(
        self, resource: Any, kind: str, name: str, namespace: str, annotations: dict[str, str]
    ) -> Body:
        """Add ``annotations`` (a merge patch: the object's other fields are not claimed)."""
        patch = {"metadata": {"annotations": annotations}}
        self._may_write()
        async with translated(f"annotating {kind} {namespace}/{name}"):
            patched = await self.client.patch(
                resource, name, patch, namespace=namespace, patch_type=PatchType.MERGE
            )
        self._wrote("patch", kind)
        return as_dict(patched)

    async def create(self, manifest: Body) -> Body:
        kind, name = manifest["kind"], manifest["metadata"].get("name", "")
        self._may_write()
        async with translated(f"creating {kind} {name}"):
            created = await self.client.create(from_dict(manifest))
        self._wrote("create", kind)
        return as_dict(created)

    async def delete(self, resource: Any, kind: str, name: str, namespace: str) -> None:
        """Delete; one that is gone already is as good."""
        try:
            self._may_write()
            async with translated(f"deleting {kind} {namespace}/{name}"):
                await self.client.delete(resource, name, namespace=namespace)
        except NotFoundError:
            pass
        self._wrote("delete", kind)

    async def list(
        self, resource: Any, kind: str, namespace: str, labels: dict[str, Any] | None
    ) -> list[Body]:
        """Every object, retrying what passes (a 429 while the server's caches initialise)."""
        for attempt in range(1, LIST_ATTEMPTS + 1):
            try:
                async with translated(f"listing {kind}"):
                    return [
                        as_dict(found)
                        async for found in self.client.list(
                            resource, namespace=namespace, labels=labels
                        )
                    ]
            except KubernetesError as exc:
                if exc.permanent or attempt == LIST_ATTEMPTS:
                    raise
                log.warning("%s; retrying", exc)
                await asyncio.sleep(min(0.5 * 2**attempt, 5.0))
        raise AssertionError("unreachable")

    async def event(self, model: Model, event: Event, now: datetime) -> None:
        """Record ``event`` on ``model``: worth a try, never a failed pass."""
        meta = model.metadata
        stamp = now.isoformat().replace("+00:00", "Z")
        manifest = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.name}.", "namespace": meta.namespace},
            "involvedObject": {
                "apiVersion": API_VERSION, "kind": KIND, "name": meta.name,
                "namespace": meta.namespace, "uid": meta.uid,
            },
            "type": event.type, "reason": event.reason, "message": event.message[:1024],
            "source": {"component": "modelplane-operator"},
            "reportingComponent": "modelplane.io/operator",
            "reportingInstance": socket.gethostname(),
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        }  # fmt: skip
        try:
            await self.create(manifest)
        except (KubernetesError, NotFoundError) as exc:
            log.warning("event %s for %s not recorded: %s", event.reason, model.key, exc)

    def _may_write(self) -> None:
        if self.leading is not None:
            self.leading.check()

    def _wrote(self, verb: str, kind: str) -> None:
        self.made += 1
        self.telemetry.writes.labels(verb, kind).inc()
