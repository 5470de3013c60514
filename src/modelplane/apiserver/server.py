"""The control API of embedded mode: Kubernetes-shaped REST over the SQLite store.

    /apis/modelplane.io/v1alpha1/models                                   list, watch (all)
    /apis/modelplane.io/v1alpha1/namespaces/{ns}/models                   list, watch, create
    …/namespaces/{ns}/models/{name}             get, replace, merge-patch, delete
    …/namespaces/{ns}/models/{name}/status      get, replace, merge-patch
    …/namespaces/{ns}/models/{name}/events      recent events
    …/namespaces/{ns}/models/{name}/revisions   immutable revisions with their specs
    …/namespaces/{ns}/models/{name}/logs        replica logs

Create, replace, patch and delete take ``?dryRun=All``: every check runs and nothing is stored;
the reply to a create, replace or patch carries the ``Modelplane-Revision-Digest`` its spec
would serve.

Errors are ``Status`` objects as the Kubernetes API returns them, so the same client code reads
both: 404 NotFound, 409 AlreadyExists or Conflict, 410 Gone, 422 Invalid (with one cause per
field), 400 BadRequest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from modelplane.api import API_VERSION, Model, parse_model, to_wire
from modelplane.api.meta import DNS_1035_LABEL
from modelplane.api.releases import Milestone
from modelplane.api.store import Change, Store
from modelplane.apiserver.http import (
    asks_dry_run,
    asks_watch,
    error_response,
    event_line,
    matches,
    merge_patch,
    model_response,
    namespace_name,
    parse_selector,
    query_number,
    readable_by,
    status_response,
)
from modelplane.backends.local.replica_logs import model_logs
from modelplane.errors import (
    GoneError,
    NotFoundError,
    ResourceError,
    SpecError,
)

PREFIX = "/apis/modelplane.io/v1alpha1"
MERGE_PATCH = "application/merge-patch+json"
WATCH_SECONDS_MAX = 3600


class ControlApi:
    def __init__(self, store: Store, logs_dir: Path) -> None:
        self.store = store
        self.logs_dir = logs_dir
        self._changed = asyncio.Event()
        store.on_change(self._notify)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def app(self, extra_routes: list[BaseRoute] | None = None) -> Starlette:
        one = PREFIX + "/namespaces/{namespace}/models/{name}"
        routes = [
            Route("/healthz", self.healthz),
            Route(PREFIX + "/models", self.collection),
            Route(
                PREFIX + "/namespaces/{namespace}/models", self.collection, methods=["GET", "POST"]
            ),
            Route(one, self.item, methods=["GET", "PUT", "PATCH", "DELETE"]),
            Route(one + "/status", self.status, methods=["GET", "PUT", "PATCH"]),
            Route(one + "/events", self.events),
            Route(one + "/revisions", self.revisions),
            Route(one + "/logs", self.logs),
            *(extra_routes or []),
        ]
        return Starlette(routes=routes)

    async def healthz(self, request: Request) -> Response:
        return Response("ok", media_type="text/plain")

    # -- collection ----------------------------------------------------------------------------

    async def collection(self, request: Request) -> Response:
        namespace = request.path_params.get("namespace")
        try:
            if namespace is not None and not namespace_name(namespace):
                raise SpecError(f"{namespace!r} is not a namespace name (an RFC 1123 label)")
            if request.method == "POST":
                model = await self._body_model(request, namespace, None)
                dry_run = asks_dry_run(request)
                return model_response(self.store.create(model, dry_run=dry_run), 201, dry_run)
            selector = parse_selector(request.query_params.get("labelSelector"))
            since = request.query_params.get("resourceVersion")
            if since is not None and not since.isdigit():
                raise SpecError(f"resourceVersion {since!r} is not a number")
            timeout = query_number(
                request, "timeoutSeconds", WATCH_SECONDS_MAX, 0, WATCH_SECONDS_MAX
            )
            if asks_watch(request):
                return self._watch(request, namespace, selector, timeout)
            models, version = self.store.list_models(namespace)
            readable = readable_by(request)
            items = [to_wire(m) for m in models if matches(m, selector) and readable(m)]
            body = {
                "apiVersion": API_VERSION,
                "kind": "ModelList",
                "metadata": {"resourceVersion": str(version)},
                "items": items,
            }
            return Response(orjson.dumps(body), media_type="application/json")
        except (SpecError, ResourceError) as exc:
            return error_response(exc)

    def _watch(
        self, request: Request, namespace: str | None, selector: dict[str, str], timeout: float
    ) -> Response:
        since = request.query_params.get("resourceVersion")
        if since is not None:  # a number: the collection checked
            self.store.changes_since(int(since))  # raises GoneError before the stream starts

        readable = readable_by(request)

        def wanted(model: Model) -> bool:
            ns_ok = namespace is None or model.metadata.namespace == namespace
            return ns_ok and matches(model, selector) and readable(model)

        stream = self._events(since, wanted, timeout, request.is_disconnected)
        return StreamingResponse(stream, media_type="application/json")

    async def _events(
        self,
        since: str | None,
        wanted: Callable[[Model], bool],
        seconds: float,
        disconnected: Callable[[], Any],
    ) -> AsyncIterator[bytes]:
        if since is None:
            models, version = self.store.list_models()
            for model in filter(wanted, models):
                yield event_line("ADDED", model)
        else:
            version = int(since)
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            changed = self._changed
            try:
                changes: list[Change] = self.store.changes_since(version)
            except GoneError as exc:
                status = json.loads(bytes(error_response(exc).body))
                yield orjson.dumps({"type": "ERROR", "object": status}) + b"\n"
                return
            for change in changes:
                version = change.resource_version
                if wanted(change.model):
                    yield event_line(change.type, change.model)
            if await disconnected():
                return
            left = deadline - asyncio.get_running_loop().time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), max(0.0, min(1.0, left)))

    # -- one object ----------------------------------------------------------------------------

    async def item(self, request: Request) -> Response:
        return await self._object(request, "")

    async def status(self, request: Request) -> Response:
        return await self._object(request, "status")

    async def _object(self, request: Request, subresource: Literal["", "status"]) -> Response:
        """GET, PUT, PATCH (and DELETE of the main resource) of one Model or its status."""
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        try:
            if request.method == "GET":
                return model_response(self.store.get(namespace, name))
            if request.method == "DELETE":
                deleted = self.store.delete(namespace, name, dry_run=asks_dry_run(request))
                return model_response(deleted)
            if request.method == "PATCH":
                model = await self._patched(request, namespace, name)
            else:
                model = await self._body_model(request, namespace, name)
            dry_run = asks_dry_run(request)
            stored = self.store.update(model, subresource=subresource, dry_run=dry_run)
            return model_response(stored, dry_run=dry_run)
        except (SpecError, ResourceError) as exc:
            return error_response(exc)

    async def events(self, request: Request) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        # Events outlive their Model (a deletion, a git commit refused before it was created),
        # so a name no Model has is an empty list; one no Model could have is not found.
        try:
            limit = int(query_number(request, "limit", 50, 1, 1000))
            if not re.fullmatch(DNS_1035_LABEL, name) or not namespace_name(namespace):
                raise NotFoundError(f"no Model can be named {namespace}/{name}")
        except (SpecError, ResourceError) as exc:
            return error_response(exc)
        items = [
            {
                "type": e.type,
                "reason": e.reason,
                "message": e.message,
                "lastTimestamp": e.time.isoformat().replace("+00:00", "Z"),
                "involvedObject": {"kind": "Model", "namespace": namespace, "name": name},
            }
            for e in self.store.events(namespace, name, limit)
        ]
        return Response(
            orjson.dumps({"kind": "EventList", "items": items}), media_type="application/json"
        )

    async def revisions(self, request: Request) -> Response:
        """The model's immutable revisions, oldest first, each with the spec it serves and when
        it was promoted."""
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        try:
            self.store.get(namespace, name)
        except ResourceError as exc:
            return error_response(exc)
        history = await asyncio.to_thread(self.store.release_history, namespace)
        promoted = {
            h.name: mark.at
            for h in history
            if h.model == name and (mark := h.at(Milestone.PROMOTED)) is not None
        }
        items = [
            {
                "name": r.name,
                "number": r.number,
                "digest": r.digest,
                "created": _iso(r.created),
                # When it became the stable revision (all traffic); null if it never did.
                "promoted": _iso(promoted[r.name]) if r.name in promoted else None,
                "spec": r.spec,
            }
            for r in self.store.revisions(namespace, name)
        ]
        body = {"kind": "RevisionList", "items": items}
        return Response(orjson.dumps(body), media_type="application/json")

    async def logs(self, request: Request) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        revision = request.query_params.get("revision")
        try:
            known = [r.name for r in self.store.revisions(namespace, name)]
            self.store.get(namespace, name)
            tail = int(query_number(request, "tailLines", 200, 1, 100_000))
        except (SpecError, ResourceError) as exc:
            return error_response(exc)
        if revision is not None and revision not in known:
            return status_response(404, "NotFound", f"model {name!r} has no revision {revision!r}")
        chunks: list[str] = []
        for replica, path in model_logs(
            self.logs_dir, namespace, [revision] if revision else known
        ):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            chunks.extend(f"[{replica}] {line}" for line in lines)
        return Response("\n".join(chunks) + ("\n" if chunks else ""), media_type="text/plain")

    # -- bodies --------------------------------------------------------------------------------

    async def _document(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            document = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise SpecError(f"request body is not valid JSON or YAML: {exc}") from exc
        if not isinstance(document, dict):
            raise SpecError("request body must be a Model object")
        return document

    async def _body_model(self, request: Request, namespace: str | None, name: str | None) -> Model:
        document = await self._document(request)
        metadata = (
            document.setdefault("metadata", {})
            if isinstance(document.get("metadata", {}), dict)
            else {}
        )
        if namespace is not None:
            given = metadata.setdefault("namespace", namespace)
            if given != namespace:
                raise SpecError(
                    f"metadata.namespace {given!r} does not match the URL's {namespace!r}"
                )
        if name is not None and metadata.get("name") != name:
            raise SpecError(
                f"metadata.name {metadata.get('name')!r} does not match the URL's {name!r}"
            )
        return parse_model(document)

    async def _patched(self, request: Request, namespace: str, name: str) -> Model:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type not in (MERGE_PATCH, "application/json"):
            raise SpecError(f"unsupported patch type {content_type!r}; use {MERGE_PATCH}")
        current = to_wire(self.store.get(namespace, name))
        patch = await self._document(request)
        patched = merge_patch(current, patch)
        if not isinstance(patched.get("metadata"), dict):
            raise SpecError("metadata: a Model's metadata must stay an object")
        patched["metadata"]["name"], patched["metadata"]["namespace"] = name, namespace
        return parse_model(patched)


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
