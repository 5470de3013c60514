"""The control API's HTTP vocabulary, shared by its routes: Kubernetes ``Status`` replies (the
one table from the error tree to a status code and reason), who sent a request, and the query
parameters every route reads the same way (numbers, label selectors, ``watch``, ``dryRun``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelplane.api import Model, revision_digest, to_wire
from modelplane.api.meta import DNS_LABEL
from modelplane.errors import (
    AlreadyExistsError,
    ConflictError,
    GoneError,
    NotFoundError,
    ResourceError,
    SpecError,
)
from modelplane.security.roles import ANYONE, Action, Principal

REVISION_DIGEST_HEADER = "Modelplane-Revision-Digest"
NAMESPACE_LENGTH_MAX = 63

_REASONS: list[tuple[type[ResourceError], int, str]] = [
    (NotFoundError, 404, "NotFound"),
    (AlreadyExistsError, 409, "AlreadyExists"),
    (ConflictError, 409, "Conflict"),
    (GoneError, 410, "Gone"),
]


def status_response(
    code: int, reason: str, message: str, causes: list[dict[str, str]] | None = None
) -> Response:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if causes:
        body["details"] = {"kind": "models", "causes": causes}
    return Response(orjson.dumps(body), status_code=code, media_type="application/json")


def error_response(error: Exception) -> Response:
    if isinstance(error, SpecError):
        causes = [
            {"reason": "FieldValueInvalid", "field": p.path, "message": p.message}
            for p in error.problems
        ]
        return status_response(422, "Invalid", str(error), causes)
    for kind, code, reason in _REASONS:
        if isinstance(error, kind):
            return status_response(code, reason, str(error))
    raise error


def principal_of(request: Request) -> Principal:
    """Who sent the request, as access control found it (everyone, with auth off)."""
    found: Principal = request.scope.get("state", {}).get("principal", ANYONE)
    return found


def readable_by(request: Request) -> Callable[[Model], bool]:
    principal = principal_of(request)
    return lambda model: principal.may(Action.READ, model.metadata.namespace)


def query_number(request: Request, name: str, default: float, low: float, high: float) -> float:
    """A numeric query parameter within [low, high], or SpecError naming it and its range."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise SpecError(f"query parameter {name}={raw!r} must be a number from {low:g} to {high:g}")
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def matches(model: Model, selector: dict[str, str]) -> bool:
    labels = model.metadata.labels
    return all(labels.get(k) == v for k, v in selector.items())


def parse_selector(raw: str | None) -> dict[str, str]:
    """Equality-based label selectors: ``app=iris,tier=gold``."""
    selector: dict[str, str] = {}
    for term in filter(None, (raw or "").split(",")):
        key, sep, value = term.partition("=")
        if not sep or not key:
            raise SpecError(f"labelSelector term {term!r} is not key=value")
        selector[key.strip()] = value.lstrip("=").strip()
    return selector


def namespace_name(name: str) -> bool:
    return len(name) <= NAMESPACE_LENGTH_MAX and re.fullmatch(DNS_LABEL, name) is not None


def asks_watch(request: Request) -> bool:
    value = request.query_params.get("watch", "false")
    if value not in ("true", "1", "false", "0"):
        raise SpecError(f"watch={value!r} is not a boolean; use watch=true or watch=false")
    return value in ("true", "1")


def asks_dry_run(request: Request) -> bool:
    value = request.query_params.get("dryRun")
    if value is not None and value != "All":
        raise SpecError(f"dryRun={value!r} is not supported; use dryRun=All")
    return value is not None


def model_response(model: Model, code: int = 200, dry_run: bool = False) -> Response:
    """The object; a dry run's also says which revision its spec would serve, so a caller can
    tell a change that rolls out a new revision from one that only rescales."""
    reply = Response(orjson.dumps(to_wire(model)), status_code=code, media_type="application/json")
    if dry_run:
        reply.headers[REVISION_DIGEST_HEADER] = revision_digest(model.spec)
    return reply


def event_line(kind: str, model: Model) -> bytes:
    return orjson.dumps({"type": kind, "object": to_wire(model)}) + b"\n"


def per_namespace_routes(
    prefix: str, resource: str, answer: Callable[[Request, str | None], Awaitable[Response]]
) -> list[Route]:
    """``{prefix}/{resource}`` over every namespace (``answer`` gets None) and
    ``{prefix}/namespaces/{namespace}/{resource}`` over one, as Kubernetes lays out a
    namespaced resource."""

    async def every(request: Request) -> Response:
        return await answer(request, None)

    async def one(request: Request) -> Response:
        return await answer(request, request.path_params["namespace"])

    return [
        Route(f"{prefix}/{resource}", every),
        Route(f"{prefix}/namespaces/{{namespace}}/{resource}", one),
    ]
