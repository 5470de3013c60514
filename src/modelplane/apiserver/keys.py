"""``/auth/keys``: create (the key is in the reply, once), list and revoke API keys. Access
control lets only an admin of every namespace here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelplane.api.manifests import problems_from
from modelplane.api.meta import Wire
from modelplane.api.priority import Priority
from modelplane.apiserver.http import error_response
from modelplane.apiserver.key_store import SqliteKeyStore
from modelplane.errors import NotFoundError, SpecError
from modelplane.security.roles import Role

# The roles by name, so that the API's description lists them.
RoleName = Literal["viewer", "deployer", "admin"]
PriorityName = Literal["interactive", "batch"]
NamespaceOrAll = Annotated[str, Field(pattern=r"^(\*|[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)$")]


class KeyRequest(Wire):
    """``POST /auth/keys``: who the key is for, its role per namespace (or ``*``), and the
    priority its requests wait with in a gateway's waiting room (left out: the namespace's)."""

    name: Annotated[str, Field(min_length=1, max_length=63)]
    grants: Annotated[
        dict[NamespaceOrAll, RoleName],
        # every key must be a namespace or "*": say so in the schema, not only in the check
        Field(min_length=1, json_schema_extra={"additionalProperties": False}),
    ]
    priority: PriorityName | None = None

    @field_validator("grants")
    @classmethod
    def _roles(cls, grants: dict[str, str]) -> dict[str, str]:
        for role in grants.values():
            Role.named(role)  # ValueError naming the roles there are
        return grants


@dataclass(frozen=True)
class NewKey:
    name: str
    grants: dict[str, Role]
    priority: Priority | None


def parse_grants(document: Any) -> NewKey:
    """``{"name": ..., "grants": {namespace or "*": role}, "priority": ...}``, or SpecError
    naming each fault."""
    try:
        request = KeyRequest.model_validate(document, strict=True)
    except ValidationError as exc:
        raise SpecError("invalid API key request", problems_from(exc)) from exc
    grants = {ns: Role.named(role) for ns, role in request.grants.items()}
    priority = Priority.named(request.priority) if request.priority is not None else None
    return NewKey(request.name, grants, priority)


def key_routes(store: SqliteKeyStore) -> list[Route]:
    async def collection(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"items": [k.wire() for k in store.list()]})
        try:
            try:
                document = json.loads(await request.body())
            except ValueError as exc:
                raise SpecError(f"request body is not JSON: {exc}") from exc
            new = parse_grants(document)
        except SpecError as exc:
            return error_response(exc)
        info, token = store.create(new.name, new.grants, new.priority)
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
