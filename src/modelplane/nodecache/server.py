"""The node cache agent's HTTP API, on the node's own network (a Service with
``internalTrafficPolicy: Local`` routes each pod to the agent of its node):

- ``GET /v1/artifacts/{digest}``: the artifact as a tar stream, or 404;
- ``HEAD /v1/artifacts/{digest}``: whether it is here;
- ``PUT /v1/artifacts/{digest}[?reference=KEY]``: a tar stream of an artifact a pod fetched and
  verified; verified again here before it is kept (a pod cannot plant content under a digest
  it does not have), and, with ``reference``, remembered as that immutable reference's content;
- ``GET /v1/references/{key}``: ``{"digest": ...}`` for a reference handed over before;
- ``GET /healthz``.

It holds no credentials and talks to no API server: it keeps what pods give it, in a
content-addressed cache bounded by size with least-recently-used eviction.
"""

from __future__ import annotations

import re
import tempfile
from typing import IO

import anyio
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from modelplane.artifacts import Cache, Limits, digest_of
from modelplane.artifacts.tars import tar_chunks, untar
from modelplane.errors import ArtifactError

DIGEST = re.compile(r"^[0-9a-f]{64}$")


class NodeCacheAgent:
    def __init__(self, cache: Cache, limits: Limits) -> None:
        self.cache, self.limits = cache, limits
        cache.root.mkdir(parents=True, exist_ok=True)  # uploads are spooled there

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/healthz", lambda _: Response("ok")),
                Route("/v1/artifacts/{digest}", self._get, methods=["GET", "HEAD"]),
                Route("/v1/artifacts/{digest}", self._put, methods=["PUT"]),
                Route("/v1/references/{key}", self._reference),
            ]
        )

    async def _get(self, request: Request) -> Response:
        digest = _digest(request.path_params["digest"])
        if digest is None:
            return _problem(400, "a digest is 64 hex characters")
        hold = await anyio.to_thread.run_sync(self.cache.hold, digest)
        found = await anyio.to_thread.run_sync(self.cache.lookup, digest)
        if found is None:
            hold.close()
            return _problem(404, f"{digest} is not in this node's cache")
        if request.method == "HEAD":
            hold.close()
            return Response(headers={"content-type": "application/x-tar"})
        # Held until the last byte is sent: eviction cannot take it mid-stream.
        return StreamingResponse(
            tar_chunks(found), media_type="application/x-tar", background=BackgroundTask(hold.close)
        )

    async def _put(self, request: Request) -> Response:
        digest = _digest(request.path_params["digest"])
        given = request.query_params.get("reference")
        reference = _digest(given) if given is not None else None
        if digest is None or (given is not None and reference is None):
            return _problem(400, "a digest and a reference are 64 hex characters")
        with tempfile.TemporaryFile(dir=self.cache.root) as spool:
            async for chunk in request.stream():
                await anyio.to_thread.run_sync(spool.write, chunk)
            try:
                await anyio.to_thread.run_sync(self._keep, digest, spool)
            except ArtifactError as exc:
                return _problem(422, str(exc))
        if reference:
            self.cache.remember(reference, digest)
        return Response(status_code=201)

    def _keep(self, digest: str, spool: IO[bytes]) -> None:
        with self.cache.fetching(digest) as staging:
            if self.cache.lookup(digest) is not None:
                return
            spool.seek(0)
            chunks = iter(lambda: spool.read(1 << 20), b"")
            content = untar(chunks, staging.content, self.limits, f"upload of {digest[:16]}")
            actual = digest_of(content, self.limits, content.name)
            if actual != digest:
                staging.discard()
                raise ArtifactError(f"the upload has digest {actual}, not {digest}; not kept")
            self.cache.install(staging, digest, f"node cache upload ({content.name})")

    async def _reference(self, request: Request) -> Response:
        key = _digest(request.path_params["key"])
        if key is None:
            return _problem(400, "a reference key is 64 hex characters")
        digest = await anyio.to_thread.run_sync(self.cache.recall, key)
        if digest is not None:
            return JSONResponse({"digest": digest})
        return _problem(404, "no artifact is known here for that reference")


def _digest(text: str) -> str | None:
    return text if DIGEST.match(text) else None


def _problem(status: int, detail: str) -> Response:
    return JSONResponse({"error": detail}, status_code=status)
