"""Quotas of the embedded platform's tenants (namespaces): kept in its SQLite state, served as
``/quotas`` and handed to the gateway, which enforces them.

``GET /quotas`` (every quota), ``GET /quotas/{namespace}``, ``PUT /quotas/{namespace}`` with
``{"requestsPerSecond": 50, "concurrentRequests": 16, "maxReplicas": 8, "tokensPerMinute":
20000}`` (any may be left out), ``DELETE
/quotas/{namespace}`` to lift them. Access control: reading a namespace's quota needs ``viewer``
there, setting one ``admin`` on every namespace.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelplane.api.manifests import problems_from
from modelplane.api.meta import Namespace, Wire
from modelplane.api.quotas import QuotaBoard, QuotaSpec
from modelplane.apiserver.http import error_response
from modelplane.backends.local.schema import open_state
from modelplane.errors import NotFoundError, SpecError


class _NamespaceName(Wire):
    namespace: Namespace


class SqliteQuotaStore:
    def __init__(self, path: Path | str) -> None:
        self._db = open_state(path)

    def close(self) -> None:
        self._db.close()

    def all(self) -> dict[str, QuotaSpec]:
        rows = self._db.execute("SELECT namespace, body FROM quotas ORDER BY namespace")
        return {ns: QuotaSpec.model_validate_json(body) for ns, body in rows.fetchall()}

    def put(self, namespace: str, spec: QuotaSpec) -> None:
        body = spec.model_dump_json(by_alias=True, exclude_none=True)
        self._db.execute(
            "INSERT OR REPLACE INTO quotas (namespace, body) VALUES (?, ?)", (namespace, body)
        )

    def delete(self, namespace: str) -> bool:
        done = self._db.execute("DELETE FROM quotas WHERE namespace = ?", (namespace,))
        return done.rowcount > 0


def quota_routes(store: SqliteQuotaStore, enforced: QuotaBoard) -> list[Route]:
    """The endpoints, with the stored quotas handed to ``enforced`` now and on every change."""
    for namespace, spec in store.all().items():
        enforced.set(namespace, spec.quota())

    def wire(namespace: str, spec: QuotaSpec) -> dict[str, object]:
        return {"namespace": namespace, **spec.model_dump(by_alias=True, exclude_none=True)}

    async def collection(_: Request) -> Response:
        return JSONResponse({"items": [wire(ns, q) for ns, q in store.all().items()]})

    async def item(request: Request) -> Response:
        namespace = request.path_params["namespace"]
        try:
            _NamespaceName(namespace=namespace)
        except ValidationError as exc:
            return error_response(SpecError("invalid namespace", problems_from(exc)))
        if request.method == "PUT":
            try:
                spec = QuotaSpec.model_validate(json.loads(await request.body()))
            except ValueError as exc:  # ValidationError is one
                problems = problems_from(exc) if isinstance(exc, ValidationError) else []
                return error_response(SpecError(f"invalid quota: {exc}"[:200], problems))
            store.put(namespace, spec)
            enforced.set(namespace, spec.quota())
            return JSONResponse(wire(namespace, spec))
        if request.method == "DELETE":
            if not store.delete(namespace):
                return error_response(NotFoundError(f"no quota for namespace {namespace!r}"))
            enforced.set(namespace, None)
            return Response(status_code=204)
        found = store.all().get(namespace)
        if found is None:
            return error_response(NotFoundError(f"no quota for namespace {namespace!r}"))
        return JSONResponse(wire(namespace, found))

    return [
        Route("/quotas", collection),
        Route("/quotas/{namespace}", item, methods=["GET", "PUT", "DELETE"]),
    ]
