"""The cluster gateway's view of the cluster: routes from Models and their EndpointSlices.

Weights come from each Model's status (what the operator decided, rollout included), endpoints
from the EndpointSlices of each revision's Service. An endpoint that a slice calls ready still
has to answer the runtime's readiness check before it takes a request: a pod's Ready condition
lags or leads the process behind it (a probe period; a node that reports what it was told), and
a request sent to a port nobody listens on yet is a failed request. Knative's activator probes
for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
from lightkube import AsyncClient
from lightkube.resources.discovery_v1 import EndpointSlice

from modelplane.api.routing import RouteSink
from modelplane.backends.kubernetes.children import LABEL_MANAGED_BY, LABEL_MODEL, LABEL_REVISION
from modelplane.backends.kubernetes.children import MANAGER as MANAGED_BY
from modelplane.backends.kubernetes.following import follow
from modelplane.backends.kubernetes.observed import Body, model_from, older
from modelplane.backends.kubernetes.operator import ModelResource
from modelplane.control.routes import route_policy
from modelplane.errors import SpecError

log = logging.getLogger(__name__)

PROBE_EVERY = 0.25
PROBE_TIMEOUT = 1.0


@dataclass
class Discovery:
    client: AsyncClient
    table: RouteSink
    namespaces: tuple[str, ...] = ()  # none: the whole cluster
    _models: dict[str, Body] = field(default_factory=dict)
    _slices: dict[str, dict[str, Body]] = field(default_factory=dict)  # model key -> slices
    # Per model: endpoint URLs that answered ready, and checks under way.
    _proven: dict[str, set[str]] = field(default_factory=dict)
    _probing: dict[tuple[str, str], asyncio.Task[None]] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # both caches listed once

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as probes:
            self._probes = probes
            listed = [asyncio.Event() for _ in range(2 * len(self.namespaces or ("*",)))]
            follows = [
                follow(self.client, resource, namespace, labels, replace, event, listed.pop())
                for namespace in self.namespaces or ("*",)
                for resource, labels, replace, event in (
                    (ModelResource, None, self._replace_models, self._model_event),
                    (EndpointSlice, {LABEL_MANAGED_BY: MANAGED_BY}, self._replace_slices,
                     self._slice_event),
                )
            ]  # fmt: skip
            waiting = [asyncio.create_task(e.wait()) for e in listed]
            tasks = [asyncio.create_task(f) for f in follows]
            try:
                await asyncio.gather(*waiting)
                self.ready.set()
                await asyncio.gather(*tasks)
            finally:
                for task in [*waiting, *tasks, *self._probing.values()]:
                    task.cancel()

    def _replace_models(self, namespace: str, bodies: list[Body]) -> None:
        stale = {k for k in self._models if _in(k, namespace)}
        fresh = {_key(body): body for body in bodies}
        for key in stale - fresh.keys():
            del self._models[key]
        self._models.update(fresh)
        self._changed(stale | fresh.keys())

    def _model_event(self, event_type: str, body: Body) -> None:
        key = _key(body)
        if event_type == "DELETED":
            self._models.pop(key, None)
        elif not older(body, self._models.get(key)):
            self._models[key] = body
        self._changed([key])

    def _replace_slices(self, namespace: str, bodies: list[Body]) -> None:
        stale = {k for k in self._slices if _in(k, namespace)}
        fresh: dict[str, dict[str, Body]] = {}
        for body in bodies:
            key = _slice_owner(body)
            if key is not None:
                fresh.setdefault(key, {})[body["metadata"]["name"]] = body
        for key in stale - fresh.keys():
            del self._slices[key]
        self._slices.update(fresh)
        self._changed(stale | fresh.keys())

    def _slice_event(self, event_type: str, body: Body) -> None:
        key = _slice_owner(body)
        if key is None:
            return
        found = self._slices.setdefault(key, {})
        name = body["metadata"]["name"]
        if event_type == "DELETED":
            found.pop(name, None)
            if not found:
                del self._slices[key]
        elif not older(body, found.get(name)):
            found[name] = body
        self._changed([key])

    # -- routes -------------------------------------------------------------------------------

    def _changed(self, keys: Iterable[str]) -> None:
        for key in keys:
            listed = {url for _, url in _ready(self._slices.get(key, {}).values())}
            # An endpoint gone from the slices is checked again if it comes back.
            proven = self._proven.setdefault(key, set())
            proven &= listed
            for found in [f for f in self._probing if f[0] == key and f[1] not in listed]:
                self._probing.pop(found).cancel()
            self._publish(key)

    def _publish(self, key: str) -> None:
        body = self._models.get(key)
        model = None
        if body is not None and not body["metadata"].get("deletionTimestamp"):
            with contextlib.suppress(SpecError):  # invalid: the operator reports it
                model = model_from(body)
        if model is None:
            self.table.remove(key)
            if key not in self._slices:
                self._proven.pop(key, None)
            return
        status = model.status
        weights = {r.name: r.traffic for r in status.revisions if r.traffic > 0}
        if not weights:  # nothing takes traffic (starting, scaled to zero): hold for the newest
            weights = {status.revisions[-1].name if status.revisions else "": 100}
        slices = list(self._slices.get(key, {}).values())
        revisions: dict[str, tuple[int, list[tuple[str, str]]]] = {}
        for revision, weight in weights.items():
            mine = [s for s in slices if _labels(s).get(LABEL_REVISION) == revision]
            endpoints = []
            proven = self._proven.setdefault(key, set())
            for endpoint_id, url in _ready(mine):
                if url in proven:
                    endpoints.append((endpoint_id, url))
                else:
                    self._probe(key, url)
            revisions[revision] = (weight, endpoints)
        shadow, canary = route_policy(model.spec, status)
        adapters = tuple(a.name for a in model.spec.adapters)
        self.table.publish(
            key, model.metadata.name, revisions, shadow, canary,
            openai=model.speaks_openai, adapters=adapters,
        )  # fmt: skip

    def _probe(self, key: str, url: str) -> None:
        if (key, url) not in self._probing:
            check = asyncio.get_running_loop().create_task(self._check(key, url))
            self._probing[key, url] = check

    async def _check(self, key: str, url: str) -> None:
        """Until the runtime at ``url`` says it is ready, as long as a slice lists it."""
        while True:
            with contextlib.suppress(httpx.HTTPError):
                reply = await self._probes.get(f"{url}/v2/health/ready")
                if reply.status_code == 200:
                    break
            await asyncio.sleep(PROBE_EVERY)
        self._probing.pop((key, url), None)
        self._proven.setdefault(key, set()).add(url)
        self._publish(key)


def _labels(body: Body) -> dict[str, str]:
    return body["metadata"].get("labels") or {}


def _key(body: Body) -> str:
    meta = body["metadata"]
    return f"{meta.get('namespace', 'default')}/{meta['name']}"


def _in(key: str, namespace: str) -> bool:
    return namespace == "*" or key.startswith(f"{namespace}/")


def _slice_owner(body: Body) -> str | None:
    """The Model a slice serves: the EndpointSlice controller copies the Service's labels."""
    model = _labels(body).get(LABEL_MODEL)
    return f"{body['metadata'].get('namespace', 'default')}/{model}" if model else None


def _ready(slices: Iterable[Body]) -> list[tuple[str, str]]:
    """(endpoint id, URL) of every ready endpoint in ``slices``, on their ``http`` port."""
    found = []
    for body in slices:
        ports = body.get("ports") or []
        port = next((p.get("port") for p in ports if p.get("name") == "http"), None)
        if port is None:
            continue
        for endpoint in body.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            if conditions.get("ready") is False or conditions.get("terminating"):
                continue  # ready unset means unknown, which consumers take as ready
            for address in endpoint.get("addresses") or []:
                host = f"[{address}]" if ":" in address else address
                target = (endpoint.get("targetRef") or {}).get("name") or address
                found.append((target, f"http://{host}:{port}"))
    return found
