"""What the runtime's HTTP adapters answer alike: one status per error, JSON replies, and
routing's own refusals.

The data plane raises errors of the tree (``modelplane.errors``); here, and only here, they become
HTTP statuses, for the v2 adapter and the OpenAI one alike. Each adapter writes the body its
protocol wants around the status: ``{"error": "..."}`` for v2, the OpenAI API's error object.
"""

from __future__ import annotations

import math

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from modelplane.errors import (
    AdapterUnavailableError,
    DeadlineExceededError,
    EngineBusyError,
    InferenceError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelNotReadyError,
    PayloadTooLargeError,
)

JSON = "application/json"

# Most specific first: a PayloadTooLargeError is also an InvalidRequestError.
_STATUSES: list[tuple[type[InferenceError], int]] = [
    (PayloadTooLargeError, 413),
    (InvalidRequestError, 400),
    (ModelNotFoundError, 404),
    (EngineBusyError, 429),
    (ModelNotReadyError, 503),
    (DeadlineExceededError, 504),
    # The request is sound, what it depends on is not: not the base model's error (its SLO
    # and the rollout analysis do not count it), and no replica is ejected or retried for it.
    (AdapterUnavailableError, 424),
]


def status_of(error: InferenceError) -> int:
    """The HTTP status of a refusal; 500 for the model's own failures."""
    for kind, status in _STATUSES:
        if isinstance(error, kind):
            return status
    return 500


def json_response(
    document: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(document), status_code=status, media_type=JSON, headers=headers)


def retry_headers(error: InferenceError) -> dict[str, str]:
    """``Retry-After`` (whole seconds) for a refusal that says when the same request may pass."""
    if error.retry_after is None or status_of(error) not in (429, 503):
        return {}
    return {"Retry-After": str(max(1, math.ceil(error.retry_after)))}


async def routing_error(request: Request, exc: Exception) -> Response:
    """Routing's own refusals (no such path; a method the path does not take, with ``Allow``)
    as JSON in the shape of the path's protocol, like every other answer, not as plain text."""
    assert isinstance(exc, HTTPException)  # the only kind this handler is registered for
    path, headers = request.url.path, dict(exc.headers or {})
    allowed = headers.get("Allow")
    if exc.status_code == 405 and allowed:
        allowed = headers["Allow"] = ", ".join(sorted(allowed.split(", ")))  # a set's order
        message = f"{path} takes {allowed}, not {request.method}"
    elif exc.status_code == 404:
        message = f"no route for {path}"
    else:
        message = str(exc.detail)
    document: dict[str, object] = {"error": message}
    if path.startswith("/v1/"):  # the OpenAI API's error object
        document["error"] = {"message": message, "type": "invalid_request_error",
                             "param": None, "code": None}  # fmt: skip
    return Response(orjson.dumps(document), exc.status_code, headers, media_type=JSON)
