"""The control API's git source routes (``/gitops``) over the platform's ``GitSources``."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelplane.apiserver.git_webhook import webhook_route
from modelplane.apiserver.http import error_response
from modelplane.errors import AlreadyExistsError, NotFoundError, SpecError
from modelplane.gitops.sources import GitSources, parse_source
from modelplane.gitops.sync import GitSync


def gitops_routes(sources: GitSources, auth: bool) -> list[Route]:
    """``GET /gitops``: every source's status; ``POST /gitops``: add one; ``GET``/``DELETE
    /gitops/{name}``; ``POST /gitops/{name}/sync`` and ``POST /gitops/webhook`` (all sources):
    sync now, with an API key under ``auth`` (the body is not read); ``POST
    /gitops/{name}/webhook``: a git host's push, signed with the source's webhook secret."""

    def one(request: Request) -> GitSync:
        name = request.path_params["name"]
        sync = sources.syncs.get(name)
        if sync is None:
            raise NotFoundError(f"git source {name!r} not found")
        return sync

    async def collection(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"items": [s.wire() for s in sources.syncs.values()]})
        try:
            try:
                document = json.loads(await request.body())
            except ValueError as exc:
                raise SpecError(f"request body is not JSON: {exc}") from exc
            sync = sources.add(parse_source(document))
        except (SpecError, AlreadyExistsError) as exc:
            return error_response(exc)
        return JSONResponse(sync.wire(), status_code=201)

    async def item(request: Request) -> Response:
        try:
            sync = one(request)
            if request.method == "DELETE":
                await sources.remove(sync.spec.name)
                return Response(status_code=204)
        except NotFoundError as exc:
            return error_response(exc)
        return JSONResponse(sync.wire())

    async def sync_now(request: Request) -> Response:
        try:
            chosen = [one(request)] if "name" in request.path_params else sources.syncs.values()
        except NotFoundError as exc:
            return error_response(exc)
        for sync in chosen:
            sync.wake()
        return JSONResponse({"syncing": [s.spec.name for s in chosen]}, status_code=202)

    return [
        Route("/gitops", collection, methods=["GET", "POST"]),
        Route("/gitops/webhook", sync_now, methods=["POST"]),
        Route("/gitops/{name}", item, methods=["GET", "DELETE"]),
        Route("/gitops/{name}/sync", sync_now, methods=["POST"]),
        webhook_route(sources.syncs, auth),
    ]
