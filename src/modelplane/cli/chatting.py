"""``modelplane chat``: talk to a chat model through the gateway, its answers streamed.

One turn with ``--message``; without it, a conversation read line by line from the terminal (or
standard input) until end of input, the history sent with every turn as the API expects.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import orjson
import typer

from modelplane.cli.client import credentials
from modelplane.cli.errors import CliError
from modelplane.cli.inference import DEFAULT_GATEWAY, error_message


def chat(
    name: Annotated[str, typer.Argument(help="Model name, or namespace/name.")],
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Send one message and exit.")
    ] = None,
    system: Annotated[
        str | None, typer.Option(help="A system prompt for the conversation.")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Most tokens per answer.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature, 0 to 2.")] = None,
    gateway: Annotated[
        str, typer.Option(help="Gateway URL.", envvar="MODELPLANE_GATEWAY")
    ] = DEFAULT_GATEWAY,
) -> None:
    """Chat with a model over the OpenAI API; answers appear as they are generated."""
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    chosen = {"max_tokens": max_tokens, "temperature": temperature}
    options = {k: v for k, v in chosen.items() if v is not None}
    url = f"{gateway.rstrip('/')}/v1/chat/completions"
    interactive = message is None and sys.stdin.isatty()
    turns = [message] if message is not None else _lines(interactive)
    with httpx.Client(timeout=httpx.Timeout(10, read=300), headers=credentials()) as client:
        for turn in turns:
            history.append({"role": "user", "content": turn})
            body = {"model": name, "messages": history, "stream": True, **options}
            answer = "".join(_stream(client, url, body))
            typer.echo()
            history.append({"role": "assistant", "content": answer})


def _lines(interactive: bool) -> Iterator[str]:
    while True:
        try:
            line = input("> ") if interactive else sys.stdin.readline()
        except EOFError:
            return
        if not interactive and not line:
            return
        if line.strip():
            yield line.rstrip("\n")


def _stream(client: httpx.Client, url: str, body: dict[str, Any]) -> Iterator[str]:
    """The answer's pieces, each echoed as it arrives."""
    try:
        with client.stream("POST", url, json=body) as reply:
            if reply.status_code >= 400:
                reply.read()
                raise CliError(f"{reply.status_code}: {error_message(reply)}")
            for line in reply.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = orjson.loads(line[len("data: ") :])
                if "error" in event:
                    raise CliError(f"the answer broke off: {event['error'].get('message')}")
                for choice in event.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content") or ""
                    typer.echo(piece, nl=False)
                    yield piece
    except httpx.TransportError as exc:
        raise CliError(
            f"cannot reach the gateway at {url} ({exc})",
            hint="is modelplane up running? (--gateway)",
        ) from exc
