"""The real tools that check a model repository, each readied once by its testenv script:
actionlint and shellcheck (``scripts/actionlint-testenv``), and Backstage's, GitLab's and
OpenAPI's published schemas with nunjucks (``scripts/scaffold-testenv``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

ROOT = Path(__file__).resolve().parents[2]
SKELETON = ROOT / "deploy" / "backstage" / "skeleton"
TEMPLATE = ROOT / "deploy" / "backstage" / "template.yaml"
BUILD_SECONDS = 15 * 60  # actionlint's cold build on 2 cores, with room to spare
# Each catalog kind and the schema Backstage validates it with.
KIND_SCHEMAS = {"Component": "Component.v1alpha1", "API": "API.v1alpha1",
                "Template": "Template.v1beta3"}  # fmt: skip


def prepared(script: str, env: dict[str, str] | None = None) -> Path:
    """The path ``scripts/<script>`` prints last (it builds or fetches once, then is cached)."""
    result = subprocess.run(
        [str(ROOT / "scripts" / script)], capture_output=True, text=True,
        timeout=BUILD_SECONDS, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"scripts/{script} failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def actionlint_binary() -> Path:
    return prepared("actionlint-testenv")


def scaffold_peers() -> Path:
    return prepared("scaffold-testenv", {"MODELPLANE_SCAFFOLD_PYTHON": sys.executable})


def backstage_validator(peers: Path, kind: str) -> jsonschema.Draft7Validator:
    """A validator of one catalog kind, its references (Entity, EntityMeta, common) resolved by
    their ``$id`` as Backstage resolves them."""
    schemas = [json.loads(p.read_text()) for p in (peers / "backstage").glob("*.schema.json")]
    registry: Registry[Any] = Registry().with_resources(
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT7)) for s in schemas
    )
    schema = json.loads((peers / "backstage" / f"{KIND_SCHEMAS[kind]}.schema.json").read_text())
    return jsonschema.Draft7Validator(schema, registry=registry)


def render_skeleton(
    peers: Path, values: dict[str, Any], runs: list[dict[str, str]]
) -> list[dict[str, str]]:
    """The skeleton rendered by nunjucks for each set of the template's parameters."""
    request = {"skeleton": str(SKELETON), "values": values, "runs": runs}
    result = subprocess.run(
        ["node", str(Path(__file__).with_name("render_skeleton.cjs"))],
        input=json.dumps(request), capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "NODE_PATH": str(peers / "node_modules")},
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"rendering the skeleton failed:\n{result.stderr[-4000:]}")
    rendered: list[dict[str, str]] = json.loads(result.stdout)
    return rendered
