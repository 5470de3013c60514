"""``modelplane auth keys``: the API keys of a platform started with ``--auth``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelplane.apiserver.keys import parse_grants
from modelplane.cli.client import DEFAULT_SERVER, ControlClient
from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.cli.models import ServerOption
from modelplane.security.key_file import add_to_file, revoke_in_file


def build() -> typer.Typer:
    auth = typer.Typer(help="Authentication: API keys and the roles they carry.")
    keys = typer.Typer(help="API keys (needs an admin key in MODELPLANE_API_KEY).")
    keys.command("create")(create)
    keys.command("list")(list_keys)
    keys.command("revoke")(revoke)
    auth.add_typer(keys, name="keys")
    return auth


def create(
    name: Annotated[str, typer.Argument(help="Who the key is for (a team, a service).")],
    grant: Annotated[
        list[str],
        typer.Option(
            "--grant",
            help="NAMESPACE=ROLE (viewer, deployer or admin; * for every namespace); repeatable.",
        ),
    ],
    to_file: Annotated[
        Path | None,
        typer.Option(
            help="Add the key (hashed) to this file, for `modelplane gateway --api-keys`, "
            "rather than to a running platform."
        ),
    ] = None,
    priority: Annotated[
        str | None,
        typer.Option(
            help="interactive or batch: how its requests wait when a model is saturated "
            "(default: the namespace's priority)."
        ),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Create a key; it is printed once and cannot be shown again."""
    grants = {}
    for item in grant:
        namespace, sep, role = item.partition("=")
        if not sep or not namespace or not role:
            raise CliError(f"--grant {item!r}: expected NAMESPACE=ROLE", exit_code=EXIT_USAGE)
        grants[namespace] = role
    asked: dict[str, object] = {"name": name, "grants": grants}
    if priority is not None:
        asked["priority"] = priority
    if to_file is not None:
        new = parse_grants(asked)
        key_id, token = add_to_file(to_file, new.name, new.grants, new.priority)
        typer.echo(token)
        typer.echo(f"key {key_id} for {name} added to {to_file} (shown once: keep it now)",
                   err=True)  # fmt: skip
        return
    made = ControlClient(server).call("POST", "/auth/keys", asked)
    typer.echo(made["key"])
    said = ", ".join(f"{role} in {ns}" for ns, role in made["grants"].items())
    if made.get("priority"):
        said += f", priority {made['priority']}"
    typer.echo(f"key {made['id']} for {name}: {said} (shown once: keep it now)", err=True)


def list_keys(server: ServerOption = DEFAULT_SERVER) -> None:
    """Every key: id, name, grants, priority and whether it is revoked (never the key
    itself)."""
    items = ControlClient(server).call("GET", "/auth/keys")["items"]
    typer.echo(f"{'ID':<14}{'NAME':<20}{'CREATED':<27}{'REVOKED':<27}{'PRIORITY':<13}GRANTS")
    for item in items:
        grants = ", ".join(f"{ns}={role}" for ns, role in item["grants"].items())
        priority = item.get("priority") or "-"
        typer.echo(f"{item['id']:<14}{item['name']:<20}{item['created']:<27}"
                   f"{item['revoked'] or '-':<27}{priority:<13}{grants}")  # fmt: skip


def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (the part after mpk_).")],
    file: Annotated[
        Path | None, typer.Option(help="Revoke it in this key file rather than a platform.")
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Revoke a key: every request with it is refused from now on."""
    if file is not None:
        if not revoke_in_file(file, key_id):
            raise CliError(f"no key {key_id} in {file}")
        typer.echo(f"key {key_id} revoked in {file}")
        return
    done = ControlClient(server).call("DELETE", f"/auth/keys/{key_id}")
    typer.echo(f"key {done['id']} ({done['name']}) revoked at {done['revoked']}")
