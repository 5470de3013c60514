"""``modelplane infer``: send one v2 inference request through the gateway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from modelplane.cli.client import credentials
from modelplane.cli.errors import EXIT_USAGE, CliError

DEFAULT_GATEWAY = "http://127.0.0.1:8080"


def infer(
    name: Annotated[str, typer.Argument(help="Model name, or namespace/name.")],
    data: Annotated[
        str,
        typer.Option(help="Rows as JSON ([[5.1, 3.5, 1.4, 0.2]]), a full v2 request, or @file."),
    ],
    gateway: Annotated[
        str, typer.Option(help="Gateway URL.", envvar="MODELPLANE_GATEWAY")
    ] = DEFAULT_GATEWAY,
) -> None:
    """Classify, regress or embed: rows become the model's first input, typed from its metadata."""
    text = Path(data[1:]).read_text() if data.startswith("@") else data
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"--data is not JSON: {exc}", exit_code=EXIT_USAGE) from exc
    base = f"{gateway.rstrip('/')}/v2/models/{name}"
    with httpx.Client(timeout=120, headers=credentials()) as client:
        if not (isinstance(payload, dict) and "inputs" in payload):
            payload = _request_for(client, base, payload)
        reply = _call(client, "POST", base + "/infer", json=payload)
    typer.echo(json.dumps(reply.json(), indent=2))


def _request_for(client: httpx.Client, base: str, rows: Any) -> dict[str, Any]:
    metadata = _call(client, "GET", base).json()
    inputs = metadata.get("inputs") or []
    if len(inputs) != 1:
        raise CliError(
            f"the model takes {len(inputs)} inputs; pass a full v2 request with --data",
            exit_code=EXIT_USAGE,
        )
    values = rows if isinstance(rows, list) else [rows]
    shape = [len(values)]
    if values and isinstance(values[0], list):
        shape.append(len(values[0]))
    tensor = {
        "name": inputs[0]["name"],
        "datatype": inputs[0]["datatype"],
        "shape": shape,
        "data": values,
    }
    return {"inputs": [tensor]}


def _call(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        reply = client.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        raise CliError(
            f"cannot reach the gateway at {url} ({exc})",
            hint="is modelplane up running? (--gateway)",
        ) from exc
    if reply.status_code >= 400:
        raise CliError(f"{reply.status_code}: {error_message(reply)}")
    return reply


def error_message(reply: httpx.Response) -> str:
    """The message of an error reply: v2's ``{"error": "..."}`` or the OpenAI API's object."""
    try:
        error = reply.json().get("error", reply.text)
    except ValueError:
        return reply.text
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error)
