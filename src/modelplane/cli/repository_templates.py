"""The model repository ``modelplane init`` writes, rendered from ``templates/model-repository``.

Backstage's Software Template (``deploy/backstage/template.yaml``) scaffolds the same repository
from a copy of those templates (``deploy/backstage/skeleton``), so they are written in the
language both renderers share: Backstage's nunjucks with ``${{ values.x }}`` for values, and
``{% if %}``/``{% set %}`` blocks, which Jinja2 renders alike when given the same delimiters. File
paths are templates too (``models/${{values.name}}.yaml``), as Backstage's ``fetch:template``
renders them. ``scripts/backstage-skeleton`` copies the templates into the skeleton, and the tests
render the skeleton with nunjucks and compare it with what ``init`` writes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Final

import jinja2

TEMPLATES: Final = "model-repository"


@dataclass(frozen=True)
class RepositoryValues:
    """What a model repository is made from: the ``values`` its templates read."""

    name: str
    namespace: str
    format: str
    task: str
    source: str
    owner: str
    dataset: str  # where the platform fetches the evaluation gate's dataset


def placeholder_source(name: str) -> str:
    """A source that validates but names no real store, for the user to replace."""
    return f"s3://CHANGE-ME/{name}"


def placeholder_dataset(name: str) -> str:
    """Where the evaluation dataset is to be uploaded, for the user to replace."""
    return f"s3://CHANGE-ME/{name}/evaluation.jsonl"


def default_owner(namespace: str) -> str:
    """The Backstage group named like the namespace that serves the model."""
    return f"group:default/{namespace}"


def template_files() -> dict[str, str]:
    """Each template's path (itself a template) and text, in a stable order."""
    root = files("modelplane.cli").joinpath("templates", TEMPLATES)
    found: dict[str, str] = {}
    _walk(root, "", found)
    return dict(sorted(found.items()))


def _walk(folder: Traversable, prefix: str, found: dict[str, str]) -> None:
    for entry in folder.iterdir():
        path = f"{prefix}{entry.name}"
        if entry.is_dir():
            _walk(entry, f"{path}/", found)
        else:
            found[path] = entry.read_text(encoding="utf-8")


def render(values: RepositoryValues) -> dict[str, str]:
    """The repository's files, by path relative to its root."""
    environment = jinja2.Environment(  # noqa: S701 (YAML and Markdown, never HTML)
        variable_start_string="${{",
        variable_end_string="}}",
        keep_trailing_newline=True,  # as nunjucks does
        undefined=jinja2.StrictUndefined,
    )
    context = {"values": asdict(values)}
    return {
        environment.from_string(path).render(context): environment.from_string(text).render(context)
        for path, text in template_files().items()
    }
