"""A client of the control API, for the CLI: the same REST paths in embedded and cluster mode."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, BinaryIO, Literal

import httpx

from modelplane.api import Model, to_wire
from modelplane.cli.errors import EXIT_SPEC, CliError
from modelplane.errors import FieldProblem, SpecError

DEFAULT_SERVER = "http://127.0.0.1:8090"
PREFIX = "/apis/modelplane.io/v1alpha1"

Applied = Literal["created", "configured", "unchanged"]


def default_server() -> str:
    return os.environ.get("MODELPLANE_SERVER", DEFAULT_SERVER)


def credentials() -> dict[str, str]:
    """The API key in ``MODELPLANE_API_KEY``, as the header the control API and the gateway
    read; none when it is not set (a platform without ``--auth``)."""
    key = os.environ.get("MODELPLANE_API_KEY", "").strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


class ControlClient:
    def __init__(self, server: str) -> None:
        self.server = server.rstrip("/")
        self._http = httpx.Client(base_url=self.server, timeout=30, headers=credentials())

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            reply = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if reply.status_code >= 400:
            raise _status_error(reply)
        return reply

    def _unreachable(self, error: httpx.TransportError) -> CliError:
        return CliError(
            f"cannot reach the control plane at {self.server} ({error})",
            hint="start it with: modelplane up (or pass --server)",
        )

    def download(self, path: str, into: BinaryIO) -> None:
        """Write the body of ``GET path`` (a backup, say) into ``into`` as it comes."""
        try:
            with self._http.stream("GET", path, timeout=httpx.Timeout(30, read=300)) as reply:
                if reply.status_code >= 400:
                    reply.read()
                    raise _status_error(reply)
                for chunk in reply.iter_bytes():
                    into.write(chunk)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    @staticmethod
    def _path(namespace: str | None, name: str | None = None, sub: str = "") -> str:
        path = PREFIX + (f"/namespaces/{namespace}/models" if namespace else "/models")
        if name:
            path += f"/{name}"
        return path + (f"/{sub}" if sub else "")

    def get(self, namespace: str, name: str) -> Model:
        return Model.model_validate(self._call("GET", self._path(namespace, name)).json())

    def list_models(self, namespace: str | None, selector: str | None = None) -> list[Model]:
        params = {"labelSelector": selector} if selector else {}
        items = self._call("GET", self._path(namespace), params=params).json()["items"]
        return [Model.model_validate(item) for item in items]

    def apply(self, model: Model) -> tuple[Model, Applied]:
        """Create, or replace the spec, labels and annotations of an existing model."""
        meta = model.metadata
        body = to_wire(model, include_status=False)
        try:
            current = self.get(meta.namespace, meta.name)
        except CliError as exc:
            if "not found" not in str(exc):
                raise
            created = self._call("POST", self._path(meta.namespace), json=body).json()
            return Model.model_validate(created), "created"
        reply = self._call("PUT", self._path(meta.namespace, meta.name), json=body).json()
        updated = Model.model_validate(reply)
        same = updated.metadata.resource_version == current.metadata.resource_version
        return updated, "unchanged" if same else "configured"

    def delete(self, namespace: str, name: str) -> Model:
        return Model.model_validate(self._call("DELETE", self._path(namespace, name)).json())

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        reply = self._call("GET", self._path(namespace, name, "events"))
        items: list[dict[str, Any]] = reply.json()["items"]
        return items

    def revisions(self, namespace: str, name: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._call(
            "GET", self._path(namespace, name, "revisions")
        ).json()["items"]
        return items

    def annotate(self, namespace: str, name: str, annotations: dict[str, str]) -> Model:
        patch = {"metadata": {"annotations": annotations}}
        reply = self._call(
            "PATCH",
            self._path(namespace, name),
            json=patch,
            headers={"Content-Type": "application/merge-patch+json"},
        )
        return Model.model_validate(reply.json())

    def replace_spec(self, model: Model) -> Model:
        body = to_wire(model, include_status=False)
        reply = self._call(
            "PUT", self._path(model.metadata.namespace, model.metadata.name), json=body
        )
        return Model.model_validate(reply.json())

    def logs(self, namespace: str, name: str, revision: str | None, tail: int) -> str:
        params: dict[str, str | int] = {"tailLines": tail}
        if revision:
            params["revision"] = revision
        return self._call("GET", self._path(namespace, name, "logs"), params=params).text

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One of the platform's other endpoints (``/gitops``, ``/auth/keys``...): the decoded
        reply, or None."""
        reply = self._call(method, path, json=body)
        return reply.json() if reply.content else None

    def watch(self, namespace: str | None, selector: str | None) -> Iterator[dict[str, Any]]:
        params = {"watch": "true", **({"labelSelector": selector} if selector else {})}
        with self._http.stream(
            "GET", self._path(namespace), params=params, timeout=httpx.Timeout(30, read=None)
        ) as reply:
            if reply.status_code >= 400:
                reply.read()
                raise _status_error(reply)
            for line in reply.iter_lines():
                if line:
                    yield httpx.Response(200, content=line).json()


def _status_error(reply: httpx.Response) -> CliError | SpecError:
    try:
        status = reply.json()
    except ValueError:
        return CliError(f"the control plane answered {reply.status_code}: {reply.text[:200]}")
    message = status.get("message", reply.text)
    if status.get("reason") == "Invalid":
        causes = (status.get("details") or {}).get("causes") or []
        problems = [FieldProblem(c.get("field", ""), c.get("message", "")) for c in causes]
        return SpecError(message.split(":")[0], problems)
    hint = "read the object again and retry" if status.get("reason") == "Conflict" else ""
    return CliError(message, hint=hint, exit_code=EXIT_SPEC if reply.status_code == 422 else 1)
