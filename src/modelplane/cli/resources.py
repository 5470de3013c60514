"""``modelplane validate``, ``schema`` and ``crd``: work on Model manifests without a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from modelplane.api import crd, json_schema, revision_digest
from modelplane.api.manifests import load_model_file
from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.control.gitops import MANIFEST_SUFFIXES


def manifest_files(path: Path) -> list[Path]:
    """``path`` itself, or for a directory every manifest under it (what a git source reads)."""
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in MANIFEST_SUFFIXES and p.is_file())


def validate(
    files: Annotated[list[Path] | None, typer.Argument(help="Manifests to check.")] = None,
    file: Annotated[
        list[Path] | None,
        typer.Option("--file", "-f", help="A manifest, or a directory of them; repeatable."),
    ] = None,
) -> None:
    """Check Model manifests and print each model's revision digest."""
    given = [*(files or []), *(file or [])]
    if not given:
        raise CliError("nothing to validate", hint="modelplane validate -f models/",
                       exit_code=EXIT_USAGE)  # fmt: skip
    for path in given:
        found = manifest_files(path)
        if not found:
            raise CliError(f"{path} holds no manifest (.yaml, .yml or .json)")
        for manifest in found:
            for model in load_model_file(manifest):
                digest = revision_digest(model.spec)[:12]
                typer.echo(f"{manifest}: {model.key} is valid (revision digest {digest})")


def schema() -> None:
    """Print the Model JSON Schema."""
    typer.echo(json.dumps(json_schema(), indent=2))


def crd_command() -> None:
    """Print the Model CustomResourceDefinition as YAML."""
    typer.echo(yaml.safe_dump(crd(), sort_keys=False), nl=False)
