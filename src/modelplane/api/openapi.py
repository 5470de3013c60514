"""The pieces of an OpenAPI 3.1 document, plain data.

Every HTTP surface (the runtime, the gateway, the embedded control API) describes itself as
``GET /openapi.json`` from these, so the three documents are built the same way: operations,
replies and parameters here, each surface's paths and schemas where it serves them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Schema = dict[str, Any]

JSON = "application/json"
COMPONENTS = "#/components/schemas/"
STRING: Schema = {"type": "string"}


def ref(name: str) -> Schema:
    return {"$ref": COMPONENTS + name}


def header(about: str, schema: Schema | None = None, required: bool = False) -> Schema:
    """A response header."""
    return {"description": about, "required": required, "schema": schema or STRING}


def retry_after(required: bool) -> Schema:
    seconds = {"type": "string", "pattern": r"^\d+$"}
    return header("Seconds to wait before trying again.", seconds, required)


def reply(
    about: str,
    content: Mapping[str, Schema] | None = None,
    headers: Mapping[str, Schema] | None = None,
) -> Schema:
    """A response: ``content`` maps each media type to its body's schema."""
    described: Schema = {"description": about}
    if content:
        described["content"] = {media: {"schema": s} for media, s in content.items()}
    if headers:
        described["headers"] = dict(headers)
    return described


def json_reply(about: str, schema: Schema, headers: Mapping[str, Schema] | None = None) -> Schema:
    return reply(about, {JSON: schema}, headers)


def parameter(where: str, name: str, schema: Schema, about: str = "") -> Schema:
    """A parameter ``where`` is ``path`` (always required), ``query`` or ``header``."""
    described: Schema = {"name": name, "in": where, "required": where == "path", "schema": schema}
    if about:
        described["description"] = about
    return described


def path_parameter(name: str, schema: Schema, about: str = "") -> Schema:
    return parameter("path", name, schema, about)


def operation(
    operation_id: str,
    summary: str,
    responses: Mapping[int, Schema],
    parameters: Iterable[Schema] = (),
    body: Schema | None = None,
    open_to_all: bool = False,
) -> Schema:
    """An operation; ``open_to_all``: no credential needed even where the API asks for one."""
    described: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "parameters": list(parameters),
        "responses": {str(code): r for code, r in sorted(responses.items())},
    }
    if body is not None:
        described["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    if open_to_all:
        described["security"] = []
    return described


def document(
    title: str,
    version: str,
    about: str,
    paths: Mapping[str, Schema],
    schemas: Schema,
    bearer: bool = False,
) -> Schema:
    """The whole description; ``bearer``: every operation not open to all needs a bearer
    credential (an API key or a token)."""
    described: Schema = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": about},
        "paths": dict(paths),
        "components": {"schemas": schemas},
    }
    if bearer:
        described["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}
        }
        described["security"] = [{"bearer": []}]
    return described
