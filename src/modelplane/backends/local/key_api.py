"""``/auth/keys``: create (the key is in the reply, once), list and revoke API keys. Access
control lets only an admin of every namespace here."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelplane.backends.local.api_server import error_response
from modelplane.backends.local.key_store import SqliteKeyStore
from modelplane.errors import FieldProblem, NotFoundError, SpecError
from modelplane.security.roles import Role

NAMESPACE_OR_ALL = r"^(\*|[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)$"


def parse_grants(document: Any) -> tuple[str, dict[str, Role]]:
    """``{"name": ..., "grants": {namespace or "*": role}}``, or SpecError naming each fault."""
    if not isinstance(document, dict):
        raise SpecError("an API key request must be an object with name and grants")
    problems = []
    name = document.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 63:
        problems.append(FieldProblem("name", "a name of 1 to 63 characters is required"))
    grants: dict[str, Role] = {}
    given = document.get("grants")
    if not isinstance(given, dict) or not given:
        problems.append(FieldProblem("grants", "at least one namespace: role is required"))
        given = {}
    for namespace, role in given.items():
        if not re.fullmatch(NAMESPACE_OR_ALL, str(namespace)):
            problems.append(FieldProblem(f"grants.{namespace}", "not a namespace name or '*'"))
            continue
        try:
            grants[namespace] = Role.named(str(role))
        except ValueError as exc:
            problems.append(FieldProblem(f"grants.{namespace}", str(exc)))
    extra = sorted(set(document) - {"name", "grants"})
    if extra:
        problems.append(FieldProblem(extra[0], "unknown field"))
    if problems:
        raise SpecError("invalid API key request", problems)
    return str(name), grants


def key_routes(store: SqliteKeyStore) -> list[Route]:
    async def collection(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"items": [k.wire() for k in store.list()]})
        try:
            try:
                document = json.loads(await request.body())
            except ValueError as exc:
                raise SpecError(f"request body is not JSON: {exc}") from exc
            name, grants = parse_grants(document)
        except SpecError as exc:
            return error_response(exc)
        info, token = store.create(name, grants)
        return JSONResponse({**info.wire(), "key": token}, status_code=201)

    async def revoke(request: Request) -> Response:
        try:
            info = store.revoke(request.path_params["id"])
        except NotFoundError as exc:
            return error_response(exc)
        return JSONResponse(info.wire())

    return [
        Route("/auth/keys", collection, methods=["GET", "POST"]),
        Route("/auth/keys/{id}", revoke, methods=["DELETE"]),
    ]
