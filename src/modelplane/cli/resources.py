"""``modelplane validate``, ``schema`` and ``crd``: work on Model manifests without a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from modelplane.api import crd, json_schema, revision_digest
from modelplane.api.manifests import load_model_file


def validate(
    files: Annotated[list[Path], typer.Argument(help="Manifests to check.", exists=False)],
) -> None:
    """Check Model manifests and print each model's revision digest."""
    for file in files:
        for model in load_model_file(file):
            digest = revision_digest(model.spec)[:12]
            typer.echo(f"{file}: {model.key} is valid (revision digest {digest})")


def schema() -> None:
    """Print the Model JSON Schema."""
    typer.echo(json.dumps(json_schema(), indent=2))


def crd_command() -> None:
    """Print the Model CustomResourceDefinition as YAML."""
    typer.echo(yaml.safe_dump(crd(), sort_keys=False), nl=False)
